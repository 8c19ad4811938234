// notify.webhooks: parsing, defaults and every kind of refusal, each naming its key and line.
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support.hpp"
#include "ocigate/config/config.hpp"

namespace ocigate::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Line 1-3: an upstream; line 4 "notify:", line 5 "  webhooks:", line 6 the first entry's first key.
std::string with_webhooks(const std::string& entries) {
  return "upstreams:\n  - name: docker.io\n    url: https://registry-1.docker.io\nnotify:\n  webhooks:\n" + entries;
}

// One entry whose first line is `url: <url>` (line 6) and second `events: [block]` (line 7),
// then `extra` lines (line 8 on), each indented under the entry.
std::string webhook(const std::string& url, const std::string& extra = "") {
  return with_webhooks("    - url: " + url + "\n      events: [block]\n" + extra);
}

Result<Config> parse_text(const std::string& text) { return parse(text, "test.yaml"); }

::testing::AssertionResult refused(const std::string& text, int line, const std::string& key, std::string_view what) {
  auto result = parse_text(text);
  if (result.ok()) return ::testing::AssertionFailure() << "accepted:\n" << text;
  const auto& message = result.error().message;
  auto prefix = "test.yaml:" + std::to_string(line) + ": " + key + ": ";
  if (message.rfind(prefix, 0) != 0) return ::testing::AssertionFailure() << "expected '" << prefix << "' in: " << message;
  if (message.find(what) == std::string::npos) {
    return ::testing::AssertionFailure() << "expected '" << what << "' in: " << message;
  }
  return ::testing::AssertionSuccess() << message;
}

class NotifyConfig : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    auto path = (std::filesystem::path(dir_.path()) / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  ocigate::test::TempDir dir_;
};

TEST_F(NotifyConfig, AbsentMeansNoWebhooks) {
  auto config = parse_text(with_webhooks(""));
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_TRUE(config->notify.webhooks.empty());
  auto bare = parse_text("upstreams:\n  - name: docker.io\n    url: https://registry-1.docker.io\nnotify:\n");
  ASSERT_TRUE(bare.ok()) << bare.error().message;
  EXPECT_TRUE(bare->notify.webhooks.empty());
}

TEST_F(NotifyConfig, ParsesEveryKeyOfAnEntry) {
  auto secret = write("secret", "s3cr3t\n");
  auto ca = write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  auto config = parse_text(with_webhooks("    - url: https://hooks.example.com:8443/in/ocigate?team=sec\n"
                                         "      events: [block, warn, digest_mismatch, policy_reload_failed]\n"
                                         "      secret_file: " + secret + "\n"
                                         "      timeout: 1m30s\n"
                                         "      format: slack\n"
                                         "      ca_file: " + ca + "\n"
                                         "      repeat_window: 1h\n"));
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_EQ(config->notify.webhooks.size(), 1u);
  const auto& w = config->notify.webhooks[0];
  EXPECT_EQ(w.key, "notify.webhooks[0]");
  EXPECT_EQ(w.url, "https://hooks.example.com:8443/in/ocigate?team=sec");
  EXPECT_TRUE(w.tls);
  EXPECT_EQ(w.host, "hooks.example.com");
  EXPECT_EQ(w.port, 8443);
  EXPECT_EQ(w.target, "/in/ocigate?team=sec");
  EXPECT_THAT(w.events, ElementsAre("block", "warn", "digest_mismatch", "policy_reload_failed"));
  EXPECT_EQ(w.secret_file, secret);
  EXPECT_EQ(w.secret, "s3cr3t");  // one line ending stripped, as for password_file
  EXPECT_EQ(w.timeout, std::chrono::seconds(90));
  EXPECT_EQ(w.format, WebhookFormat::slack);
  EXPECT_EQ(w.ca_file, ca);
  EXPECT_EQ(w.repeat_window, std::chrono::hours(1));
}

TEST_F(NotifyConfig, DefaultsToJsonFiveSecondsUnsignedAndRootPath) {
  auto config = parse_text(webhook("https://hooks.example.com"));
  ASSERT_TRUE(config.ok()) << config.error().message;
  const auto& w = config->notify.webhooks.at(0);
  EXPECT_EQ(w.format, WebhookFormat::json);
  EXPECT_EQ(w.timeout, std::chrono::seconds(5));
  EXPECT_EQ(w.repeat_window, std::chrono::minutes(10));
  EXPECT_TRUE(w.secret.empty());
  EXPECT_EQ(w.port, 443);
  EXPECT_EQ(w.target, "/");
}

