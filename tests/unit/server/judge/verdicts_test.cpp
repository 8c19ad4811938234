// The verdict cache: a verdict holds for its policy version and its UTC day, so an expired
// exemption or an image that aged past max_days is judged again the next day. And blob access.

#include <gtest/gtest.h>

#include <chrono>
#include "judge/blob_access.hpp"
#include "judge/verdicts.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/policy/policy.hpp"
#include "policy_fixtures.hpp"
#include "server_fixtures.hpp"
#include "support.hpp"

namespace {

using namespace ocigate;
using namespace std::chrono;

// Every check off but non-root-user (set to `action`), plus `extra` YAML under policy:.
policy::Policy only_non_root(const std::string& action, const std::string& extra = "") {
  return test::only_check("non-root-user", action, extra);
}

class VerdictCache : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = test::open_cache(dir_.path());
    ASSERT_TRUE(store_);
  }
  void TearDown() override {
    if (store_) store_->close();
    store_.reset();
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

  test::TempDir dir_;
  std::unique_ptr<cache::Store> store_;
  metrics::Metrics metrics_;
};

constexpr sys_days expiry_day = sys_days{year{2027} / 3 / 1};

TEST_F(VerdictCache, AVerdictHoldsForItsDayOnly) {
  server::PolicyHolder holder(only_non_root("block", R"(  exemptions:
    - { match: "docker.io/acme/**", checks: [non-root-user], reason: "legacy", expires: 2027-03-01 }
)"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  auto before = verdicts.decide(facts(expiry_day), "127.0.0.1", 0.0);
  EXPECT_EQ(before.decision, policy::Decision::allow) << "exempted through its expiry day";
  auto same_day = verdicts.cached(facts(expiry_day));
  ASSERT_TRUE(same_day.has_value());
  EXPECT_EQ(same_day->decision, policy::Decision::allow);

  const auto next_day = facts(expiry_day + days(1));
  EXPECT_FALSE(verdicts.cached(next_day).has_value()) << "yesterday's verdict must not outlive its exemption";
  auto after = verdicts.decide(next_day, "127.0.0.1", 0.0);
  EXPECT_EQ(after.decision, policy::Decision::block);
  auto cached = verdicts.cached(next_day);
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->decision, policy::Decision::block);
}

TEST_F(VerdictCache, ANewPolicyVersionMissesTheCache) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  (void)verdicts.decide(facts(expiry_day), "127.0.0.1", 0.0);
  ASSERT_TRUE(verdicts.cached(facts(expiry_day)).has_value());
  holder.set(only_non_root("warn"), {});
  EXPECT_FALSE(verdicts.cached(facts(expiry_day)).has_value());
}

TEST_F(VerdictCache, PurgeDropsVerdictsAndRefusalsOfOtherPolicyVersionsOnly) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  (void)verdicts.decide(facts(expiry_day), "127.0.0.1", 0.0);
  verdicts.block_layer("sha256:" + std::string(64, 'b'), "setuid");
  const auto old_version = holder.get();
  holder.set(only_non_root("warn"), {});
  (void)verdicts.decide(facts(expiry_day), "127.0.0.1", 0.0);
  verdicts.block_layer("sha256:" + std::string(64, 'c'), "setuid");
  verdicts.purge_stale();
  EXPECT_TRUE(verdicts.cached(facts(expiry_day)).has_value()) << "the current version's verdict stays";
  EXPECT_TRUE(verdicts.blocked_layer("sha256:" + std::string(64, 'c')).has_value());
  EXPECT_TRUE(verdicts.stored_verdict(facts(expiry_day).digest).has_value()) << "the latest verdict is kept apart";
  holder.set(*old_version, {});
  EXPECT_FALSE(verdicts.cached(facts(expiry_day)).has_value()) << "the old version's verdict was dropped";
  EXPECT_FALSE(verdicts.blocked_layer("sha256:" + std::string(64, 'b')).has_value());
}

