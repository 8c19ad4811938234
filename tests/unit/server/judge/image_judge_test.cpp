// The judge (judge/image_judge.hpp) with fake fact sources, and each real source with a fake
// Content: what a source adds reaches the verdict, the verdict cache spares the sources a second
// gathering unless one has facts pending, and nothing is gathered when no check is on.

#include "judge/image_judge.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "judge/sources.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/layers/report.hpp"
#include "records.hpp"
#include "policy_fixtures.hpp"
#include "server_fixtures.hpp"
#include "support.hpp"

namespace ocigate::server {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Every check off but non-root-user, which blocks.
policy::Policy non_root_blocks(const std::string& extra = "") { return test::only_check("non-root-user", "block", extra); }

policy::Policy every_check_off() { return test::only_check("", ""); }

// A source that records its calls and sets the image's user.
class FakeSource final : public FactSource {
 public:
  explicit FakeSource(std::vector<std::string>& calls, std::string name, std::string user = "")
      : calls_(calls), name_(std::move(name)), user_(std::move(user)) {}
  bool pending_facts = false;

  bool pending(const ImageRequest&, const policy::ImageFacts&) const override { return pending_facts; }
  asio::awaitable<void> gather(const ImageRequest&, policy::ImageFacts& facts) override {
    calls_.push_back("gather " + name_);
    if (!user_.empty()) facts.config = nlohmann::json{{"config", {{"User", user_}}}};
    co_return;
  }
  void judged(const ImageRequest&, const policy::ImageFacts&, const policy::Verdict& verdict) override {
    calls_.push_back("judged " + name_ + " " + policy::decision_text(verdict.decision));
  }

 private:
  std::vector<std::string>& calls_;
  std::string name_, user_;
};

// Content answering from maps; anything else is "not found".
class FakeContent final : public Content {
 public:
  std::map<std::string, Result<ManifestData>> tags;
  std::map<std::string, std::optional<std::string>> blobs;
  Reply referrers_reply = [] {
    Reply reply;
    reply.head.result(http::status::ok);
    reply.body = R"({"schemaVersion":2,"manifests":[]})";
    return reply;
  }();
  std::vector<std::string> asked;

  asio::awaitable<Result<ManifestData>> manifest_by_tag(const Target&, const std::string& tag) override {
    asked.push_back("tag " + tag);
    auto it = tags.find(tag);
    co_return it == tags.end() ? Result<ManifestData>(Errc::manifest_unknown, "no such tag") : it->second;
  }
  asio::awaitable<Result<ManifestData>> manifest_by_digest(const Target&, const std::string& digest) override {
    asked.push_back("digest " + digest);
    co_return Error{Errc::manifest_unknown, "no such manifest"};
  }
  asio::awaitable<std::optional<std::string>> small_blob(const Target&, const oci::Descriptor& d,
                                                         std::int64_t) override {
    asked.push_back("blob " + d.digest);
    auto it = blobs.find(d.digest);
    co_return it == blobs.end() ? std::nullopt : it->second;
  }
  asio::awaitable<Reply> referrers(const Target&, const std::string& digest) override {
    asked.push_back("referrers " + digest);
    Reply copy;
    copy.head = referrers_reply.head;
    copy.body = referrers_reply.body;
    copy.error = referrers_reply.error;
    co_return copy;
  }
};

const std::string image_digest = "sha256:" + std::string(64, 'a');
const std::string config_digest = "sha256:" + std::string(64, 'c');
const std::string layer_digest = "sha256:" + std::string(64, 'd');

class JudgeTest : public ::testing::Test {
 public:
  void SetUp() override {
    store_ = test::open_cache(dir_.path());
    ASSERT_TRUE(store_);
    fetches_ = std::make_unique<BlobFetches>(FetchContext{*store_, metrics_, 5s}, io_.get_executor(), 1);
    upstream_.name = "up";
    upstream_.tag_ttl = 300s;
    target_.upstream = &upstream_;
    target_.repo = "team/app";
    target_.repo_key = "up/team/app";
    oci::Descriptor config, layer;
    config.media_type = oci::media::oci_config;
    config.digest = config_digest;
    config.size = 10;
    layer.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    layer.digest = layer_digest;
    layer.size = 100;
    manifest_.config = config;
    manifest_.layers = {layer};
    data_.digest = image_digest;
    data_.media_type = oci::media::oci_manifest;
    data_.bytes = std::make_shared<const std::string>("{}");
  }

