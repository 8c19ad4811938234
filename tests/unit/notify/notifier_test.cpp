// The notifier against loopback receivers: delivered and signed, retried, dropped when full,
// never holding up publish(), no redirects, no internal addresses by name, HTTPS verified.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sample_events.hpp"
#include "test_server.hpp"
#include "ocigate/notify/notifier.hpp"
#include "ocigate/notify/payload.hpp"

namespace ocigate::notify {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using test::blocked;
using test::mismatch;
using upstream::test::Reply;
using upstream::test::ServerRequest;
using upstream::test::TestServer;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Generous: a loaded sanitizer build on a shared machine is slow, and each wait ends as soon as
// its condition holds.
constexpr auto patience = 10s;

config::Webhook webhook_for(const TestServer& server, std::vector<std::string> events = {"block", "warn",
                                                                                        "digest_mismatch",
                                                                                        "policy_reload_failed"}) {
  config::Webhook w;
  w.key = "notify.webhooks[0]";
  w.url = server.origin() + "/hook";
  w.tls = false;
  w.host = "127.0.0.1";
  w.port = server.port();
  w.target = "/hook";
  w.events = std::move(events);
  w.timeout = 2s;
  w.repeat_window = 0s;  // every event goes out; the repeat tests below set a window
  return w;
}

// Short backoffs so retries take milliseconds.
Options fast() {
  Options options;
  options.first_backoff = 10ms;
  options.max_backoff = 40ms;
  return options;
}

Event reload_failed(std::string error) {
  Event event;
  event.kind = EventKind::policy_reload_failed;
  event.error = std::move(error);
  return event;
}

template <class Predicate>
bool wait_until(Predicate predicate, std::chrono::milliseconds limit = patience) {
  const auto deadline = Clock::now() + limit;
  while (!predicate()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

double counted(const metrics::Metrics& metrics, const std::string& result) {
  const std::string prefix = "ocigate_notify_events_total{result=\"" + result + "\"} ";
  const std::string text = metrics.render();
  auto at = text.find(prefix);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + prefix.size()));
}

// Reports, collected from the notifier's thread.
struct Reports {
  Report callback() {
    return [this](const Failure& failure) {
      std::lock_guard lock(mutex);
      all.push_back(failure);
    };
  }
  std::vector<Failure> get() {
    std::lock_guard lock(mutex);
    return all;
  }
  std::mutex mutex;
  std::vector<Failure> all;
};

std::string header(const ServerRequest& request, const std::string& name) {
  auto it = request.find(name);
  return it == request.end() ? std::string("<absent>") : std::string(it->value());
}

TEST(Notifier, DeliversOneSignedPostPerEvent) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto webhook = webhook_for(server);
  webhook.secret = "s3cret";
  metrics::Metrics metrics;
  Notifier notifier({webhook}, &metrics, {}, fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& request = requests[0];
  EXPECT_EQ(request.method(), boost::beast::http::verb::post);
  EXPECT_EQ(request.target(), "/hook");
  EXPECT_EQ(header(request, "Content-Type"), "application/json");
  EXPECT_EQ(header(request, "X-Ocigate-Event"), "block");
  EXPECT_EQ(header(request, "X-Ocigate-Delivery").size(), 32u);
  EXPECT_EQ(header(request, "Host"), "127.0.0.1:" + std::to_string(server.port()));
  // The receiver's check: HMAC-SHA256 of the exact body bytes under the shared secret.
  EXPECT_EQ(header(request, "X-Ocigate-Signature"), "sha256=" + hmac_sha256_hex("s3cret", request.body()));
  auto body = json::parse(request.body());
  EXPECT_EQ(body["event"], "block");
  EXPECT_EQ(body["reference"], "3.19");
  EXPECT_EQ(body["violations"][0]["remediation"], "add USER");
  EXPECT_EQ(notifier.stats().delivered, 1u);
  EXPECT_EQ(counted(metrics, "delivered"), 1);
  EXPECT_EQ(counted(metrics, "retried"), 0);
}

TEST(Notifier, ATamperedBodyNoLongerMatchesItsSignature) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto webhook = webhook_for(server);
  webhook.secret = "s3cret";
  Notifier notifier({webhook}, nullptr, {}, fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  auto request = server.requests().at(0);
  std::string tampered = request.body();
  tampered.replace(tampered.find("3.19"), 4, "3.20");
  EXPECT_NE(header(request, "X-Ocigate-Signature"), "sha256=" + hmac_sha256_hex("s3cret", tampered));
  EXPECT_NE(header(request, "X-Ocigate-Signature"), "sha256=" + hmac_sha256_hex("other", request.body()));
}

TEST(Notifier, SendsNoSignatureWithoutASecret) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  Notifier notifier({webhook_for(server)}, nullptr, {}, fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(header(server.requests()[0], "X-Ocigate-Signature"), "<absent>");
}

TEST(Notifier, SendsOnlyTheEventsAWebhookSubscribedTo) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  Notifier notifier({webhook_for(server, {"digest_mismatch"})}, nullptr, {}, fast());
  EXPECT_FALSE(notifier.wants(EventKind::block));
  EXPECT_TRUE(notifier.wants(EventKind::digest_mismatch));
  notifier.publish(blocked());
  notifier.publish(mismatch());
  ASSERT_TRUE(notifier.flush(patience));
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(header(requests[0], "X-Ocigate-Event"), "digest_mismatch");
  EXPECT_EQ(json::parse(requests[0].body())["actual"], "sha256:2");
}