TEST_F(NotifyConfig, KeepsSeveralEntriesInOrder) {
  auto config = parse_text(with_webhooks("    - { url: \"https://a.example/x\", events: [block] }\n"
                                         "    - { url: \"https://b.example/y\", events: [warn], format: json }\n"));
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_EQ(config->notify.webhooks.size(), 2u);
  EXPECT_EQ(config->notify.webhooks[1].key, "notify.webhooks[1]");
  EXPECT_EQ(config->notify.webhooks[1].host, "b.example");
  EXPECT_THAT(config->notify.webhooks[1].events, ElementsAre("warn"));
}

TEST_F(NotifyConfig, AllowsPlainHttpToLoopbackOnly) {
  for (std::string url : {"http://127.0.0.1:9000/hook", "http://127.8.9.10/", "http://[::1]:9000/", "http://localhost:9000",
                          "http://LOCALHOST/", "http://[::ffff:127.0.0.1]:80/"}) {
    auto config = parse_text(webhook(url));
    ASSERT_TRUE(config.ok()) << url << ": " << config.error().message;
    EXPECT_FALSE(config->notify.webhooks.at(0).tls);
    EXPECT_EQ(config->notify.webhooks.at(0).port, url.find(":9000") != std::string::npos ? 9000 : 80) << url;
  }
  EXPECT_EQ(parse_text(webhook("http://[::1]:9000/")).value().notify.webhooks[0].host, "::1");
  for (std::string url : {"http://hooks.example.com/", "http://10.0.0.5/", "http://192.168.1.1:8080/",
                          "http://localhost.example.com/"}) {
    EXPECT_TRUE(refused(webhook(url), 6, "notify.webhooks[0].url", "plain http is allowed only to a loopback host"))
        << url;
  }
}

TEST_F(NotifyConfig, AllowsHttpsToAPrivateAddressLiteral) {
  auto config = parse_text(webhook("https://10.1.2.3/hook"));
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->notify.webhooks[0].host, "10.1.2.3");
}

TEST_F(NotifyConfig, RefusesLinkLocalAndOtherNeverReachableLiterals) {
  for (std::string url : {"https://169.254.169.254/latest/meta-data", "http://169.254.1.1/", "https://[fe80::1]/",
                          "https://[::ffff:169.254.169.254]/", "https://0.0.0.0/", "https://[::]/",
                          "https://224.0.0.1/"}) {
    EXPECT_TRUE(refused(webhook(url), 6, "notify.webhooks[0].url", "never a webhook")) << url;
  }
}

TEST_F(NotifyConfig, RefusesUrlsThatAreNotHttpsWebhooks) {
  const std::string key = "notify.webhooks[0].url";
  EXPECT_TRUE(refused(webhook("hooks.example.com/x"), 6, key, "not an absolute http(s) URL"));
  EXPECT_TRUE(refused(webhook("\"https://exa mple.com/\""), 6, key, "not an absolute http(s) URL"));
  EXPECT_TRUE(refused(webhook("ftp://hooks.example.com/"), 6, key, "scheme must be https, got 'ftp'"));
  EXPECT_TRUE(refused(webhook("https://user:pw@hooks.example.com/"), 6, key, "must not carry credentials"));
  EXPECT_TRUE(refused(webhook("\"https://hooks.example.com/#frag\""), 6, key, "must not have a fragment"));
  EXPECT_TRUE(refused(webhook("https:///path"), 6, key, "has no host"));
  EXPECT_TRUE(refused(webhook("https://ho%6Fks.example.com/"), 6, key, "percent-encoded"));
  EXPECT_TRUE(refused(webhook("https://hooks.example.com:0/"), 6, key, "bad port '0'"));
  EXPECT_TRUE(refused(webhook("https://hooks.example.com:70000/"), 6, key, "bad port '70000'"));
  EXPECT_TRUE(refused(webhook("[https://a.example]"), 6, key, "must be a single value, not a list"));
}