  // Runs one judgement to its end.
  policy::Verdict judge(ImageJudge& judge) {
    asio::io_context ioc;
    std::optional<policy::Verdict> out;
    const std::string reference = "v1", client = "127.0.0.1";
    const ImageRequest image{target_, reference, data_, manifest_, client};
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { out = co_await judge.judge(image); }, asio::detached);
    ioc.run_for(10s);
    EXPECT_TRUE(out.has_value()) << "the judgement did not finish";
    return out.value_or(policy::Verdict{});
  }

  // Runs one source's gathering.
  policy::ImageFacts gather(FactSource& source, bool scan_all = false) {
    asio::io_context ioc;
    policy::ImageFacts facts;
    facts.upstream = "up";
    facts.repository = "team/app";
    facts.digest = image_digest;
    facts.reference = "v1";
    const std::string reference = "v1", client = "127.0.0.1";
    const ImageRequest image{target_, reference, data_, manifest_, client, scan_all};
    bool done = false;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
      co_await source.gather(image, facts);
      done = true;
    }, asio::detached);
    ioc.run_for(10s);
    EXPECT_TRUE(done);
    return facts;
  }

  std::unique_ptr<ImageJudge> with_sources(PolicyHolder& holder, std::vector<std::unique_ptr<FactSource>> sources) {
    return std::make_unique<ImageJudge>(*store_, metrics_, holder, *fetches_, io_.get_executor(), std::move(sources));
  }

  test::TempDir dir_;
  std::unique_ptr<cache::Store> store_;
  metrics::Metrics metrics_;
  asio::io_context io_;
  std::unique_ptr<BlobFetches> fetches_;
  const std::string reference_ = "v1", client_ = "127.0.0.1";
  config::Upstream upstream_;
  Target target_;
  oci::Manifest manifest_;
  ManifestData data_;
};

TEST_F(JudgeTest, SourcesRunInOrderAndTheirFactsDecide) {
  PolicyHolder holder(non_root_blocks());
  std::vector<std::string> calls;
  std::vector<std::unique_ptr<FactSource>> sources;
  sources.push_back(std::make_unique<FakeSource>(calls, "first"));
  sources.push_back(std::make_unique<FakeSource>(calls, "second", "root"));
  auto judge_ = with_sources(holder, std::move(sources));
  auto verdict = judge(*judge_);
  EXPECT_EQ(verdict.decision, policy::Decision::block);
  EXPECT_EQ(calls, (std::vector<std::string>{"gather first", "gather second", "judged first block", "judged second block"}));
}

TEST_F(JudgeTest, ACachedVerdictSparesTheSources) {
  PolicyHolder holder(non_root_blocks());
  std::vector<std::string> calls;
  std::vector<std::unique_ptr<FactSource>> sources;
  sources.push_back(std::make_unique<FakeSource>(calls, "config", "app"));
  auto judge_ = with_sources(holder, std::move(sources));
  EXPECT_EQ(judge(*judge_).decision, policy::Decision::allow);
  calls.clear();
  EXPECT_EQ(judge(*judge_).decision, policy::Decision::allow);
  EXPECT_TRUE(calls.empty()) << calls.front();
}

