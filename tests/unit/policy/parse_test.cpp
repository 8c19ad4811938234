#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "ocigate/policy/checks.hpp"
#include "ocigate/policy/policy.hpp"

namespace {

using namespace ocigate::policy;
using ocigate::Errc;

ocigate::Result<Policy> parse_text(const std::string& yaml) {
  YAML::Node root = YAML::Load(yaml);
  return parse_policy(root["policy"], "ocigate.yaml");
}

// Expects a refusal mentioning every fragment.
void expect_refused(const std::string& yaml, std::initializer_list<std::string> fragments) {
  auto policy = parse_text(yaml);
  ASSERT_FALSE(policy.ok()) << yaml;
  EXPECT_EQ(policy.error().code, Errc::config_invalid);
  for (const auto& fragment : fragments) {
    EXPECT_NE(policy.error().message.find(fragment), std::string::npos)
        << "'" << fragment << "' not in: " << policy.error().message;
  }
}

}  // namespace

TEST(CheckIds, ListsEveryCheck) {
  const auto& ids = check_ids();
  for (const char* id : {"non-root-user", "healthcheck", "no-secrets", "copy-not-add", "no-update-alone",
                         "pinned-base", "pinned-reference", "trusted-source", "image-age", "signature", "no-setuid",
                         "no-package-manager", "vulnerabilities", "provenance"}) {
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
  }
  EXPECT_EQ(ids.size(), 14u);
}

TEST(DefaultPolicy, IsAuditWithEveryCheckBlockingButProvenance) {
  Policy p = default_policy();
  EXPECT_EQ(p.mode, Mode::audit);
  EXPECT_EQ(p.checks.size(), check_ids().size());
  // provenance means nothing without a trust entry's provenance rule: off until turned on.
  for (const auto& [id, setting] : p.checks) EXPECT_EQ(setting.action, id == "provenance" ? Action::off : Action::block) << id;
  EXPECT_EQ(p.checks.at("image-age").params.at("max_days"), 90);
  EXPECT_EQ(p.blob_access, BlobAccess::referenced);
  EXPECT_EQ(p.layer_scan, LayerScan::prefetch);
  EXPECT_EQ(p.prefetch_timeout, std::chrono::seconds(20));
  EXPECT_EQ(p.version.rfind("sha256:", 0), 0u);
}

TEST(ParsePolicy, NullOrAbsentNodeGivesTheDefault) {
  auto absent = parse_policy(YAML::Node(), "x.yaml");
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(absent->version, default_policy().version);
  auto null = parse_text("policy:\n");
  ASSERT_TRUE(null.ok());
  EXPECT_EQ(null->version, default_policy().version);
}

TEST(ParsePolicy, ReadsTheIssueExample) {
  auto p = parse_text(R"(
policy:
  mode: enforce
  checks:
    non-root-user: block
    healthcheck: warn
    image-age: { action: warn, max_days: 30 }
    pinned-reference: { require_digest: true }
  rules:
    - match: "docker.io/library/**"
      checks: { healthcheck: off, image-age: { max_days: 365 } }
  exemptions:
    - match: "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      checks: [no-setuid]
      reason: "vendor image, tracked in SEC-12"
      expires: 2027-03-01
  trusted_sources: ["docker.io/library/**", "ghcr.io/acme/**"]
  blob_access: any
  layer_scan: off
  prefetch_timeout: 1m
)");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, Mode::enforce);
  EXPECT_EQ(p->checks.at("healthcheck").action, Action::warn);
  EXPECT_EQ(p->checks.at("no-secrets").action, Action::block);  // unlisted keeps the default
  EXPECT_EQ(p->checks.at("image-age").action, Action::warn);
  EXPECT_EQ(p->checks.at("image-age").params.at("max_days"), 30);
  EXPECT_EQ(p->checks.at("pinned-reference").action, Action::block);  // mapping without action keeps it
  EXPECT_EQ(p->checks.at("pinned-reference").params.at("require_digest"), true);
  ASSERT_EQ(p->rules.size(), 1u);
  EXPECT_EQ(p->rules[0].checks.at("healthcheck").action, Action::off);
  // A rule's setting inherits the top-level action and overrides only what it names.
  EXPECT_EQ(p->rules[0].checks.at("image-age").action, Action::warn);
  EXPECT_EQ(p->rules[0].checks.at("image-age").params.at("max_days"), 365);
  ASSERT_EQ(p->exemptions.size(), 1u);
  EXPECT_EQ(p->exemptions[0].expires, "2027-03-01");
  EXPECT_EQ(p->exemptions[0].checks, std::vector<std::string>{"no-setuid"});
  EXPECT_EQ(p->trusted_sources.size(), 2u);
  EXPECT_EQ(p->blob_access, BlobAccess::any);
  EXPECT_EQ(p->layer_scan, LayerScan::off);
  EXPECT_EQ(p->prefetch_timeout, std::chrono::seconds(60));
}

