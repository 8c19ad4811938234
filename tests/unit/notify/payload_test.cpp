// What a webhook receives: the JSON and Slack bodies of each event kind, and the signature.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support.hpp"
#include "ocigate/notify/payload.hpp"

namespace ocigate::notify {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

// 2024-03-01T12:34:56.789Z
std::chrono::system_clock::time_point fixed_time() {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(1709296496789));
}

json two_violations() {
  return json::array({{{"check", "non-root-user"},
                       {"action", "block"},
                       {"message", "the image runs as root"},
                       {"remediation", "add USER 10001 to the Dockerfile"},
                       {"evidence", "User is empty"},
                       {"origin", "policy"}},
                      {{"check", "healthcheck"}, {"action", "warn"}, {"message", "no HEALTHCHECK"}}});
}

Event blocked() {
  Event event;
  event.kind = EventKind::block;
  event.time = fixed_time();
  event.client = "10.0.0.7 alice";
  event.image = "docker.io/library/alpine";
  event.reference = "3.19";
  event.digest = "sha256:" + std::string(64, 'a');
  event.violations = two_violations();
  event.policy_version = "pv-42";
  return event;
}

Event mismatch() {
  Event event;
  event.kind = EventKind::digest_mismatch;
  event.time = fixed_time();
  event.digest = "sha256:" + std::string(64, 'b');
  event.upstream = "docker.io";
  event.repository = "library/alpine";
  event.actual = "sha256:" + std::string(64, 'c');
  return event;
}

Event reload_failed(std::string error) {
  Event event;
  event.kind = EventKind::policy_reload_failed;
  event.time = fixed_time();
  event.error = std::move(error);
  return event;
}

TEST(EventKinds, NamesRoundTripAndMatchTheConfigList) {
  for (auto name : config::webhook_event_names) {
    auto kind = parse_kind(name);
    ASSERT_TRUE(kind) << name;
    EXPECT_EQ(kind_name(*kind), name);
  }
  EXPECT_EQ(std::size(config::webhook_event_names), 4u);
  EXPECT_FALSE(parse_kind("blocked"));
  EXPECT_FALSE(parse_kind(""));
}

TEST(JsonBody, BlockCarriesTheAuditLinesFields) {
  auto body = json::parse(json_body(blocked()));
  EXPECT_EQ(body, json({{"event", "block"},
                        {"time", "2024-03-01T12:34:56.789Z"},
                        {"client", "10.0.0.7 alice"},
                        {"image", "docker.io/library/alpine"},
                        {"reference", "3.19"},
                        {"digest", "sha256:" + std::string(64, 'a')},
                        {"verdict", "block"},
                        {"violations", two_violations()},
                        {"policy_version", "pv-42"}}));
}

TEST(JsonBody, WarnSaysWarn) {
  Event event = blocked();
  event.kind = EventKind::warn;
  auto body = json::parse(json_body(event));
  EXPECT_EQ(body["event"], "warn");
  EXPECT_EQ(body["verdict"], "warn");
  EXPECT_EQ(body["violations"], two_violations());
}

TEST(JsonBody, DigestMismatchCarriesOnlyItsFields) {
  EXPECT_EQ(json::parse(json_body(mismatch())), json({{"event", "digest_mismatch"},
                                                 {"time", "2024-03-01T12:34:56.789Z"},
                                                 {"upstream", "docker.io"},
                                                 {"repository", "library/alpine"},
                                                 {"digest", "sha256:" + std::string(64, 'b')},
                                                 {"actual", "sha256:" + std::string(64, 'c')}}));
}

TEST(JsonBody, PolicyReloadFailedCarriesTheError) {
  EXPECT_EQ(json::parse(json_body(reload_failed("policy.yaml:3: checks.x: unknown"))), json({{"event", "policy_reload_failed"},
                                                 {"time", "2024-03-01T12:34:56.789Z"},
                                                 {"error", "policy.yaml:3: checks.x: unknown"}}));
}

