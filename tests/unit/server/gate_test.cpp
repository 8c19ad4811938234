// The gate's verdict cache: a verdict holds for its policy version and its UTC day, so an expired
// exemption or an image that aged past max_days is judged again the next day.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <random>

#include <yaml-cpp/yaml.h>

#include "gate.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/policy/policy.hpp"

namespace {

using namespace ocigate;
using namespace std::chrono;

// Every check off but non-root-user (set to `action`), plus `extra` YAML under policy:.
policy::Policy only_non_root(const std::string& action, const std::string& extra = "") {
  std::string yaml = "policy:\n  mode: enforce\n  checks:\n";
  for (const auto& id : policy::check_ids()) {
    yaml += "    " + id + ": " + (id == "non-root-user" ? action : "off") + "\n";
  }
  auto parsed = policy::parse_policy(YAML::Load(yaml + extra)["policy"], "test.yaml");
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  return *parsed;
}

class GateCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ocigate-gate-" + std::to_string(std::random_device{}()));
    cache::Options options;
    options.path = dir_.string();
    options.max_size = 1ull << 30;
    auto opened = cache::Store::open(options);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(*opened);
  }
  void TearDown() override {
    store_->close();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  static policy::ImageFacts facts(sys_days day) {
    policy::ImageFacts f;
    f.upstream = "docker.io";
    f.repository = "acme/app";
    f.reference = "v1";
    f.digest = "sha256:" + std::string(64, 'a');
    f.config = nlohmann::json{{"config", {{"User", "root"}}}};
    f.now = day + hours(12);
    return f;
  }

  std::filesystem::path dir_;
  std::unique_ptr<cache::Store> store_;
  metrics::Metrics metrics_;
};

constexpr sys_days expiry_day = sys_days{year{2027} / 3 / 1};

TEST_F(GateCache, AVerdictHoldsForItsDayOnly) {
  server::PolicyHolder holder(only_non_root("block", R"(  exemptions:
    - { match: "docker.io/acme/**", checks: [non-root-user], reason: "legacy", expires: 2027-03-01 }
)"));
  server::Gate gate(*store_, metrics_, holder);
  auto before = gate.judge(facts(expiry_day), "127.0.0.1", 0.0);
  EXPECT_EQ(before.decision, policy::Decision::allow) << "exempted through its expiry day";
  auto same_day = gate.cached(facts(expiry_day));
  ASSERT_TRUE(same_day.has_value());
  EXPECT_EQ(same_day->decision, policy::Decision::allow);

  const auto next_day = facts(expiry_day + days(1));
  EXPECT_FALSE(gate.cached(next_day).has_value()) << "yesterday's verdict must not outlive its exemption";
  auto after = gate.judge(next_day, "127.0.0.1", 0.0);
  EXPECT_EQ(after.decision, policy::Decision::block);
  auto cached = gate.cached(next_day);
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->decision, policy::Decision::block);
}

TEST_F(GateCache, ANewPolicyVersionMissesTheCache) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Gate gate(*store_, metrics_, holder);
  (void)gate.judge(facts(expiry_day), "127.0.0.1", 0.0);
  ASSERT_TRUE(gate.cached(facts(expiry_day)).has_value());
  holder.set(only_non_root("warn"), {});
  EXPECT_FALSE(gate.cached(facts(expiry_day)).has_value());
}

TEST_F(GateCache, PurgeDropsVerdictsAndRefusalsOfOtherPolicyVersionsOnly) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Gate gate(*store_, metrics_, holder);
  (void)gate.judge(facts(expiry_day), "127.0.0.1", 0.0);
  gate.block_layer("sha256:" + std::string(64, 'b'), "setuid");
  const auto old_version = holder.get();
  holder.set(only_non_root("warn"), {});
  (void)gate.judge(facts(expiry_day), "127.0.0.1", 0.0);
  gate.block_layer("sha256:" + std::string(64, 'c'), "setuid");
  gate.purge_stale();
  EXPECT_TRUE(gate.cached(facts(expiry_day)).has_value()) << "the current version's verdict stays";
  EXPECT_TRUE(gate.blocked_layer("sha256:" + std::string(64, 'c')).has_value());
  EXPECT_TRUE(gate.stored_verdict(facts(expiry_day).digest).has_value()) << "the latest verdict is kept apart";
  holder.set(*old_version, {});
  EXPECT_FALSE(gate.cached(facts(expiry_day)).has_value()) << "the old version's verdict was dropped";
  EXPECT_FALSE(gate.blocked_layer("sha256:" + std::string(64, 'b')).has_value());
}