TEST(ParsePolicy, RefusesAnUnknownTopLevelKeyWithItsLine) {
  expect_refused("policy:\n  mode: enforce\n  chekcs: {}\n", {"ocigate.yaml:3:", "policy.chekcs", "unknown key"});
}

TEST(ParsePolicy, RefusesAnUnknownCheckIdWithItsLine) {
  expect_refused("policy:\n  checks:\n    non-root-user: block\n    no-root: warn\n",
                 {"ocigate.yaml:4:", "policy.checks.no-root", "unknown check"});
}

TEST(ParsePolicy, RefusesAnUnknownAction) {
  expect_refused("policy:\n  checks:\n    healthcheck: deny\n",
                 {"ocigate.yaml:3:", "policy.checks.healthcheck", "block, warn or off", "deny"});
  expect_refused("policy:\n  checks:\n    image-age: {action: maybe}\n", {"policy.checks.image-age.action"});
}

TEST(ParsePolicy, RefusesAnUnknownMode) {
  expect_refused("policy:\n  mode: strict\n", {"ocigate.yaml:2:", "policy.mode", "enforce or audit"});
}

TEST(ParsePolicy, RefusesMalformedGlobsInRulesAndTrustedSources) {
  expect_refused("policy:\n  rules:\n    - match: \"Docker.io/*\"\n      checks: {healthcheck: off}\n",
                 {"ocigate.yaml:3:", "policy.rules[0].match", "malformed glob"});
  expect_refused("policy:\n  rules:\n    - match: \"\"\n      checks: {healthcheck: off}\n",
                 {"policy.rules[0].match", "empty"});
  expect_refused("policy:\n  trusted_sources:\n    - docker.io/**\n    - \"ghcr.io/a b\"\n",
                 {"ocigate.yaml:4:", "policy.trusted_sources[1]"});
}

TEST(ParsePolicy, RefusesAnUnknownCheckInARule) {
  expect_refused("policy:\n  rules:\n    - match: \"a/**\"\n      checks:\n        bogus: off\n",
                 {"ocigate.yaml:5:", "policy.rules[0].checks.bogus", "unknown check"});
}

TEST(ParsePolicy, RefusesAnExemptionWithoutReason) {
  expect_refused("policy:\n  exemptions:\n    - match: \"docker.io/x/*\"\n      checks: [healthcheck]\n",
                 {"ocigate.yaml:3:", "policy.exemptions[0].reason", "required"});
  expect_refused("policy:\n  exemptions:\n    - match: \"docker.io/x/*\"\n      checks: [healthcheck]\n      reason: \"  \"\n",
                 {"ocigate.yaml:5:", "policy.exemptions[0].reason"});
}

TEST(ParsePolicy, RefusesBadExpiryDates) {
  for (const char* date : {"2027-02-30", "2027-13-01", "27-03-01", "tomorrow", "2027-3-1"}) {
    expect_refused(std::string("policy:\n  exemptions:\n    - match: \"docker.io/x/*\"\n      checks: [healthcheck]\n"
                               "      reason: r\n      expires: ") + date + "\n",
                   {"ocigate.yaml:6:", "policy.exemptions[0].expires", "YYYY-MM-DD"});
  }
  auto leap = parse_text("policy:\n  exemptions:\n    - match: \"docker.io/x/*\"\n      checks: [healthcheck]\n"
                         "      reason: r\n      expires: 2028-02-29\n");
  EXPECT_TRUE(leap.ok()) << leap.error().message;
}

TEST(ParsePolicy, RefusesAMalformedDigestExemption) {
  expect_refused("policy:\n  exemptions:\n    - match: \"sha256:abc\"\n      checks: [healthcheck]\n      reason: r\n",
                 {"policy.exemptions[0].match", "malformed digest"});
}

TEST(ParsePolicy, RefusesBadMaxDays) {
  for (const char* value : {"0", "-3", "ninety", "1.5", "90d"}) {
    expect_refused(std::string("policy:\n  checks:\n    image-age: {max_days: ") + value + "}\n",
                   {"ocigate.yaml:3:", "policy.checks.image-age.max_days"});
  }
}

TEST(ParsePolicy, RefusesParamsACheckDoesNotTake) {
  expect_refused("policy:\n  checks:\n    healthcheck: {action: warn, max_days: 3}\n",
                 {"policy.checks.healthcheck.max_days", "unknown key"});
}