TEST_F(NotifyConfig, NeverRepeatsTheUrlInAMessage) {
  // A Slack incoming-webhook URL is the credential itself.
  const std::string token = "T0000/B0000/XXXXsecretXXXX";
  for (std::string url : {"http://hooks.slack.com/services/" + token, "ftp://hooks.slack.com/services/" + token,
                          "https://u:p@hooks.slack.com/services/" + token}) {
    auto result = parse_text(webhook(url));
    ASSERT_FALSE(result.ok()) << url;
    EXPECT_THAT(result.error().message, Not(HasSubstr("secretXXXX")));
  }
}

TEST_F(NotifyConfig, RefusesMissingEmptyUnknownAndDuplicateEvents) {
  EXPECT_TRUE(refused(with_webhooks("    - url: https://a.example\n"), 6, "notify.webhooks[0].events", "is required"));
  EXPECT_TRUE(refused(with_webhooks("    - url: https://a.example\n      events: []\n"), 7, "notify.webhooks[0].events",
                      "at least one event"));
  EXPECT_TRUE(refused(with_webhooks("    - url: https://a.example\n      events:\n"), 7, "notify.webhooks[0].events",
                      "at least one event"));
  EXPECT_TRUE(refused(with_webhooks("    - url: https://a.example\n      events: block\n"), 7,
                      "notify.webhooks[0].events", "must be a list"));
  EXPECT_TRUE(refused(with_webhooks("    - url: https://a.example\n      events:\n        - block\n        - blocked\n"),
                      9, "notify.webhooks[0].events[1]", "unknown event 'blocked'"));
  EXPECT_TRUE(refused(with_webhooks("    - url: https://a.example\n      events: [warn, block, warn]\n"), 7,
                      "notify.webhooks[0].events[2]", "duplicate event 'warn'"));
  EXPECT_TRUE(refused(with_webhooks("    - url: https://a.example\n      events: [[block]]\n"), 7,
                      "notify.webhooks[0].events[0]", "must be a single value"));
}

TEST_F(NotifyConfig, RefusesAMissingUrl) {
  EXPECT_TRUE(refused(with_webhooks("    - events: [block]\n"), 6, "notify.webhooks[0].url", "is required"));
}

TEST_F(NotifyConfig, RefusesUnknownKeysWithASuggestion) {
  EXPECT_TRUE(refused(webhook("https://a.example", "      secret_fle: x\n"), 8, "notify.webhooks[0].secret_fle",
                      "unknown key (did you mean secret_file?)"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      secret: x\n"), 8, "notify.webhooks[0].secret", "unknown key"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      timout: 5s\n"), 8, "notify.webhooks[0].timout",
                      "did you mean timeout?"));
  EXPECT_TRUE(refused("upstreams:\n  - name: docker.io\n    url: https://registry-1.docker.io\nnotify:\n  webhook: []\n",
                      5, "notify.webhook", "did you mean webhooks?"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      format: json\n      format: slack\n"), 9,
                      "notify.webhooks[0].format", "duplicate key"));
}

TEST_F(NotifyConfig, RefusesSectionsOfTheWrongShape) {
  const std::string head = "upstreams:\n  - name: docker.io\n    url: https://registry-1.docker.io\n";
  EXPECT_TRUE(refused(head + "notify: [a]\n", 4, "notify", "must be a mapping"));
  EXPECT_TRUE(refused(head + "notify:\n  webhooks: https://a.example\n", 5, "notify.webhooks", "must be a list"));
  EXPECT_TRUE(refused(with_webhooks("    - https://a.example\n"), 6, "notify.webhooks[0]", "must be a mapping"));
  EXPECT_TRUE(refused(with_webhooks("    - url: https://a.example\n      events: [block]\n    - ~\n"), 8,
                      "notify.webhooks[1]", "must be a mapping"));
}

