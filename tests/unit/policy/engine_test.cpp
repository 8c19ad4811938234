#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "helpers.hpp"
#include "ocigate/policy/engine.hpp"

namespace {

using namespace ocigate::policy;
using namespace ocigate::policy::test;

Policy parse(const std::string& yaml) {
  auto root = YAML::Load(yaml);
  auto policy = parse_policy(root["policy"], "test.yaml");
  EXPECT_TRUE(policy.ok()) << policy.error().message;
  return policy.ok() ? *policy : default_policy();
}

// Only the listed checks on (block); everything else off.
Policy only(std::initializer_list<std::string> ids, Mode mode = Mode::enforce) {
  Policy policy = default_policy();
  policy.mode = mode;
  for (auto& [id, setting] : policy.checks) setting.action = Action::off;
  for (const auto& id : ids) policy.checks[id].action = Action::block;
  stamp_version(policy);
  return policy;
}

ImageFacts rooted() {
  auto config = good_config();
  config["config"]["User"] = "root";
  return facts_with(config);
}

}  // namespace

TEST(Evaluate, AllowsACompliantImage) {
  auto policy = parse("policy:\n  mode: enforce\n");
  auto verdict = evaluate(policy, good_facts());
  EXPECT_EQ(verdict.decision, Decision::allow) << verdict.to_json().dump(2);
  EXPECT_EQ(verdict.image, "docker.io/acme/app");
  EXPECT_EQ(verdict.digest, digest_a);
  EXPECT_EQ(verdict.reference, "1.2.3");
  EXPECT_EQ(verdict.policy_version, policy.version);
  std::size_t on = 0;
  for (const auto& [id, setting] : policy.checks) on += setting.action != Action::off ? 1 : 0;
  EXPECT_EQ(verdict.findings.size(), on);
  EXPECT_EQ(on, check_ids().size() - 1) << "every check but provenance (off by default) is on";
  EXPECT_TRUE(verdict.violations().empty());
}

TEST(Evaluate, BlocksOnABlockViolationInEnforceMode) {
  auto verdict = evaluate(only({"non-root-user", "healthcheck"}), rooted());
  EXPECT_EQ(verdict.decision, Decision::block);
  EXPECT_EQ(verdict.violated_checks(Action::block), std::vector<std::string>{"non-root-user"});
  EXPECT_EQ(verdict.findings.size(), 2u);  // off checks are not evaluated
}

TEST(Evaluate, WarnsWhenEveryViolationIsWarn) {
  auto policy = parse("policy:\n  mode: enforce\n  checks: {non-root-user: warn}\n");
  auto verdict = evaluate(policy, rooted());
  EXPECT_EQ(verdict.decision, Decision::warn);
  EXPECT_EQ(verdict.violated_checks(Action::warn), std::vector<std::string>{"non-root-user"});
  EXPECT_TRUE(verdict.violated_checks(Action::block).empty());
}