TEST(Notifier, SendsEachEventToEveryWebhookThatWantsIt) {
  TestServer first([](const ServerRequest&) { return Reply::ok(""); });
  TestServer second([](const ServerRequest&) { return Reply::ok(""); });
  auto slack = webhook_for(second, {"block", "policy_reload_failed"});
  slack.key = "notify.webhooks[1]";
  slack.format = config::WebhookFormat::slack;
  slack.secret = "k";
  Notifier notifier({webhook_for(first, {"block"}), slack}, nullptr, {}, fast());
  notifier.publish(blocked());
  notifier.publish(reload_failed("policy.yaml:1: bad"));
  ASSERT_TRUE(notifier.flush(patience));
  ASSERT_EQ(first.requests().size(), 1u);
  auto slack_requests = second.requests();
  ASSERT_EQ(slack_requests.size(), 2u);
  // In publish order; Slack bodies are {"text": ...}, still signed.
  EXPECT_THAT(json::parse(slack_requests[0].body())["text"].get<std::string>(), HasSubstr("ocigate blocked"));
  EXPECT_THAT(json::parse(slack_requests[1].body())["text"].get<std::string>(), HasSubstr("policy.yaml:1: bad"));
  EXPECT_EQ(header(slack_requests[1], "X-Ocigate-Signature"), "sha256=" + hmac_sha256_hex("k", slack_requests[1].body()));
  EXPECT_EQ(notifier.stats().delivered, 3u);
}

TEST(Notifier, RetriesAfterA500ThenDelivers) {
  int calls = 0;
  TestServer server([&](const ServerRequest&) { return ++calls == 1 ? Reply::with_status(500) : Reply::ok(""); });
  metrics::Metrics metrics;
  Notifier notifier({webhook_for(server)}, &metrics, {}, fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].body(), requests[1].body());
  // The same delivery id: a receiver can tell a retry from a second event.
  EXPECT_EQ(header(requests[0], "X-Ocigate-Delivery"), header(requests[1], "X-Ocigate-Delivery"));
  EXPECT_EQ(notifier.stats().retried, 1u);
  EXPECT_EQ(notifier.stats().delivered, 1u);
  EXPECT_EQ(counted(metrics, "retried"), 1);
  EXPECT_EQ(counted(metrics, "delivered"), 1);
}