TEST_F(NotifyConfig, RefusesBadTimeouts) {
  const std::string key = "notify.webhooks[0].timeout";
  EXPECT_TRUE(refused(webhook("https://a.example", "      timeout: 5\n"), 8, key, "bad duration '5'"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      timeout: soon\n"), 8, key, "bad duration"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      timeout: 0s\n"), 8, key, "longer than 0s"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      timeout: 6m\n"), 8, key, "at most 5m"));
  auto longest = parse_text(webhook("https://a.example", "      timeout: 5m\n"));
  ASSERT_TRUE(longest.ok()) << longest.error().message;
  EXPECT_EQ(longest->notify.webhooks[0].timeout, std::chrono::minutes(5));
}

TEST_F(NotifyConfig, TakesARepeatWindowFromZeroToADay) {
  const std::string key = "notify.webhooks[0].repeat_window";
  EXPECT_TRUE(refused(webhook("https://a.example", "      repeat_window: 10\n"), 8, key, "bad duration '10'"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      repeat_window: -1m\n"), 8, key, "bad duration"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      repeat_window: 25h\n"), 8, key, "at most 24h"));
  for (auto [text, want] : {std::pair{"0s", std::chrono::seconds(0)}, std::pair{"24h", std::chrono::seconds(86400)}}) {
    auto config = parse_text(webhook("https://a.example", std::string("      repeat_window: ") + text + "\n"));
    ASSERT_TRUE(config.ok()) << text << ": " << config.error().message;
    EXPECT_EQ(config->notify.webhooks[0].repeat_window, want) << text;
  }
}

TEST_F(NotifyConfig, RefusesAnUnknownFormat) {
  EXPECT_TRUE(refused(webhook("https://a.example", "      format: teams\n"), 8, "notify.webhooks[0].format",
                      "must be json or slack, got 'teams'"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      format: JSON\n"), 8, "notify.webhooks[0].format",
                      "must be json or slack"));
}

TEST_F(NotifyConfig, RefusesUnreadableOrEmptySecretFiles) {
  const std::string key = "notify.webhooks[0].secret_file";
  auto missing = (std::filesystem::path(dir_.path()) / "missing").string();
  EXPECT_TRUE(refused(webhook("https://a.example", "      secret_file: " + missing + "\n"), 8, key,
                      "cannot read " + missing + ": No such file or directory"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      secret_file: " + dir_.path() + "\n"), 8, key,
                      "Is a directory"));
  auto empty = write("empty", "\n");
  EXPECT_TRUE(refused(webhook("https://a.example", "      secret_file: " + empty + "\n"), 8, key, empty + " is empty"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      secret_file: \"\"\n"), 8, key, "must be a file path"));
  EXPECT_TRUE(refused(webhook("https://a.example", "      secret_file: /dev/zero\n"), 8, key, "larger than"));
}

TEST_F(NotifyConfig, NeverPutsTheSecretInAMessage) {
  auto secret = write("secret", "hunter2-very-secret\n");
  auto result = parse_text(webhook("https://a.example", "      secret_file: " + secret + "\n      timeout: soon\n"));
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.error().message, Not(HasSubstr("hunter2")));
}

TEST_F(NotifyConfig, RefusesAnUnreadableCaFile) {
  auto missing = (std::filesystem::path(dir_.path()) / "ca.pem").string();
  EXPECT_TRUE(refused(webhook("https://a.example", "      ca_file: " + missing + "\n"), 8, "notify.webhooks[0].ca_file",
                      "cannot read " + missing));
}

// The commented-out example in config/ocigate.yaml, uncommented, must load (its secret_file and
// ca_file pointed at files that exist here).
TEST_F(NotifyConfig, TheShippedExampleLoadsOnceUncommented) {
  std::ifstream in(OCIGATE_EXAMPLE_CONFIG);
  std::string line, block;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line == "# notify:") inside = true;
    if (!inside) continue;
    if (line.rfind("#", 0) != 0) break;
    line = line.size() > 2 ? line.substr(2) : "";
    if (auto at = line.find("/etc/ocigate/webhook.secret"); at != std::string::npos) {
      line.replace(at, std::string("/etc/ocigate/webhook.secret").size(), write("secret", "s\n"));
    }
    if (auto at = line.find("# ca_file:"); at != std::string::npos) line = line.substr(0, at) + "ca_file: " + write("ca", "x");
    block += line + "\n";
  }
  ASSERT_FALSE(block.empty()) << "no '# notify:' block in " << OCIGATE_EXAMPLE_CONFIG;
  auto config = parse_text("upstreams:\n  - name: docker.io\n    url: https://registry-1.docker.io\n" + block);
  ASSERT_TRUE(config.ok()) << config.error().message << "\n" << block;
  ASSERT_EQ(config->notify.webhooks.size(), 2u);
  EXPECT_EQ(config->notify.webhooks[0].secret, "s");
  EXPECT_FALSE(config->notify.webhooks[0].ca_file.empty());
  EXPECT_EQ(config->notify.webhooks[1].format, WebhookFormat::slack);
}

}  // namespace
}  // namespace ocigate::config