TEST(Evaluate, AuditModeTurnsBlocksIntoWarns) {
  auto verdict = evaluate(only({"non-root-user"}, Mode::audit), rooted());
  EXPECT_EQ(verdict.decision, Decision::warn);
  EXPECT_EQ(finding(verdict, "non-root-user")->action, Action::warn);
  bool noted = false;
  for (const auto& note : verdict.notes) noted = noted || note.find("would block") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(Evaluate, DefaultPolicyNeverBlocks) {
  auto config = good_config();
  config["config"]["User"] = "";
  config["config"]["Env"] = {"DB_PASSWORD=x123"};
  auto facts = facts_with(config);
  facts.reference = "latest";
  auto verdict = evaluate(default_policy(), facts);
  EXPECT_EQ(verdict.decision, Decision::warn);
  EXPECT_GE(verdict.violations().size(), 3u);
}

TEST(Evaluate, UnknownResultsNeverBlock) {
  auto facts = good_facts();
  facts.config.reset();  // everything config-based becomes unknown
  auto verdict = evaluate(only({"non-root-user", "healthcheck", "no-secrets", "image-age", "signature", "no-setuid",
                                "no-package-manager", "vulnerabilities", "copy-not-add", "no-update-alone"}),
                          facts);
  EXPECT_EQ(verdict.decision, Decision::allow) << verdict.to_json().dump(2);
  for (const auto& f : verdict.findings) EXPECT_EQ(f.outcome, Outcome::unknown) << f.check;
  EXPECT_GE(verdict.notes.size(), verdict.findings.size());
  auto json = verdict.to_json();
  EXPECT_TRUE(json["violations"].empty());
  EXPECT_EQ(json["checks"][0]["result"], "unknown");
}

TEST(Rules, FirstMatchingRuleWins) {
  auto policy = parse(R"(
policy:
  mode: enforce
  checks: {non-root-user: block}
  rules:
    - match: "docker.io/acme/*"
      checks: {non-root-user: warn}
    - match: "docker.io/**"
      checks: {non-root-user: off}
)");
  auto verdict = evaluate(policy, rooted());
  EXPECT_EQ(finding(verdict, "non-root-user")->action, Action::warn);
  auto other = rooted();
  other.repository = "library/alpine";
  EXPECT_EQ(finding(evaluate(policy, other), "non-root-user"), nullptr);  // second rule: off
  auto elsewhere = rooted();
  elsewhere.upstream = "ghcr.io";
  EXPECT_EQ(finding(evaluate(policy, elsewhere), "non-root-user")->action, Action::block);
}

TEST(Rules, OverrideOnlyTheChecksTheyName) {
  auto policy = parse(R"(
policy:
  mode: enforce
  checks: {healthcheck: block, non-root-user: block}
  rules:
    - match: "docker.io/acme/**"
      checks: {healthcheck: off}
)");
  auto config = good_config();
  config["config"]["User"] = "0";
  config["config"].erase("Healthcheck");
  auto verdict = evaluate(policy, facts_with(config));
  EXPECT_EQ(finding(verdict, "healthcheck"), nullptr);
  EXPECT_EQ(verdict.violated_checks(Action::block), std::vector<std::string>{"non-root-user"});
}

TEST(Rules, CanChangeParameters) {
  auto policy = parse(R"(
policy:
  mode: enforce
  checks: {pinned-reference: block}
  rules:
    - match: "docker.io/acme/**"
      checks: {pinned-reference: {require_digest: true}}
)");
  EXPECT_EQ(evaluate(policy, good_facts()).decision, Decision::block);
  auto other = good_facts();
  other.repository = "library/alpine";
  EXPECT_EQ(finding(evaluate(policy, other), "pinned-reference")->outcome, Outcome::pass);
}

TEST(Exemptions, ExemptByDigest) {
  auto policy = only({"non-root-user"});
  policy.exemptions.push_back({digest_a, {"non-root-user"}, "vendor image", std::nullopt});
  auto verdict = evaluate(policy, rooted());
  EXPECT_EQ(verdict.decision, Decision::allow);
  const Finding* f = finding(verdict, "non-root-user");
  EXPECT_TRUE(f->exempted);
  EXPECT_EQ(f->exemption_reason, "vendor image");
  auto json = verdict.to_json();
  ASSERT_EQ(json["exempted"].size(), 1u);
  EXPECT_EQ(json["exempted"][0]["reason"], "vendor image");
  auto other_digest = rooted();
  other_digest.digest = digest_b;
  EXPECT_EQ(evaluate(policy, other_digest).decision, Decision::block);
}

TEST(Exemptions, ExemptByRepositoryGlobAndOnlyTheNamedChecks) {
  auto policy = only({"non-root-user", "healthcheck"});
  policy.exemptions.push_back({"docker.io/acme/**", {"healthcheck"}, "probe in k8s", std::nullopt});
  auto config = good_config();
  config["config"].erase("Healthcheck");
  config["config"]["User"] = "root";
  auto verdict = evaluate(policy, facts_with(config));
  EXPECT_TRUE(finding(verdict, "healthcheck")->exempted);
  EXPECT_FALSE(finding(verdict, "non-root-user")->exempted);
  EXPECT_EQ(verdict.violated_checks(Action::warn), std::vector<std::string>{"non-root-user"});
}

TEST(Exemptions, StopApplyingAfterTheyExpire) {
  auto policy = only({"non-root-user"});
  policy.exemptions.push_back({"docker.io/acme/*", {"non-root-user"}, "r", "2025-06-14"});
  auto verdict = evaluate(policy, rooted());  // now is 2025-06-15
  EXPECT_EQ(verdict.decision, Decision::block);
  bool noted = false;
  for (const auto& note : verdict.notes) noted = noted || note.find("expired on 2025-06-14") != std::string::npos;
  EXPECT_TRUE(noted);
  policy.exemptions[0].expires = "2025-06-15";  // valid through its last day
  EXPECT_EQ(evaluate(policy, rooted()).decision, Decision::allow);
}

TEST(Exemptions, FromParsedConfig) {
  auto policy = parse(R"(
policy:
  mode: enforce
  checks: {healthcheck: off, pinned-reference: off, trusted-source: off}
  exemptions:
    - match: "docker.io/acme/app"
      checks: [non-root-user]
      reason: "legacy, SEC-1"
      expires: 2099-01-01
)");
  EXPECT_EQ(evaluate(policy, rooted()).decision, Decision::allow);
}

TEST(Verdict, JsonHasTheDocumentedShape) {
  auto verdict = evaluate(only({"non-root-user", "healthcheck"}), rooted());
  auto json = verdict.to_json();
  EXPECT_EQ(json["verdict"], "block");
  EXPECT_EQ(json["digest"], digest_a);
  EXPECT_EQ(json["reference"], "1.2.3");
  EXPECT_EQ(json["image"], "docker.io/acme/app");
  EXPECT_EQ(json["policy_version"], verdict.policy_version);
  ASSERT_EQ(json["violations"].size(), 1u);
  const auto& v = json["violations"][0];
  for (const char* key : {"check", "action", "message", "remediation", "evidence", "origin"}) {
    EXPECT_TRUE(v.contains(key)) << key;
  }
  EXPECT_EQ(v["check"], "non-root-user");
  EXPECT_EQ(v["action"], "block");
  EXPECT_TRUE(json["notes"].is_array());
  ASSERT_EQ(json["checks"].size(), 2u);
  EXPECT_EQ(json["checks"][1]["result"], "pass");
}

TEST(Verdict, JsonRoundTrips) {
  auto policy = only({"non-root-user", "healthcheck", "no-secrets", "image-age"});
  policy.exemptions.push_back({digest_a, {"healthcheck"}, "ok \"quoted\"", std::nullopt});
  auto config = good_config();
  config["config"]["User"] = "0:0";
  config["config"].erase("Healthcheck");
  config.erase("created");
  auto verdict = evaluate(policy, facts_with(config));
  auto text = verdict.to_json().dump();
  auto back = Verdict::from_json(nlohmann::json::parse(text));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->decision, verdict.decision);
  EXPECT_EQ(back->digest, verdict.digest);
  EXPECT_EQ(back->reference, verdict.reference);
  EXPECT_EQ(back->image, verdict.image);
  EXPECT_EQ(back->policy_version, verdict.policy_version);
  EXPECT_EQ(back->notes, verdict.notes);
  EXPECT_EQ(back->findings, verdict.findings);
  EXPECT_EQ(back->to_json(), verdict.to_json());
}