TEST(Notifier, GivesUpAfterMaxAttemptsAndReports) {
  TestServer server([](const ServerRequest&) { return Reply::with_status(503); });
  Reports reports;
  metrics::Metrics metrics;
  Options options = fast();
  options.max_attempts = 3;
  Notifier notifier({webhook_for(server)}, &metrics, reports.callback(), options);
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_EQ(notifier.stats().failed, 1u);
  EXPECT_EQ(notifier.stats().retried, 2u);
  EXPECT_EQ(counted(metrics, "failed"), 1);
  auto all = reports.get();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].result, "failed");
  EXPECT_EQ(all[0].event, "block");
  EXPECT_EQ(all[0].attempts, 3u);
  EXPECT_EQ(all[0].webhook, "notify.webhooks[0] (127.0.0.1)");
  EXPECT_THAT(all[0].reason, HasSubstr("answered HTTP 503"));
  EXPECT_THAT(all[0].reason, HasSubstr("gave up after 3 attempts"));
}

TEST(Notifier, DoesNotRetryOtherClientErrors) {
  TestServer server([](const ServerRequest&) { return Reply::with_status(404); });
  Reports reports;
  Notifier notifier({webhook_for(server)}, nullptr, reports.callback(), fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(notifier.stats().failed, 1u);
  EXPECT_EQ(notifier.stats().retried, 0u);
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("HTTP 404"));
}

TEST(Notifier, RetriesA429AfterItsRetryAfter) {
  std::mutex mutex;
  std::vector<Clock::time_point> arrivals;
  TestServer server([&](const ServerRequest&) {
    std::lock_guard lock(mutex);
    arrivals.push_back(Clock::now());
    return arrivals.size() == 1 ? Reply::with_status(429, {{"Retry-After", "1"}}) : Reply::ok("");
  });
  Notifier notifier({webhook_for(server)}, nullptr, {}, fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  std::lock_guard lock(mutex);
  ASSERT_EQ(arrivals.size(), 2u);
  EXPECT_GE(arrivals[1] - arrivals[0], 950ms);  // not the 10 ms backoff
  EXPECT_EQ(notifier.stats().delivered, 1u);
}

TEST(Notifier, CutsALongRetryAfterToItsCap) {
  int calls = 0;
  TestServer server([&](const ServerRequest&) {
    return ++calls == 1 ? Reply::with_status(503, {{"Retry-After", "3600"}}) : Reply::ok("");
  });
  Options options = fast();
  options.max_retry_after = 50ms;
  Notifier notifier({webhook_for(server)}, nullptr, {}, options);
  const auto start = Clock::now();
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_EQ(server.requests().size(), 2u);
}

std::uint16_t closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();  // closed when the acceptor goes
}

TEST(Notifier, RetriesWhenNothingListens) {
  TestServer unused([](const ServerRequest&) { return Reply::ok(""); });
  auto webhook = webhook_for(unused);
  webhook.port = closed_port();
  Reports reports;
  Options options = fast();
  options.max_attempts = 2;
  Notifier notifier({webhook}, nullptr, reports.callback(), options);
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_EQ(notifier.stats().retried, 1u);
  EXPECT_EQ(notifier.stats().failed, 1u);
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("connect to 127.0.0.1:" + std::to_string(webhook.port)));
}

TEST(Notifier, TimesOutAReceiverThatNeverAnswersAndRetries) {
  TestServer server([](const ServerRequest&) { return Reply::never(); });
  auto webhook = webhook_for(server);
  webhook.timeout = 200ms;
  Reports reports;
  Options options = fast();
  options.max_attempts = 2;
  Notifier notifier({webhook}, nullptr, reports.callback(), options);
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(notifier.stats().failed, 1u);
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("no answer within 200ms"));
}