TEST(ParsePolicy, RefusesBadBlobAccessLayerScanAndTimeout) {
  expect_refused("policy:\n  blob_access: some\n", {"policy.blob_access"});
  expect_refused("policy:\n  layer_scan: deep\n", {"policy.layer_scan"});
  expect_refused("policy:\n  prefetch_timeout: soon\n", {"policy.prefetch_timeout"});
  expect_refused("policy:\n  prefetch_timeout: 0s\n", {"policy.prefetch_timeout"});
}

TEST(ParsePolicy, RefusesWrongShapes) {
  expect_refused("policy: [1, 2]\n", {"policy", "mapping"});
  expect_refused("policy:\n  rules: {match: x}\n", {"policy.rules"});
  expect_refused("policy:\n  exemptions:\n    - match: \"a/*\"\n      checks: healthcheck\n      reason: r\n",
                 {"policy.exemptions[0].checks"});
  expect_refused("policy:\n  checks:\n    healthcheck: [warn]\n", {"policy.checks.healthcheck"});
}

TEST(PolicyVersion, IsEqualForEqualPoliciesAndDifferentOtherwise) {
  auto a = parse_text("policy:\n  mode: enforce\n  checks: {healthcheck: warn, non-root-user: block}\n");
  auto b = parse_text("policy:\n  checks: {non-root-user: block, healthcheck: warn}\n  mode: enforce\n");
  auto c = parse_text("policy:\n  mode: enforce\n  checks: {healthcheck: off}\n");
  auto d = parse_text("policy:\n  mode: audit\n  checks: {healthcheck: warn}\n");
  auto e = parse_text("policy:\n  mode: enforce\n  checks: {healthcheck: warn, image-age: {max_days: 91}}\n");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok() && e.ok());
  EXPECT_EQ(a->version, b->version);
  EXPECT_NE(a->version, c->version);
  EXPECT_NE(a->version, d->version);
  EXPECT_NE(a->version, e->version);
  // Spelling out a default changes nothing.
  auto explicit_default = parse_text("policy:\n  mode: audit\n  checks: {image-age: {max_days: 90}}\n");
  ASSERT_TRUE(explicit_default.ok());
  EXPECT_EQ(explicit_default->version, default_policy().version);
}

TEST(PolicyVersion, ChangesWithRulesExemptionsAndTrustedSources) {
  auto base = parse_text("policy:\n  mode: enforce\n");
  auto rule = parse_text("policy:\n  mode: enforce\n  rules: [{match: \"a/**\", checks: {healthcheck: off}}]\n");
  auto trusted = parse_text("policy:\n  mode: enforce\n  trusted_sources: [\"a/**\"]\n");
  auto exempt = parse_text(
      "policy:\n  mode: enforce\n  exemptions: [{match: \"a/**\", checks: [healthcheck], reason: r}]\n");
  ASSERT_TRUE(base.ok() && rule.ok() && trusted.ok() && exempt.ok());
  EXPECT_NE(base->version, rule->version);
  EXPECT_NE(base->version, trusted->version);
  EXPECT_NE(base->version, exempt->version);
  EXPECT_NE(rule->version, trusted->version);
}

TEST(ParsePolicy, MetricsRepositoriesAreGlobsAndLeaveTheVersionAlone) {
  auto plain = parse_text("policy:\n  mode: enforce\n");
  auto labelled = parse_text("policy:\n  mode: enforce\n  metrics_repositories: [\"docker.io/acme/**\"]\n");
  ASSERT_TRUE(plain.ok() && labelled.ok());
  EXPECT_EQ(labelled->metrics_repositories, std::vector<std::string>{"docker.io/acme/**"});
  EXPECT_EQ(plain->version, labelled->version) << "labels change no verdict";
  expect_refused("policy:\n  metrics_repositories:\n    - \"a b/**\"\n",
                 {"ocigate.yaml:3:", "policy.metrics_repositories[0]"});
  expect_refused("policy:\n  metrics_repositories: docker.io/**\n", {"policy.metrics_repositories", "list"});
}

TEST(ParsePolicy, ReadsEveryLayerScanModeAndRefusesOthers) {
  EXPECT_EQ(parse_text("policy:\n  layer_scan: stream\n")->layer_scan, LayerScan::stream);
  EXPECT_EQ(parse_text("policy:\n  layer_scan: \"off\"\n")->layer_scan, LayerScan::off);
  EXPECT_EQ(parse_text("policy:\n  mode: audit\n")->layer_scan, LayerScan::prefetch);
  expect_refused("policy:\n  layer_scan: streaming\n", {"ocigate.yaml:2:", "policy.layer_scan", "prefetch, stream or off"});
}