TEST_F(GateCache, AMaxAgeBoundsAVerdictWithinItsDay) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Gate gate(*store_, metrics_, holder);
  (void)gate.judge(facts(expiry_day), "127.0.0.1", 0.0);
  auto later = facts(expiry_day);
  later.now += minutes(10);
  EXPECT_TRUE(gate.cached(later, minutes(15)).has_value());
  EXPECT_FALSE(gate.cached(later, minutes(5)).has_value()) << "signature verdicts follow the tag TTL";
}

// Hits are served from memory once read; a new process (a new Gate over the same store) reads the
// stored record back with its day and time.
TEST_F(GateCache, AStoredVerdictIsReadBackAfterARestart) {
  server::PolicyHolder holder(only_non_root("block"));
  {
    server::Gate first(*store_, metrics_, holder);
    EXPECT_EQ(first.judge(facts(expiry_day), "127.0.0.1", 0.0).decision, policy::Decision::block);
  }
  server::Gate second(*store_, metrics_, holder);
  auto later = facts(expiry_day);
  later.now += minutes(10);
  EXPECT_FALSE(second.cached(later, minutes(5)).has_value()) << "the stored time of judgement counts";
  auto same = facts(expiry_day);
  same.now += minutes(10);
  auto cached = second.cached(same, minutes(15));
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->decision, policy::Decision::block);
  EXPECT_EQ(cached->reference, "v1");
  ASSERT_FALSE(cached->findings.empty());
  EXPECT_FALSE(second.cached(facts(expiry_day + days(1))).has_value()) << "the stored day counts";
}

TEST_F(GateCache, AVerdictFromAFailedSignatureLookupIsNotKept) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Gate gate(*store_, metrics_, holder);
  auto f = facts(expiry_day);
  f.signature = policy::SignatureFacts{true, false, true, "lookup failed", "", ""};
  (void)gate.judge(f, "127.0.0.1", 0.0);
  EXPECT_FALSE(gate.cached(f).has_value());
}

// ---- blob_access: a blob is served only when an allowed image refers to it ----

// The value of a counter without labels, read from the rendered exposition.
double counter(const metrics::Metrics& metrics, const std::string& name) {
  const std::string text = metrics.render();
  auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

const std::string layer_a = "sha256:" + std::string(64, '1');
const std::string layer_b = "sha256:" + std::string(64, '2');

TEST_F(GateCache, AnUnreferencedBlobIsRefusedAndCountedInEnforceMode) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Gate gate(*store_, metrics_, holder);
  EXPECT_FALSE(gate.blob_allowed(layer_a));
  EXPECT_EQ(counter(metrics_, "ocigate_unreferenced_blob_requests_total"), 1);
}

TEST_F(GateCache, BlobsOfAnAllowedImageAreServedAndOthersStayRefused) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Gate gate(*store_, metrics_, holder);
  gate.allow_blobs({layer_a});
  EXPECT_TRUE(gate.blob_allowed(layer_a));
  EXPECT_FALSE(gate.blob_allowed(layer_b)) << "allowing one blob allows no other";
  EXPECT_EQ(counter(metrics_, "ocigate_unreferenced_blob_requests_total"), 1) << "only the refusal counts";
  gate.allow_blobs({layer_a, layer_b});
  EXPECT_TRUE(gate.blob_allowed(layer_b));
}

TEST_F(GateCache, AllowedBlobsOutliveTheGateInTheStore) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Gate(*store_, metrics_, holder).allow_blobs({layer_a});
  server::Gate restarted(*store_, metrics_, holder);
  EXPECT_TRUE(restarted.blob_allowed(layer_a));
}

TEST_F(GateCache, AuditModeServesAnUnreferencedBlobAndCountsIt) {
  auto audit = only_non_root("block");
  audit.mode = policy::Mode::audit;
  server::PolicyHolder holder(audit);
  server::Gate gate(*store_, metrics_, holder);
  EXPECT_TRUE(gate.blob_allowed(layer_a));
  EXPECT_EQ(counter(metrics_, "ocigate_unreferenced_blob_requests_total"), 1);
}

TEST_F(GateCache, BlobAccessAnyServesEveryBlobUncounted) {
  auto any = only_non_root("block", "  blob_access: any\n");
  ASSERT_EQ(any.blob_access, policy::BlobAccess::any);
  server::PolicyHolder holder(any);
  server::Gate gate(*store_, metrics_, holder);
  EXPECT_TRUE(gate.blob_allowed(layer_a));
  EXPECT_EQ(counter(metrics_, "ocigate_unreferenced_blob_requests_total"), 0);
}

}  // namespace