TEST(Notifier, PublishReturnsAtOnceWhileTheReceiverStalls) {
  TestServer server([](const ServerRequest&) { return Reply::never(); });
  auto webhook = webhook_for(server);
  webhook.timeout = 30s;
  auto notifier = std::make_unique<Notifier>(std::vector<config::Webhook>{webhook}, nullptr, Report{}, fast());
  notifier->publish(blocked());
  ASSERT_TRUE(wait_until([&] { return server.requests().size() == 1; }));  // the receiver holds it now
  auto slowest = Clock::duration::zero();
  for (int i = 0; i < 200; ++i) {
    const auto start = Clock::now();
    notifier->publish(blocked(std::to_string(i)));
    slowest = std::max(slowest, Clock::now() - start);
  }
  // A behaviour bound with a wide margin: a publish that waited on the receiver would take 30 s.
  EXPECT_LT(slowest, 50ms);
  EXPECT_FALSE(notifier->flush(100ms));  // still stalled
  EXPECT_EQ(server.requests().size(), 1u);
  const auto start = Clock::now();
  notifier.reset();  // stops without waiting for the stalled receiver
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST(Notifier, DropsAndCountsEventsWhenTheQueueIsFull) {
  TestServer server([](const ServerRequest&) { return Reply::never(); });
  auto webhook = webhook_for(server);
  webhook.timeout = 30s;
  Reports reports;
  metrics::Metrics metrics;
  Options options = fast();
  options.queue_capacity = 2;
  auto notifier = std::make_unique<Notifier>(std::vector<config::Webhook>{webhook}, &metrics, reports.callback(), options);
  notifier->publish(blocked("in-flight"));
  ASSERT_TRUE(wait_until([&] { return server.requests().size() == 1; }));
  for (int i = 0; i < 5; ++i) notifier->publish(blocked(std::to_string(i)));  // 2 queued, 3 dropped
  EXPECT_EQ(notifier->stats().dropped, 3u);
  EXPECT_EQ(counted(metrics, "dropped"), 3);
  ASSERT_TRUE(wait_until([&] { return !reports.get().empty(); }));
  std::this_thread::sleep_for(50ms);  // a second report would have come by now
  auto all = reports.get();
  ASSERT_EQ(all.size(), 1u);  // once per run of drops
  EXPECT_EQ(all[0].result, "dropped");
  EXPECT_THAT(all[0].reason, HasSubstr("queue full (2 events waiting)"));
  notifier.reset();
  // Stopping drops what was queued (2) and the one being sent.
  EXPECT_EQ(counted(metrics, "dropped"), 6);
  EXPECT_EQ(counted(metrics, "delivered"), 0);
}

// Docker's HEAD by tag, then GET by digest, from two nodes: one message, and one repeat held back.
TEST(Notifier, HoldsBackARepeatWithinTheWindowAndCountsIt) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto webhook = webhook_for(server);
  webhook.repeat_window = 600s;
  metrics::Metrics metrics;
  Notifier notifier({webhook}, &metrics, {}, fast());
  notifier.publish(blocked("3.19"));
  Event again = blocked("sha256:" + std::string(64, 'a'));
  again.client = "10.0.0.8";
  notifier.publish(again);
  Event other_image = blocked("3.19");
  other_image.image = "docker.io/library/busybox";
  notifier.publish(other_image);
  ASSERT_TRUE(notifier.flush(patience));
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(json::parse(requests[0].body())["reference"], "3.19");
  EXPECT_EQ(json::parse(requests[1].body())["image"], "docker.io/library/busybox");
  EXPECT_EQ(notifier.stats().delivered, 2u);
  EXPECT_EQ(notifier.stats().suppressed, 1u);
  EXPECT_EQ(counted(metrics, "suppressed"), 1);
}

TEST(Notifier, SendsARepeatAfterItsWindowWithHowManyWereHeldBack) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto webhook = webhook_for(server);
  webhook.repeat_window = 1s;
  Notifier notifier({webhook}, nullptr, {}, fast());
  for (int i = 0; i < 3; ++i) notifier.publish(blocked());  // one sent, two held back
  std::this_thread::sleep_for(1100ms);
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_FALSE(json::parse(requests[0].body()).contains("repeats"));
  EXPECT_EQ(json::parse(requests[1].body())["repeats"], 2);
  EXPECT_EQ(notifier.stats().suppressed, 2u);
}