TEST_F(VerdictCache, AMaxAgeBoundsAVerdictWithinItsDay) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  (void)verdicts.decide(facts(expiry_day), "127.0.0.1", 0.0);
  auto later = facts(expiry_day);
  later.now += minutes(10);
  EXPECT_TRUE(verdicts.cached(later, minutes(15)).has_value());
  EXPECT_FALSE(verdicts.cached(later, minutes(5)).has_value()) << "signature verdicts follow the tag TTL";
}

// Hits are served from memory once read; a new process (a new Gate over the same store) reads the
// stored record back with its day and time.
TEST_F(VerdictCache, AStoredVerdictIsReadBackAfterARestart) {
  server::PolicyHolder holder(only_non_root("block"));
  {
    server::Verdicts first(*store_, metrics_, holder);
    EXPECT_EQ(first.decide(facts(expiry_day), "127.0.0.1", 0.0).decision, policy::Decision::block);
  }
  server::Verdicts second(*store_, metrics_, holder);
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

TEST_F(VerdictCache, AVerdictFromAFailedSignatureLookupIsNotKept) {
  server::PolicyHolder holder(only_non_root("block"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  auto f = facts(expiry_day);
  f.signature = policy::SignatureFacts{true, false, true, "lookup failed", "", ""};
  (void)verdicts.decide(f, "127.0.0.1", 0.0);
  EXPECT_FALSE(verdicts.cached(f).has_value());
}

// ---- blob_access: a blob is served only when an allowed image refers to it ----

// The value of a counter without labels, read from the rendered exposition.
double counter(const metrics::Metrics& metrics, const std::string& name) {
  const std::string text = metrics.render();
  auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

// The same real cache, for BlobAccess.
class BlobAccessTest : public VerdictCache {};

const std::string layer_a = "sha256:" + std::string(64, '1');
const std::string layer_b = "sha256:" + std::string(64, '2');

TEST_F(BlobAccessTest, AnUnreferencedBlobIsRefusedAndCountedInEnforceMode) {
  server::PolicyHolder holder(only_non_root("block"));
  server::BlobAccess access(*store_, metrics_, holder);
  EXPECT_FALSE(access.allowed(layer_a));
  EXPECT_EQ(counter(metrics_, "ocigate_unreferenced_blob_requests_total"), 1);
}

TEST_F(BlobAccessTest, BlobsOfAnAllowedImageAreServedAndOthersStayRefused) {
  server::PolicyHolder holder(only_non_root("block"));
  server::BlobAccess access(*store_, metrics_, holder);
  access.allow({layer_a});
  EXPECT_TRUE(access.allowed(layer_a));
  EXPECT_FALSE(access.allowed(layer_b)) << "allowing one blob allows no other";
  EXPECT_EQ(counter(metrics_, "ocigate_unreferenced_blob_requests_total"), 1) << "only the refusal counts";
  access.allow({layer_a, layer_b});
  EXPECT_TRUE(access.allowed(layer_b));
}

TEST_F(BlobAccessTest, AllowedBlobsOutliveARestart) {
  server::PolicyHolder holder(only_non_root("block"));
  server::BlobAccess(*store_, metrics_, holder).allow({layer_a});
  server::BlobAccess restarted(*store_, metrics_, holder);
  EXPECT_TRUE(restarted.allowed(layer_a));
}

TEST_F(BlobAccessTest, AuditModeServesAnUnreferencedBlobAndCountsIt) {
  auto audit = only_non_root("block");
  audit.mode = policy::Mode::audit;
  server::PolicyHolder holder(audit);
  server::BlobAccess access(*store_, metrics_, holder);
  EXPECT_TRUE(access.allowed(layer_a));
  EXPECT_EQ(counter(metrics_, "ocigate_unreferenced_blob_requests_total"), 1);
}

TEST_F(BlobAccessTest, BlobAccessAnyServesEveryBlobUncounted) {
  auto any = only_non_root("block", "  blob_access: any\n");
  ASSERT_EQ(any.blob_access, policy::BlobAccess::any);
  server::PolicyHolder holder(any);
  server::BlobAccess access(*store_, metrics_, holder);
  EXPECT_TRUE(access.allowed(layer_a));
  EXPECT_EQ(counter(metrics_, "ocigate_unreferenced_blob_requests_total"), 0);
}

}  // namespace
