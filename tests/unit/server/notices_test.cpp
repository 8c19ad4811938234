// The server's side of notify.webhooks: a decision audited by Verdicts, a digest mismatch and a
// refused reload reach the installed notifier as events carrying the instance name; allow does
// not; with nothing installed nothing happens.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include "judge/verdicts.hpp"
#include "notices.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/notify/payload.hpp"
#include "ocigate/policy/policy.hpp"
#include "policy_fixtures.hpp"
#include "server_fixtures.hpp"
#include "support.hpp"
#include "test_server.hpp"

namespace {

using namespace ocigate;
using namespace std::chrono_literals;
using upstream::test::Reply;
using upstream::test::ServerRequest;
using upstream::test::TestServer;
using json = nlohmann::json;

policy::Policy only_non_root(const std::string& action, const std::string& mode = "enforce") {
  return test::only_check("non-root-user", action, "", mode);
}

class Notices : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = test::open_cache(dir_.path());
    ASSERT_TRUE(store_);
  }
  void TearDown() override {
    auto last = server::notices::install(nullptr, "");
    last.reset();
    if (store_) store_->close();
    store_.reset();
  }

  // repeat_window 0s: these tests count the events the server makes; the notifier's holding back
  // of repeats has its own tests (and one below with the default window).
  void install(std::vector<std::string> events = {"block", "warn", "digest_mismatch", "policy_reload_failed"},
               std::chrono::seconds repeat_window = 0s) {
    config::Webhook w;
    w.key = "notify.webhooks[0]";
    w.url = receiver_.origin() + "/hook";
    w.tls = false;
    w.host = "127.0.0.1";
    w.port = receiver_.port();
    w.target = "/hook";
    w.events = std::move(events);
    w.secret = "s3cret";
    w.timeout = 2s;
    w.repeat_window = repeat_window;
    (void)server::notices::install(std::make_unique<notify::Notifier>(std::vector<config::Webhook>{w}, &metrics_),
                                   "mirror-a");
  }

  static policy::ImageFacts root_image() {
    policy::ImageFacts f;
    f.upstream = "docker.io";
    f.repository = "acme/app";
    f.reference = "v1";
    f.digest = "sha256:" + std::string(64, 'a');
    f.config = json{{"config", {{"User", "root"}}}};
    f.now = std::chrono::system_clock::now();
    return f;
  }

  std::vector<json> bodies() {
    EXPECT_TRUE(server::notices::flush(10s));
    std::vector<json> out;
    for (const auto& request : receiver_.requests()) {
      EXPECT_EQ(std::string(request["X-Ocigate-Signature"]), notify::signature("s3cret", request.body()));
      out.push_back(json::parse(request.body()));
    }
    return out;
  }

  test::TempDir dir_;
  std::unique_ptr<cache::Store> store_;
  metrics::Metrics metrics_;
  TestServer receiver_{[](const ServerRequest&) { return Reply::ok(""); }};
};