TEST(Notifier, EachWebhookHoldsBackOnlyWhatItSent) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto windowed = webhook_for(server);
  windowed.repeat_window = 600s;
  auto every = webhook_for(server);
  every.key = "notify.webhooks[1]";
  every.target = "/every";
  Notifier notifier({windowed, every}, nullptr, {}, fast());
  notifier.publish(blocked());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  std::vector<std::string> targets;
  for (const auto& request : server.requests()) targets.emplace_back(request.target());
  std::sort(targets.begin(), targets.end());
  EXPECT_THAT(targets, ::testing::ElementsAre("/every", "/every", "/hook"));
}

// A SIGHUP builds a new notifier: what the old one sent to a URL is still held back by the new
// one's webhook with that URL, and the repeats it held back are still counted; a webhook with
// another URL starts afresh.
TEST(Notifier, ANotifierThatReplacesAnotherRemembersWhatItSentToTheSameUrl) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto hook = webhook_for(server);
  hook.repeat_window = 1s;
  auto before = std::make_unique<Notifier>(std::vector<config::Webhook>{hook}, nullptr, Report{}, fast());
  before->publish(blocked());  // sent
  before->publish(blocked());  // held back
  ASSERT_TRUE(before->flush(patience));
  auto other = webhook_for(server);
  other.key = "notify.webhooks[1]";
  other.url = server.origin() + "/other";
  other.target = "/other";
  other.repeat_window = 600s;
  Notifier after({hook, other}, nullptr, {}, fast());
  after.remember_sent_by(*before);
  before.reset();
  after.publish(blocked());  // held back at /hook (the second repeat), sent to /other
  ASSERT_TRUE(after.flush(patience));
  EXPECT_EQ(after.stats().suppressed, 1u);
  std::this_thread::sleep_for(1100ms);  // past /hook's window
  after.publish(blocked());
  ASSERT_TRUE(after.flush(patience));
  std::vector<std::pair<std::string, json>> sent;
  for (const auto& request : server.requests()) sent.emplace_back(request.target(), json::parse(request.body()));
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].first, "/hook");
  EXPECT_EQ(sent[1].first, "/other");
  EXPECT_FALSE(sent[1].second.contains("repeats"));
  EXPECT_EQ(sent[2].first, "/hook");
  EXPECT_EQ(sent[2].second["repeats"], 2);  // one held back before the swap, one after
}

// A delivery that failed (here a 400, not retried) holds nothing back: the next repeat goes out.
TEST(Notifier, AnEventWhoseDeliveryFailedHoldsNoRepeatBack) {
  std::atomic<int> seen{0};
  TestServer server([&](const ServerRequest&) { return ++seen == 1 ? Reply::with_status(400) : Reply::ok(""); });
  auto webhook = webhook_for(server);
  webhook.repeat_window = 600s;
  Notifier notifier({webhook}, nullptr, {}, fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(notifier.stats().failed, 1u);
  EXPECT_EQ(notifier.stats().delivered, 1u);
  EXPECT_EQ(notifier.stats().suppressed, 0u);
}

// A dropped event (no room in the queue) holds nothing back either.
TEST(Notifier, ADroppedEventHoldsNoRepeatBack) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto webhook = webhook_for(server);
  webhook.repeat_window = 600s;
  Options no_room = fast();
  no_room.queue_capacity = 0;
  Notifier notifier({webhook}, nullptr, {}, no_room);
  notifier.publish(blocked());
  notifier.publish(blocked());
  EXPECT_EQ(notifier.stats().dropped, 2u);
  EXPECT_EQ(notifier.stats().suppressed, 0u);
}