TEST_F(JudgeTest, ASourceWithPendingFactsMakesACachedVerdictBeJudgedAgain) {
  PolicyHolder holder(non_root_blocks());
  std::vector<std::string> calls;
  auto pending = std::make_unique<FakeSource>(calls, "layers", "app");
  auto* source = pending.get();
  std::vector<std::unique_ptr<FactSource>> sources;
  sources.push_back(std::move(pending));
  auto judge_ = with_sources(holder, std::move(sources));
  (void)judge(*judge_);
  source->pending_facts = true;
  calls.clear();
  (void)judge(*judge_);
  EXPECT_EQ(calls.front(), "gather layers");
}

TEST_F(JudgeTest, NothingIsGatheredWhenNoCheckIsOn) {
  PolicyHolder holder(every_check_off());
  std::vector<std::string> calls;
  std::vector<std::unique_ptr<FactSource>> sources;
  sources.push_back(std::make_unique<FakeSource>(calls, "config", "root"));
  auto judge_ = with_sources(holder, std::move(sources));
  EXPECT_EQ(judge(*judge_).decision, policy::Decision::allow);
  EXPECT_TRUE(calls.empty());
}

// ---- the config source ----

TEST_F(JudgeTest, ConfigSourceReadsTheConfigBlobThroughContent) {
  FakeContent content;
  content.blobs[config_digest] = R"({"config":{"User":"1000"}})";
  ConfigSource source(content);
  auto facts = gather(source);
  ASSERT_TRUE(facts.config.has_value());
  EXPECT_EQ((*facts.config)["config"]["User"], "1000");
  EXPECT_EQ(content.asked, (std::vector<std::string>{"blob " + config_digest}));
}

TEST_F(JudgeTest, ConfigSourceLeavesAnUnreadableOrMissingConfigUnknown) {
  FakeContent content;
  ConfigSource source(content);
  EXPECT_FALSE(gather(source).config.has_value()) << "missing";
  content.blobs[config_digest] = "[1,2]";
  EXPECT_FALSE(gather(source).config.has_value()) << "not an object";
  content.blobs[config_digest] = "{not json";
  EXPECT_FALSE(gather(source).config.has_value()) << "not JSON";
  manifest_.config.reset();
  content.asked.clear();
  EXPECT_FALSE(gather(source).config.has_value());
  EXPECT_TRUE(content.asked.empty()) << "nothing to fetch without a config descriptor";
}

// ---- the signature source ----

signature::TrustStore cosign_required_for(const std::string& glob) {
  signature::TrustStore trust;
  signature::LoadedTrustEntry entry;
  entry.match = glob;
  entry.cosign = true;
  trust.entries.push_back(entry);
  trust.fingerprint = "sha256:test";
  return trust;
}

TEST_F(JudgeTest, SignatureSourceIsNotRequiredWithoutAMatchingTrustEntry) {
  PolicyHolder holder(non_root_blocks(), cosign_required_for("elsewhere/**"));
  FakeContent content;
  SignatureSource source(content, *store_, metrics_, holder);
  auto facts = gather(source);
  ASSERT_TRUE(facts.signature.has_value());
  EXPECT_FALSE(facts.signature->required);
  EXPECT_TRUE(content.asked.empty());
  EXPECT_FALSE(source.max_age(ImageRequest{target_, reference_, data_, manifest_, client_}).has_value());
}

TEST_F(JudgeTest, SignatureSourceLooksUpTheSigTagAndReferrersAndFailsClosedOnNone) {
  PolicyHolder holder(non_root_blocks(), cosign_required_for("up/**"));
  FakeContent content;
  SignatureSource source(content, *store_, metrics_, holder);
  auto facts = gather(source);
  ASSERT_TRUE(facts.signature.has_value());
  EXPECT_TRUE(facts.signature->required);
  EXPECT_FALSE(facts.signature->satisfied);
  EXPECT_FALSE(facts.signature->incomplete) << "none found is an answer, not a failed lookup";
  EXPECT_EQ(content.asked, (std::vector<std::string>{"tag " + signature::FetchPlan::cosign_tag(image_digest),
                                                      "referrers " + image_digest}));
  EXPECT_EQ(source.max_age(ImageRequest{target_, reference_, data_, manifest_, client_}), 300s) << "the tag TTL";
}