TEST_F(Notices, ABlockDecisionIsPublishedWithTheAuditLinesFieldsAndTheInstance) {
  install();
  server::PolicyHolder holder(only_non_root("block"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  auto verdict = verdicts.decide(root_image(), "10.1.2.3 alice", 0.0);
  ASSERT_EQ(verdict.decision, policy::Decision::block);
  auto sent = bodies();
  ASSERT_EQ(sent.size(), 1u);
  const auto& body = sent[0];
  EXPECT_EQ(body["event"], "block");
  EXPECT_EQ(body["instance"], "mirror-a");
  EXPECT_EQ(body["client"], "10.1.2.3 alice");
  EXPECT_EQ(body["image"], "docker.io/acme/app");
  EXPECT_EQ(body["reference"], "v1");
  EXPECT_EQ(body["digest"], "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(body["verdict"], "block");
  EXPECT_EQ(body["policy_version"], holder.get()->version);
  ASSERT_EQ(body["violations"].size(), 1u);
  EXPECT_EQ(body["violations"][0]["check"], "non-root-user");
  EXPECT_FALSE(body["violations"][0]["remediation"].get<std::string>().empty());
}

TEST_F(Notices, EveryAuditedPullIsAnEventCachedOrNot) {
  install();
  server::PolicyHolder holder(only_non_root("block"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  auto verdict = verdicts.decide(root_image(), "c", 0.0);
  verdicts.audit(verdict, "c", true);
  EXPECT_EQ(bodies().size(), 2u);
}

TEST_F(Notices, WithTheDefaultWindowACachedRepeatIsHeldBack) {
  install({"block"}, config::Webhook{}.repeat_window);
  server::PolicyHolder holder(only_non_root("block"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  auto verdict = verdicts.decide(root_image(), "c", 0.0);
  verdicts.audit(verdict, "d", true);
  EXPECT_EQ(bodies().size(), 1u);
  EXPECT_NE(metrics_.render().find("ocigate_notify_events_total{result=\"suppressed\"} 1"), std::string::npos);
}

// A SIGHUP installs a new notifier for the same webhooks: what went out before it is not sent again.
TEST_F(Notices, AReloadKeepsHoldingBackWhatWentOutBeforeIt) {
  install({"block"}, config::Webhook{}.repeat_window);
  server::PolicyHolder holder(only_non_root("block"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  auto verdict = verdicts.decide(root_image(), "c", 0.0);
  ASSERT_TRUE(server::notices::flush(10s));
  install({"block"}, config::Webhook{}.repeat_window);
  verdicts.audit(verdict, "d", true);
  EXPECT_EQ(bodies().size(), 1u);
  EXPECT_NE(metrics_.render().find("ocigate_notify_events_total{result=\"suppressed\"} 1"), std::string::npos);
}

TEST_F(Notices, AuditModeWarnsAndAllowIsNoEvent) {
  install();
  server::PolicyHolder audit(only_non_root("block", "audit"));
  server::Verdicts warned(*store_, metrics_, audit);
  EXPECT_EQ(warned.decide(root_image(), "c", 0.0).decision, policy::Decision::warn);
  server::PolicyHolder off(only_non_root("off"));
  server::Verdicts allowed(*store_, metrics_, off);
  EXPECT_EQ(allowed.decide(root_image(), "c", 0.0).decision, policy::Decision::allow);
  auto sent = bodies();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0]["event"], "warn");
  EXPECT_EQ(sent[0]["verdict"], "warn");
}

TEST_F(Notices, OnlySubscribedKindsAreSent) {
  install({"digest_mismatch"});
  server::PolicyHolder holder(only_non_root("block"));
  server::Verdicts verdicts(*store_, metrics_, holder);
  (void)verdicts.decide(root_image(), "c", 0.0);
  server::notices::reload_failed("nope");
  server::notices::digest_mismatch("up", "team/app", "sha256:1", "sha256:2");
  auto sent = bodies();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0], json({{"event", "digest_mismatch"}, {"time", sent[0]["time"]}, {"instance", "mirror-a"},
                           {"upstream", "up"}, {"repository", "team/app"}, {"digest", "sha256:1"},
                           {"actual", "sha256:2"}}));
}

TEST_F(Notices, AReloadFailureCarriesItsError) {
  install();
  server::notices::reload_failed("ocigate.yaml:3: policy.checks.x: unknown check");
  auto sent = bodies();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0]["event"], "policy_reload_failed");
  EXPECT_EQ(sent[0]["error"], "ocigate.yaml:3: policy.checks.x: unknown check");
  EXPECT_EQ(sent[0]["instance"], "mirror-a");
}

TEST_F(Notices, ASwapSendsLaterEventsToTheNewSetAndNothingInstalledIsANoOp) {
  install();
  server::notices::reload_failed("first");
  ASSERT_TRUE(server::notices::flush(10s));
  auto old = server::notices::install(nullptr, "mirror-a");
  ASSERT_NE(old, nullptr);
  old.reset();
  server::notices::reload_failed("second");  // nobody listens now
  EXPECT_TRUE(server::notices::flush(1s));
  EXPECT_EQ(receiver_.requests().size(), 1u);
}

}  // namespace