// A webhook whose format changed (json to slack) at the same URL starts afresh after a reload: what
// went out before was another message.
TEST(Notifier, AReloadThatChangesAWebhooksFormatStartsItsRepeatsAfresh) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto hook = webhook_for(server);
  hook.repeat_window = 600s;
  auto before = std::make_unique<Notifier>(std::vector<config::Webhook>{hook}, nullptr, Report{}, fast());
  before->publish(blocked());
  ASSERT_TRUE(before->flush(patience));
  hook.format = config::WebhookFormat::slack;
  Notifier after({hook}, nullptr, {}, fast());
  after.remember_sent_by(*before);
  before.reset();
  after.publish(blocked());
  ASSERT_TRUE(after.flush(patience));
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_TRUE(json::parse(server.requests()[1].body()).contains("text"));
}

TEST(Notifier, DoesNotFollowRedirects) {
  TestServer elsewhere([](const ServerRequest&) { return Reply::ok(""); });
  const std::string location = elsewhere.origin() + "/stolen";
  TestServer server([&](const ServerRequest&) { return Reply::with_status(302, {{"Location", location}}); });
  Reports reports;
  Notifier notifier({webhook_for(server)}, nullptr, reports.callback(), fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_EQ(server.requests().size(), 1u);
  EXPECT_TRUE(elsewhere.requests().empty());
  EXPECT_EQ(notifier.stats().failed, 1u);
  EXPECT_EQ(notifier.stats().retried, 0u);
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("HTTP 302: redirects are not followed"));
}

// A resolver that answers every name with one address, and counts its calls.
struct FixedResolver {
  explicit FixedResolver(std::string answer) : address(std::move(answer)) {}
  upstream::Resolve resolve() {
    return [this](std::string host, std::string service) -> asio::awaitable<Result<std::vector<asio::ip::tcp::endpoint>>> {
      ++calls;
      last_host = host;
      co_return std::vector<asio::ip::tcp::endpoint>{
          {asio::ip::make_address(address), static_cast<std::uint16_t>(std::stoi(service))}};
    };
  }
  std::string address;
  std::atomic<int> calls{0};
  std::string last_host;
};

TEST(Notifier, RefusesANameThatResolvesToCloudMetadata) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto webhook = webhook_for(server);
  webhook.host = "hooks.example.com";
  FixedResolver resolver{"169.254.169.254"};
  Reports reports;
  Options options = fast();
  options.resolve = resolver.resolve();
  Notifier notifier({webhook}, nullptr, reports.callback(), options);
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_EQ(resolver.calls.load(), 1);  // refused, not retried
  EXPECT_EQ(notifier.stats().failed, 1u);
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("hooks.example.com resolves to 169.254.169.254 (link-local)"));
}

TEST(Notifier, RefusesANameThatResolvesToLoopbackUnlessTheUrlSaysLocalhost) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto webhook = webhook_for(server);
  webhook.host = "hooks.example.com";
  FixedResolver resolver{"127.0.0.1"};
  Reports reports;
  Options options = fast();
  options.resolve = resolver.resolve();
  {
    Notifier notifier({webhook}, nullptr, reports.callback(), options);
    notifier.publish(blocked());
    ASSERT_TRUE(notifier.flush(patience));
    EXPECT_EQ(notifier.stats().failed, 1u);
  }
  EXPECT_TRUE(server.requests().empty());
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("resolves to 127.0.0.1 (loopback)"));
  webhook.host = "localhost";
  Notifier named({webhook}, nullptr, {}, options);
  named.publish(blocked());
  ASSERT_TRUE(named.flush(patience));
  EXPECT_EQ(named.stats().delivered, 1u);
  EXPECT_EQ(resolver.last_host, "localhost");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(header(server.requests()[0], "Host"), "localhost:" + std::to_string(server.port()));
}

TEST(Notifier, RefusesALinkLocalAddressEvenWhenTheUrlNamesIt) {
  // Config refuses such a URL; the notifier holds the line on its own as well.
  TestServer server([](const ServerRequest&) { return Reply::ok(""); });
  auto webhook = webhook_for(server);
  webhook.host = "169.254.169.254";
  Reports reports;
  Notifier notifier({webhook}, nullptr, reports.callback(), fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_EQ(notifier.stats().failed, 1u);
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("(link-local)"));
}