TEST(Verdict, FromJsonRejectsMalformedInput) {
  auto good = evaluate(only({"non-root-user"}), rooted()).to_json();
  EXPECT_TRUE(Verdict::from_json(good));
  EXPECT_FALSE(Verdict::from_json(nlohmann::json::array()));
  auto bad = good;
  bad["verdict"] = "maybe";
  EXPECT_FALSE(Verdict::from_json(bad));
  bad = good;
  bad.erase("checks");
  EXPECT_FALSE(Verdict::from_json(bad));
  bad = good;
  bad["checks"][0]["result"] = 3;
  EXPECT_FALSE(Verdict::from_json(bad));
  bad = good;
  bad["checks"][0]["action"] = "deny";
  EXPECT_FALSE(Verdict::from_json(bad));
  bad = good;
  bad["notes"] = "x";
  EXPECT_FALSE(Verdict::from_json(bad));
}

TEST(Verdict, DeniedMessageNamesImageDigestAndBlockingChecks) {
  auto config = good_config();
  config["config"]["User"] = "root";
  config["config"].erase("Healthcheck");
  auto verdict = evaluate(only({"non-root-user", "healthcheck"}), facts_with(config));
  std::string message = verdict.denied_message();
  EXPECT_EQ(message.rfind("docker.io/acme/app@" + digest_a + ": blocked by policy: non-root-user, healthcheck (runs as root", 0), 0u)
      << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(Verdict, WarningHeadersOnePerViolation) {
  auto policy = parse("policy:\n  mode: audit\n");
  auto config = good_config();
  config["config"]["User"] = "root";
  config["config"].erase("Healthcheck");
  auto headers = evaluate(policy, facts_with(config)).warning_headers();
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].rfind("299 - \"ocigate: non-root-user: ", 0), 0u) << headers[0];
  EXPECT_EQ(headers[0].back(), '"');
}