TEST_F(JudgeTest, SignatureSourceMarksAFailedLookupIncomplete) {
  PolicyHolder holder(non_root_blocks(), cosign_required_for("up/**"));
  FakeContent content;
  content.tags.emplace(signature::FetchPlan::cosign_tag(image_digest),
                       Result<ManifestData>(Errc::upstream_error, "upstream answered 503"));
  SignatureSource source(content, *store_, metrics_, holder);
  auto facts = gather(source);
  ASSERT_TRUE(facts.signature.has_value());
  EXPECT_TRUE(facts.signature->incomplete);
  EXPECT_FALSE(facts.signature->satisfied);
}

// ---- the layer source ----

// A LayerSource with the real parts it works with, under a policy with this layer_scan.
struct LayerParts {
  LayerParts(JudgeTest& test, const std::string& layer_scan)
      : holder(non_root_blocks("  layer_scan: " + layer_scan + "\n")),
        verdicts(*test.store_, test.metrics_, holder),
        reports(*test.store_, test.metrics_, *test.fetches_),
        streams(*test.store_, test.metrics_, reports, verdicts, test.io_.get_executor()),
        source(reports, streams, verdicts, holder) {}
  PolicyHolder holder;
  Verdicts verdicts;
  LayerReports reports;
  StreamScans streams;
  LayerSource source;
};

// A layer's stored report: its /etc/passwd has app as uid 1000.
std::string report_json(const std::string& digest) {
  layers::LayerReport report;
  report.digest = digest;
  report.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  report.passwd = layers::Passwd{{{"app", 1000}}};
  return report.to_json().dump();
}

TEST_F(JudgeTest, LayerSourceUsesStoredReportsUnderStreamScanning) {
  LayerParts parts(*this, "stream");
  auto& source = parts.source;
  EXPECT_FALSE(gather(source).filesystem.has_value()) << "no report stored yet";
  ASSERT_TRUE(store_->put_record(records::layer_report, layer_digest, report_json(layer_digest)));
  auto facts = gather(source);
  ASSERT_TRUE(facts.filesystem.has_value());
  EXPECT_EQ(facts.filesystem->users.at("app"), 1000);
}

TEST_F(JudgeTest, LayerSourceWatchesAnImageJudgedWithoutItsLayers) {
  LayerParts parts(*this, "stream");
  auto& source = parts.source;
  auto& streams = parts.streams;
  const ImageRequest image{target_, reference_, data_, manifest_, client_};
  auto facts = gather(source);
  ASSERT_FALSE(facts.filesystem.has_value());
  EXPECT_TRUE(source.pending(image, facts)) << "neither watched nor inspected";
  policy::Verdict allowed;
  source.judged(image, facts, allowed);
  EXPECT_TRUE(streams.watched(facts));
  EXPECT_FALSE(source.pending(image, facts)) << "watched: the stream scan finishes the judgement";
  policy::Verdict blocked;
  blocked.decision = policy::Decision::block;
  facts.reference = "v2";
  source.judged(image, facts, blocked);
  EXPECT_FALSE(streams.watched(facts)) << "a blocked image is not watched";
}

TEST_F(JudgeTest, LayerSourceWithLayerScanOffAddsNothingAndWaitsForNothing) {
  LayerParts parts(*this, "off");
  auto& source = parts.source;
  const ImageRequest image{target_, reference_, data_, manifest_, client_};
  auto facts = gather(source);
  EXPECT_FALSE(facts.filesystem.has_value());
  EXPECT_FALSE(source.pending(image, facts));
}

}  // namespace
}  // namespace ocigate::server