TEST(Notifier, WithoutWebhooksPublishIsANoOp) {
  Notifier notifier({}, nullptr);
  EXPECT_FALSE(notifier.wants(EventKind::block));
  notifier.publish(blocked());
  EXPECT_TRUE(notifier.flush(0ms));
  EXPECT_EQ(notifier.stats().dropped, 0u);
}

// ---- HTTPS ----

class NotifierTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("ocigate-notify-tls-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                          "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '" +
                          (dir_ / "key.pem").string() + "' -out '" + (dir_ / "cert.pem").string() +
                          "' >/dev/null 2>&1";
    generated_ = std::system(command.c_str()) == 0;
    std::ofstream(dir_ / "garbage.pem") << "not a certificate\n";
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void SetUp() override {
    ASSERT_TRUE(generated_) << "openssl could not generate a test certificate";
    server_tls_.use_certificate_chain_file((dir_ / "cert.pem").string());
    server_tls_.use_private_key_file((dir_ / "key.pem").string(), asio::ssl::context::pem);
  }
  static config::Webhook https_for(const TestServer& server) {
    auto w = webhook_for(server);
    w.tls = true;
    w.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/hook";
    w.secret = "tls-secret";
    return w;
  }

  static inline fs::path dir_;
  static inline bool generated_ = false;
  asio::ssl::context server_tls_{asio::ssl::context::tls_server};
};

TEST_F(NotifierTls, DeliversToAServerItsCaFileTrusts) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); }, &server_tls_);
  auto webhook = https_for(server);
  webhook.ca_file = (dir_ / "cert.pem").string();
  Notifier notifier({webhook}, nullptr, {}, fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  ASSERT_EQ(server.requests().size(), 1u);
  const auto request = server.requests()[0];  // requests() returns a copy
  EXPECT_EQ(header(request, "X-Ocigate-Signature"), "sha256=" + hmac_sha256_hex("tls-secret", request.body()));
  EXPECT_EQ(notifier.stats().delivered, 1u);
}

TEST_F(NotifierTls, RefusesAnUntrustedCertificateWithoutRetrying) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); }, &server_tls_);
  Reports reports;
  Notifier notifier({https_for(server)}, nullptr, reports.callback(), fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_TRUE(server.requests().empty());
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(notifier.stats().failed, 1u);
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("certificate verification failed"));
}

TEST_F(NotifierTls, RefusesACertificateForAnotherName) {
  // The certificate names the address 127.0.0.1 only; "localhost" reaches the same server.
  TestServer server([](const ServerRequest&) { return Reply::ok(""); }, &server_tls_);
  auto webhook = https_for(server);
  webhook.host = "localhost";
  webhook.ca_file = (dir_ / "cert.pem").string();
  FixedResolver resolver{"127.0.0.1"};
  Options options = fast();
  options.resolve = resolver.resolve();
  Reports reports;
  Notifier notifier({webhook}, nullptr, reports.callback(), options);
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_TRUE(server.requests().empty());
  EXPECT_EQ(notifier.stats().failed, 1u);
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("certificate verification failed"));
}

TEST_F(NotifierTls, ReportsAnUnusableCaFile) {
  TestServer server([](const ServerRequest&) { return Reply::ok(""); }, &server_tls_);
  auto webhook = https_for(server);
  webhook.ca_file = (dir_ / "garbage.pem").string();
  Reports reports;
  Notifier notifier({webhook}, nullptr, reports.callback(), fast());
  notifier.publish(blocked());
  ASSERT_TRUE(notifier.flush(patience));
  EXPECT_EQ(server.connections(), 0);
  ASSERT_EQ(reports.get().size(), 1u);
  EXPECT_THAT(reports.get()[0].reason, HasSubstr("cannot load ca_file"));
}

}  // namespace
}  // namespace ocigate::notify