TEST(JsonBody, EveryKindNamesTheInstanceThatSawIt) {
  for (Event event : {blocked(), mismatch(), reload_failed("e")}) {
    event.instance = "mirror-eu-1";
    auto body = json::parse(json_body(event));
    EXPECT_EQ(body["instance"], "mirror-eu-1") << body.dump();
  }
  EXPECT_FALSE(json::parse(json_body(blocked())).contains("instance"));  // unset: left out, not ""
}

TEST(JsonBody, TimeHasMillisecondsAndNeverRoundsUp) {
  Event event = reload_failed("e");
  event.time = std::chrono::system_clock::time_point(std::chrono::microseconds(1709296496999999));
  EXPECT_EQ(json::parse(json_body(event))["time"], "2024-03-01T12:34:56.999Z");
}

TEST(JsonBody, InvalidUtf8IsReplacedNotThrown) {
  Event event = blocked();
  event.client = std::string("bad \xff\xfe bytes");
  std::string text;
  ASSERT_NO_THROW(text = json_body(event));
  EXPECT_EQ(json::parse(text)["client"], "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

TEST(JsonBody, ViolationsThatAreNotAListBecomeAnEmptyList) {
  Event event = blocked();
  event.violations = json::object();
  EXPECT_EQ(json::parse(json_body(event))["violations"], json::array());
}

std::string slack_text(const Event& event) {
  auto body = json::parse(slack_body(event));
  EXPECT_EQ(body.size(), 1u) << body;  // {"text": ...} and nothing else
  return body.value("text", "");
}

TEST(JsonBody, RepeatsAppearOnlyWhenSomeWereHeldBack) {
  EXPECT_FALSE(json::parse(json_body(blocked())).contains("repeats"));
  auto event = mismatch();
  event.repeats = 3;
  EXPECT_EQ(json::parse(json_body(event))["repeats"], 3);
}

TEST(SlackBody, SaysHowManyRepeatsWereHeldBack) {
  auto event = blocked();
  EXPECT_THAT(json::parse(slack_body(event))["text"].get<std::string>(), Not(HasSubstr("more like this")));
  event.repeats = 12;
  EXPECT_THAT(json::parse(slack_body(event))["text"].get<std::string>(),
              HasSubstr("\n_12 more like this since the last message_"));
}

TEST(SlackBody, BlockNamesTheImageClientViolationsAndFixes) {
  auto text = slack_text(blocked());
  EXPECT_THAT(text, HasSubstr("ocigate blocked* `docker.io/library/alpine:3.19`"));
  EXPECT_THAT(text, HasSubstr("for 10.0.0.7 alice"));
  EXPECT_THAT(text, HasSubstr("sha256:" + std::string(64, 'a')));
  EXPECT_THAT(text, HasSubstr("• `non-root-user` (block): the image runs as root\n    _Fix:_ add USER 10001 to the Dockerfile"));
  EXPECT_THAT(text, HasSubstr("• `healthcheck` (warn): no HEALTHCHECK"));
  EXPECT_THAT(text, HasSubstr("policy version pv-42"));
  EXPECT_THAT(text, Not(HasSubstr("evidence")));
}

TEST(SlackBody, WarnAndPullsByDigestReadAsSuch) {
  Event event = blocked();
  event.kind = EventKind::warn;
  event.reference = "sha256:" + std::string(64, 'a');
  auto text = slack_text(event);
  EXPECT_THAT(text, HasSubstr(":warning: *ocigate warned about* `docker.io/library/alpine@sha256:"));
}

TEST(SlackBody, EscapesSlackControlCharacters) {
  Event event = blocked();
  event.violations = json::array({{{"check", "c"}, {"action", "block"}, {"message", "<!channel> & <https://x|y>"}}});
  auto text = slack_text(event);
  EXPECT_THAT(text, HasSubstr("&lt;!channel&gt; &amp; &lt;https://x|y&gt;"));
  EXPECT_THAT(text, Not(HasSubstr("<!channel>")));
}

TEST(SlackBody, ListsTenViolationsThenCountsTheRest) {
  Event event = blocked();
  event.violations = json::array();
  for (int i = 0; i < 12; ++i) event.violations.push_back({{"check", "c" + std::to_string(i)}, {"action", "warn"}, {"message", "m"}});
  auto text = slack_text(event);
  EXPECT_THAT(text, HasSubstr("`c9`"));
  EXPECT_THAT(text, Not(HasSubstr("`c10`")));
  EXPECT_THAT(text, HasSubstr("• and 2 more"));
}

TEST(SlackBody, CutsLongMessagesOnACharacterBoundary) {
  Event event = blocked();
  std::string long_message;
  for (int i = 0; i < 400; ++i) long_message += "é";  // 2 bytes each: 800 bytes
  event.violations = json::array({{{"check", "c"}, {"action", "block"}, {"message", long_message}}});
  std::string text;
  ASSERT_NO_THROW(text = slack_text(event));
  EXPECT_THAT(text, HasSubstr("é…"));
  // The message is cut to 500 bytes: the whole text, header and footer included, is shorter than it.
  EXPECT_LT(text.size(), long_message.size());
}

TEST(SlackBody, DigestMismatchAndReloadFailureAreReadable) {
  auto text = slack_text(mismatch());
  EXPECT_THAT(text, HasSubstr("upstream docker.io served wrong bytes* for `library/alpine`"));
  EXPECT_THAT(text, HasSubstr("asked for sha256:bbbb"));
  EXPECT_THAT(text, HasSubstr("got sha256:cccc"));
  text = slack_text(reload_failed("policy.yaml:3: bad"));
  EXPECT_THAT(text, HasSubstr("refused a policy reload"));
  EXPECT_THAT(text, HasSubstr("previous policy stays"));
  EXPECT_THAT(text, HasSubstr("policy.yaml:3: bad"));
}

TEST(SlackBody, NamesTheInstance) {
  for (Event event : {blocked(), mismatch(), reload_failed("e")}) {
    event.instance = "mirror-<1>";
    EXPECT_THAT(slack_text(event), HasSubstr("(on instance `mirror-&lt;1&gt;`)"));
  }
}

TEST(Body, PicksTheFormat) {
  EXPECT_EQ(body(blocked(), config::WebhookFormat::json), json_body(blocked()));
  EXPECT_EQ(body(blocked(), config::WebhookFormat::slack), slack_body(blocked()));
}

// RFC 4231, "Identifiers and Test Vectors for HMAC-SHA-224, HMAC-SHA-256, HMAC-SHA-384, and
// HMAC-SHA-512", section 4: test cases 1 (20-byte key), 2 (short key) and 6 (key longer than the
// block, hashed first); the HMAC-SHA-256 lines.
TEST(Hmac, Rfc4231TestVectors) {
  EXPECT_EQ(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hmac_sha256_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

// GitHub's "Validating webhook deliveries" documentation (docs.github.com/en/webhooks), section
// "Testing the webhook payload validation": secret "It's a Secret to Everybody", payload
// "Hello, World!", X-Hub-Signature-256 "sha256=757107ea...". Ours has the same form.
TEST(Signature, MatchesGitHubsDocumentedExample) {
  EXPECT_EQ(signature("It's a Secret to Everybody", "Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

// A real event body, signed, checked by the openssl command a receiver's operator would use
// (README "Block events (webhooks)").
TEST(Signature, AgreesWithOpensslDgstOnAnEventBody) {
  ocigate::test::TempDir dir;
  const std::string text = json_body(blocked());
  const auto path = (std::filesystem::path(dir.path()) / "body.json").string();
  std::ofstream(path, std::ios::binary) << text;
  const std::string command = "openssl dgst -sha256 -hmac 'k3y with spaces' -r '" + path + "'";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char out[256] = {};
  const auto n = std::fread(out, 1, sizeof out - 1, pipe);
  ASSERT_EQ(::pclose(pipe), 0) << "openssl failed: " << std::string(out, n);
  const std::string hex = std::string(out, n).substr(0, 64);
  EXPECT_EQ(signature("k3y with spaces", text), "sha256=" + hex);
}

}  // namespace
}  // namespace ocigate::notify