TEST(Verdict, WarningHeadersAreCappedAt4096Bytes) {
  Verdict verdict;
  for (int i = 0; i < 60; ++i) {
    Finding f;
    f.check = "check-" + std::to_string(i);
    f.outcome = Outcome::fail;
    f.action = Action::warn;
    f.message = std::string(100, 'm') + "\"\\\n\u2026";
    verdict.findings.push_back(f);
  }
  auto headers = verdict.warning_headers();
  std::size_t total = 0;
  for (const auto& h : headers) {
    total += h.size();
    for (char c : h) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "non-printable in " << h;
    }
  }
  EXPECT_LE(total, 4096u);
  ASSERT_LT(headers.size(), 60u);
  std::string last = headers.back();
  EXPECT_EQ(last, "299 - \"ocigate: and " + std::to_string(60 - (headers.size() - 1)) + " more\"");
  EXPECT_GT(headers.size(), 20u);  // the budget is used, not wasted
}

TEST(Verdict, WarningHeadersUncutWhenTheyFit) {
  Verdict verdict;
  Finding f;
  f.check = "healthcheck";
  f.outcome = Outcome::fail;
  f.action = Action::warn;
  f.message = "declares no HEALTHCHECK";
  verdict.findings = {f, f};
  verdict.findings[1].exempted = true;
  auto headers = verdict.warning_headers();
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0], "299 - \"ocigate: healthcheck: declares no HEALTHCHECK\"");
}

TEST(Evaluate, IsDeterministicForTheSameFacts) {
  auto policy = default_policy();
  EXPECT_EQ(evaluate(policy, rooted()).to_json(), evaluate(policy, rooted()).to_json());
}

TEST(Evaluate, KeepsImageTextValidUtf8OnOneLine) {
  auto config = good_config();
  config["config"]["User"] = std::string("root:\n\xff\xc0\xaf");
  auto verdict = evaluate(only({"non-root-user"}), facts_with(config));
  ASSERT_EQ(verdict.decision, Decision::block);
  const Finding* f = finding(verdict, "non-root-user");
  EXPECT_EQ(f->message.find('\n'), std::string::npos);
  EXPECT_NO_THROW((void)verdict.to_json().dump());  // strict UTF-8 serialisation must not throw
  EXPECT_EQ(verdict.denied_message().find('\n'), std::string::npos);
}

TEST(Evaluate, CopesWithAHugeHostileConfig) {
  auto config = good_config();
  nlohmann::json entries = nlohmann::json::array();
  std::string long_run = "RUN /bin/sh -c ";
  for (int i = 0; i < 2000; ++i) long_run += "apt-get update && AKIA eyJ. ghp_ -----BEGIN ; ";
  for (int i = 0; i < 200; ++i) entries.push_back({{"created_by", long_run}});
  entries.push_back({{"created_by", "|99999999999999999999 A=b"}});
  entries.push_back({{"created_by", "/bin/sh -o -o -o -o -o -o -o -o -o"}});
  entries.push_back({{"created_by", "ADD"}});
  entries.push_back({{"created_by", "ADD [\"unterminated"}});
  entries.push_back({{"created_by", "ENV =\"\\"}});
  config["history"] = entries;
  std::vector<std::string> env;
  for (int i = 0; i < 5000; ++i) env.push_back("VAR_" + std::to_string(i) + "=" + std::string(50, 'A'));
  config["config"]["Env"] = env;
  auto verdict = evaluate(default_policy(), facts_with(config));
  EXPECT_EQ(finding(verdict, "no-update-alone")->outcome, Outcome::fail);
  EXPECT_NO_THROW((void)verdict.to_json().dump());
}

TEST(AnyCheckOn, FollowsRulesSoAllOffImagesNeedNoConfig) {
  Policy all_off = only({});
  EXPECT_FALSE(any_check_on(all_off, "docker.io/library/alpine"));
  EXPECT_TRUE(any_check_on(default_policy(), "docker.io/library/alpine"));
  std::string yaml = "policy:\n  mode: enforce\n  checks:\n";
  for (const auto& id : check_ids()) yaml += "    " + id + ": " + (id == "healthcheck" ? "warn" : "off") + "\n";
  yaml += "  rules:\n    - match: \"docker.io/library/**\"\n      checks: { healthcheck: off }\n";
  Policy ruled = parse(yaml);
  EXPECT_FALSE(any_check_on(ruled, "docker.io/library/alpine"));
  EXPECT_TRUE(any_check_on(ruled, "docker.io/acme/app"));
}
