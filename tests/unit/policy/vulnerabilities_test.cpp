// The `vulnerabilities` check on VulnerabilityFacts built by hand (the server's source fills them
// from the vuln module; its own tests match real records): every parameter, ignore entries and
// their expiry, the "unknown" paths, and how findings reach the message, the details, the 403's
// JSON and the Warning headers.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "helpers.hpp"
#include "ocigate/policy/checks.hpp"

namespace {

using namespace ocigate::policy;
using namespace ocigate::policy::test;

VulnerabilityFinding finding_of(std::string id, std::string cve, std::string package, std::string severity,
                                std::optional<std::string> fixed = "9.9-1", std::optional<double> score = std::nullopt) {
  VulnerabilityFinding f;
  f.id = std::move(id);
  if (!cve.empty()) f.aliases = {std::move(cve)};
  f.package = std::move(package);
  f.installed_version = "1.0-1";
  f.fixed_version = std::move(fixed);
  f.severity = std::move(severity);
  f.score = score;
  return f;
}

VulnerabilityFacts debian_facts(std::vector<VulnerabilityFinding> findings) {
  VulnerabilityFacts v;
  v.supported = true;
  v.database_version = "sha256:db";
  v.database_age = std::chrono::hours(5);
  v.max_age = std::chrono::hours(72);
  v.ecosystem = "Debian:12";
  v.packages_checked = 120;
  v.findings = std::move(findings);
  return v;
}

// One finding per severity word, each with its own CVE.
std::vector<VulnerabilityFinding> one_of_each() {
  return {finding_of("DEBIAN-CVE-2024-0005", "CVE-2024-0005", "libssl3", "critical", "3.0.15-1", 9.8),
          finding_of("DEBIAN-CVE-2024-0004", "CVE-2024-0004", "zlib1g", "high", "1:1.3-1", 7.5),
          finding_of("DEBIAN-CVE-2024-0003", "CVE-2024-0003", "libc6", "medium", std::nullopt, 5.3),
          finding_of("DEBIAN-CVE-2024-0002", "CVE-2024-0002", "bash", "low", "5.2-2", 3.1),
          finding_of("DEBIAN-CVE-2024-0001", "CVE-2024-0001", "coreutils", "unknown", "9.1-2"),
          finding_of("DEBIAN-CVE-2024-0000", "CVE-2024-0000", "tar", "none", std::nullopt)};
}

ImageFacts with_vulns(VulnerabilityFacts v) {
  auto facts = good_facts();
  facts.filesystem = FilesystemFacts{};
  facts.filesystem->os_id = "debian";
  facts.vulnerabilities = std::move(v);
  return facts;
}

nlohmann::json params(nlohmann::json overrides = nlohmann::json::object()) {
  nlohmann::json p = {{"min_severity", "high"}, {"fixed_only", false}, {"unknown_severity", "as-medium"},
                      {"ignore", nlohmann::json::array()}};
  for (auto& [k, v] : overrides.items()) p[k] = v;
  return p;
}

CheckResult run(const ImageFacts& facts, const nlohmann::json& p = params()) {
  auto history = parse_history(facts.config);
  Policy policy = default_policy();
  return check_vulnerabilities(CheckInput{facts, policy, p, history});
}

std::vector<std::string> counted_ids(const CheckResult& r) {
  std::vector<std::string> out;
  if (r.details.is_null()) return out;
  for (const auto& f : r.details["findings"]) out.push_back(f["aliases"][0]);
  return out;
}

nlohmann::json ignore_entry(std::string id, std::string until = "", std::vector<std::string> packages = {}) {
  return {{"id", std::move(id)},
          {"reason", "accepted: not reachable in this image"},
          {"until", until.empty() ? nlohmann::json() : nlohmann::json(until)},
          {"packages", packages}};
}

Policy parse_text(const std::string& yaml) {
  auto parsed = parse_policy(YAML::Load(yaml)["policy"], "ocigate.yaml");
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  return parsed.ok() ? *parsed : Policy{};
}

void expect_refused(const std::string& yaml, std::initializer_list<std::string> fragments) {
  auto parsed = parse_policy(YAML::Load(yaml)["policy"], "ocigate.yaml");
  ASSERT_FALSE(parsed.ok()) << yaml;
  for (const auto& fragment : fragments) {
    EXPECT_NE(parsed.error().message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << parsed.error().message;
  }
}

}  // namespace

// ---- unknown, never pass

TEST(Vulnerabilities, IsUnknownWithoutFacts) {
  auto no_layers = run(good_facts());
  EXPECT_EQ(no_layers.outcome, Outcome::unknown);
  EXPECT_NE(no_layers.message.find("layers were not inspected"), std::string::npos) << no_layers.message;
  auto facts = good_facts();
  facts.filesystem = FilesystemFacts{};
  EXPECT_EQ(run(facts).outcome, Outcome::unknown);
}

TEST(Vulnerabilities, IsUnknownWhenTheDatabaseCannotJudgeTheImage) {
  VulnerabilityFacts v;
  v.reason = "no vulnerability database loaded: /var/lib/vulndb is not a directory";
  auto r = run(with_vulns(v));
  EXPECT_EQ(r.outcome, Outcome::unknown);
  EXPECT_EQ(r.message, v.reason);
}

TEST(Vulnerabilities, IsUnknownWhenTheDatabaseIsOlderThanMaxAgeEvenWithFindings) {
  auto v = debian_facts(one_of_each());
  v.database_age = std::chrono::hours(80);
  v.stale = true;
  auto r = run(with_vulns(v));
  EXPECT_EQ(r.outcome, Outcome::unknown);
  EXPECT_NE(r.message.find("3d8h old, older than max_age 3d"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("ocigate vulndb update"), std::string::npos);
}

TEST(Vulnerabilities, ACleanResultIsUnknownWhenALayerWasNotInspected) {
  auto facts = with_vulns(debian_facts({}));
  facts.filesystem->not_inspected = {"sha256:abc: truncated gzip stream"};
  auto r = run(facts);
  EXPECT_EQ(r.outcome, Outcome::unknown);
  EXPECT_NE(r.message.find("truncated gzip"), std::string::npos) << r.message;
  facts.vulnerabilities = debian_facts(one_of_each());
  EXPECT_EQ(run(facts).outcome, Outcome::fail) << "what was found counts";
}

// ---- severities

TEST(Vulnerabilities, PassesWhenNothingReachesMinSeverity) {
  auto r = run(with_vulns(debian_facts({finding_of("D-1", "CVE-2024-1", "bash", "medium")})));
  EXPECT_EQ(r.outcome, Outcome::pass);
  EXPECT_EQ(r.message, "no known vulnerability at or above high in 120 Debian:12 packages");
  EXPECT_TRUE(r.details.is_null());
}

TEST(Vulnerabilities, MinSeverityChoosesWhatCounts) {
  auto facts = with_vulns(debian_facts(one_of_each()));
  // unknown counts as medium by default; "none" never counts.
  EXPECT_EQ(counted_ids(run(facts, params({{"min_severity", "critical"}}))), (std::vector<std::string>{"CVE-2024-0005"}));
  EXPECT_EQ(counted_ids(run(facts, params({{"min_severity", "high"}}))),
            (std::vector<std::string>{"CVE-2024-0005", "CVE-2024-0004"}));
  EXPECT_EQ(counted_ids(run(facts, params({{"min_severity", "medium"}}))),
            (std::vector<std::string>{"CVE-2024-0005", "CVE-2024-0004", "CVE-2024-0003", "CVE-2024-0001"}));
  EXPECT_EQ(counted_ids(run(facts, params({{"min_severity", "low"}}))),
            (std::vector<std::string>{"CVE-2024-0005", "CVE-2024-0004", "CVE-2024-0003", "CVE-2024-0001", "CVE-2024-0002"}));
}

TEST(Vulnerabilities, UnknownSeverityIsMappedAsConfigured) {
  auto facts = with_vulns(debian_facts({finding_of("D-1", "CVE-2024-1", "bash", "unknown")}));
  EXPECT_EQ(run(facts, params({{"min_severity", "low"}, {"unknown_severity", "ignore"}})).outcome, Outcome::pass);
  EXPECT_EQ(run(facts, params({{"min_severity", "low"}, {"unknown_severity", "as-low"}})).outcome, Outcome::fail);
  EXPECT_EQ(run(facts, params({{"min_severity", "medium"}, {"unknown_severity", "as-low"}})).outcome, Outcome::pass);
  EXPECT_EQ(run(facts, params({{"min_severity", "medium"}, {"unknown_severity", "as-medium"}})).outcome, Outcome::fail);
  EXPECT_EQ(run(facts, params({{"min_severity", "high"}, {"unknown_severity", "as-medium"}})).outcome, Outcome::pass);
  auto high = run(facts, params({{"min_severity", "high"}, {"unknown_severity", "as-high"}}));
  EXPECT_EQ(high.outcome, Outcome::fail);
  EXPECT_EQ(high.details["findings"][0]["severity"], "unknown");
  EXPECT_EQ(high.details["findings"][0]["counted_as"], "high");
}

TEST(Vulnerabilities, FindingsAreSortedBySeverityCountedThenScore) {
  auto facts = with_vulns(debian_facts({finding_of("D-1", "CVE-1", "a", "high", "1", 7.1),
                                        finding_of("D-2", "CVE-2", "b", "unknown"),
                                        finding_of("D-3", "CVE-3", "c", "high", "1", 8.8),
                                        finding_of("D-4", "CVE-4", "d", "critical", "1", 9.0)}));
  auto r = run(facts, params({{"unknown_severity", "as-high"}}));
  EXPECT_EQ(counted_ids(r), (std::vector<std::string>{"CVE-4", "CVE-3", "CVE-1", "CVE-2"}));
}

TEST(Vulnerabilities, FixedOnlyCountsOnlyFindingsWithAFix) {
  auto facts = with_vulns(debian_facts({finding_of("D-1", "CVE-1", "libc6", "critical", std::nullopt)}));
  EXPECT_EQ(run(facts).outcome, Outcome::fail);
  auto r = run(facts, params({{"fixed_only", true}}));
  EXPECT_EQ(r.outcome, Outcome::pass);
  EXPECT_NE(r.message.find("with a fix"), std::string::npos) << r.message;
}

// ---- what a violation says

TEST(Vulnerabilities, AViolationNamesItsCvesPackagesAndFixes) {
  auto r = run(with_vulns(debian_facts(one_of_each())));
  ASSERT_EQ(r.outcome, Outcome::fail);
  EXPECT_EQ(r.message, "2 vulnerabilities at or above high (1 critical, 1 high) in 2 packages: CVE-2024-0005, CVE-2024-0004");
  EXPECT_EQ(r.evidence,
            "libssl3 1.0-1: CVE-2024-0005 (critical 9.8, fixed in 3.0.15-1); zlib1g 1.0-1: CVE-2024-0004 (high 7.5, fixed in 1:1.3-1)");
  EXPECT_NE(r.remediation.find("upgrade libssl3 to 3.0.15-1, zlib1g to 1:1.3-1"), std::string::npos) << r.remediation;
  const auto& first = r.details["findings"][0];
  EXPECT_EQ(first["id"], "DEBIAN-CVE-2024-0005");
  EXPECT_EQ(first["aliases"], nlohmann::json({"CVE-2024-0005"}));
  EXPECT_EQ(first["package"], "libssl3");
  EXPECT_EQ(first["installed_version"], "1.0-1");
  EXPECT_EQ(first["fixed_version"], "3.0.15-1");
  EXPECT_EQ(first["severity"], "critical");
  EXPECT_EQ(first["score"], 9.8);
  EXPECT_EQ(r.details["count"], 2);
  EXPECT_EQ(r.details["ecosystem"], "Debian:12");
  EXPECT_EQ(r.details["database"]["version"], "sha256:db");
}

TEST(Vulnerabilities, AFindingWithoutFixOrScoreSaysSo) {
  auto r = run(with_vulns(debian_facts({finding_of("DSA-1", "", "libc6", "high", std::nullopt)})));
  EXPECT_EQ(r.evidence, "libc6 1.0-1: DSA-1 (high, no fix)") << "no CVE alias: the record id";
  EXPECT_TRUE(r.details["findings"][0]["fixed_version"].is_null());
  EXPECT_TRUE(r.details["findings"][0]["score"].is_null());
  EXPECT_NE(r.remediation.find("1 finding(s) have no fix yet"), std::string::npos) << r.remediation;
}

TEST(Vulnerabilities, TheMessageNamesEachCveOnceAndAsManyAsFitInALine) {
  std::vector<VulnerabilityFinding> many;
  for (int i = 0; i < 60; ++i) {
    many.push_back(finding_of("D-" + std::to_string(i), "CVE-2024-" + std::to_string(10000 + i), "pkg" + std::to_string(i), "high"));
  }
  many.push_back(finding_of("D-x", "CVE-2024-10000", "another", "high"));  // the same CVE in another package
  auto r = run(with_vulns(debian_facts(many)));
  EXPECT_LE(r.message.size(), 260u) << r.message;
  EXPECT_EQ(r.message.find("CVE-2024-10000"), r.message.rfind("CVE-2024-10000")) << "named once";
  auto more = r.message.rfind(" and ");
  ASSERT_NE(more, std::string::npos) << r.message;
  const std::size_t shown = std::count(r.message.begin(), r.message.end(), ',') + 1;
  EXPECT_EQ(r.message.substr(more), " and " + std::to_string(60 - shown) + " more") << r.message;
  EXPECT_EQ(r.details["findings"].size(), 61u);
  EXPECT_NE(r.evidence.find("; and 56 more"), std::string::npos);
}

// ---- ignore entries

TEST(Vulnerabilities, AnIgnoreEntryMatchesTheIdOrAnAliasWhateverTheCase) {
  auto facts = with_vulns(debian_facts({finding_of("DEBIAN-CVE-2024-0005", "CVE-2024-0005", "libssl3", "critical")}));
  for (const char* id : {"CVE-2024-0005", "cve-2024-0005", "debian-cve-2024-0005"}) {
    auto r = run(facts, params({{"ignore", {ignore_entry(id)}}}));
    EXPECT_EQ(r.outcome, Outcome::pass) << id;
    EXPECT_NE(r.message.find("(1 ignored)"), std::string::npos) << r.message;
    ASSERT_EQ(r.notes.size(), 1u);
    EXPECT_EQ(r.notes[0], "vulnerabilities: CVE-2024-0005 in libssl3 ignored: accepted: not reachable in this image");
  }
  EXPECT_EQ(run(facts, params({{"ignore", {ignore_entry("CVE-2024-9999")}}})).outcome, Outcome::fail);
}

TEST(Vulnerabilities, AnIgnoreEntryWithPackagesAppliesToThoseOnly) {
  auto in_two = with_vulns(debian_facts({finding_of("D-1", "CVE-1", "libssl3", "critical"),
                                         finding_of("D-1", "CVE-1", "openssl", "critical")}));
  auto r = run(in_two, params({{"ignore", {ignore_entry("CVE-1", "", {"openssl"})}}}));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_EQ(r.details["findings"].size(), 1u);
  EXPECT_EQ(r.details["findings"][0]["package"], "libssl3");
  // The source package name (what the advisory names) works too.
  in_two.vulnerabilities->findings[0].source = "openssl";
  EXPECT_EQ(run(in_two, params({{"ignore", {ignore_entry("CVE-1", "", {"openssl"})}}})).outcome, Outcome::pass);
}

TEST(Vulnerabilities, AnIgnoreEntryHoldsThroughItsDayThenStopsApplying) {
  auto facts = with_vulns(debian_facts({finding_of("D-1", "CVE-1", "bash", "high")}));
  // test_now() is 2025-06-15.
  EXPECT_EQ(run(facts, params({{"ignore", {ignore_entry("CVE-1", "2025-06-15")}}})).outcome, Outcome::pass);
  auto expired = run(facts, params({{"ignore", {ignore_entry("CVE-1", "2025-06-14")}}}));
  EXPECT_EQ(expired.outcome, Outcome::fail);
  ASSERT_EQ(expired.notes.size(), 1u);
  EXPECT_EQ(expired.notes[0], "vulnerabilities: the ignore entry for cve-1 expired on 2025-06-14");
}

// ---- through the engine and the verdict's JSON

TEST(Vulnerabilities, TheVerdictCarriesTheDetailsAndThe403CapsThem) {
  std::vector<VulnerabilityFinding> many;
  for (int i = 0; i < 70; ++i) many.push_back(finding_of("D-" + std::to_string(i), "CVE-2024-" + std::to_string(20000 + i), "p", "high"));
  Policy policy = parse_text("policy:\n  mode: enforce\n  checks:\n    vulnerabilities: block\n");
  auto verdict = evaluate(policy, with_vulns(debian_facts(many)));
  ASSERT_EQ(verdict.decision, Decision::block);
  const Finding* f = finding(verdict, "vulnerabilities");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->details["findings"].size(), 70u);
  EXPECT_NE(verdict.denied_message().find("CVE-2024-20000, CVE-2024-20001"), std::string::npos) << verdict.denied_message();

  auto full = verdict.to_json();
  auto round = Verdict::from_json(full);
  ASSERT_TRUE(round.has_value());
  EXPECT_EQ(finding(*round, "vulnerabilities")->details, f->details) << "read back by from_json";

  auto shown = verdict.to_json(Verdict::shown_detail_items);
  nlohmann::json violation;
  for (const auto& v : shown["violations"]) {
    if (v["check"] == "vulnerabilities") violation = v;
  }
  ASSERT_TRUE(violation.is_object());
  EXPECT_EQ(violation["details"]["findings"].size(), 50u);
  EXPECT_EQ(violation["details"]["findings_omitted"], 20);
  EXPECT_EQ(violation["details"]["count"], 70);
  auto audit = verdict.violations_json();
  for (const auto& v : audit) EXPECT_FALSE(v.contains("details")) << "the audit line stays one short line";

  auto capped = verdict;
  capped.cap_details(Verdict::shown_detail_items);
  capped.cap_details(10);
  EXPECT_EQ(finding(capped, "vulnerabilities")->details["findings_omitted"], 60) << "cuts add up";
}

TEST(Vulnerabilities, AWarningNamesTheCves) {
  Policy policy = parse_text("policy:\n  mode: enforce\n  checks:\n    vulnerabilities: warn\n");
  auto verdict = evaluate(policy, with_vulns(debian_facts(one_of_each())));
  ASSERT_EQ(verdict.decision, Decision::warn);
  bool named = false;
  for (const auto& w : verdict.warning_headers()) {
    named = named || (w.find("vulnerabilities: 2 vulnerabilities") != std::string::npos &&
                      w.find("CVE-2024-0005, CVE-2024-0004") != std::string::npos);
  }
  EXPECT_TRUE(named);
}

TEST(Vulnerabilities, ImageTextInFindingsIsCleanedForJson) {
  auto facts = with_vulns(debian_facts({finding_of("D-1", "CVE-1", std::string("bad\xff\x01name"), "high")}));
  auto r = run(facts);
  EXPECT_EQ(r.details["findings"][0]["package"], "bad? name");
  EXPECT_NO_THROW((void)r.details.dump());
}

// ---- parameters in the policy file

TEST(VulnerabilitiesParams, DefaultsAreHighNotFixedOnlyUnknownAsMediumNoIgnores) {
  const Policy policy = default_policy();
  const auto& params = policy.checks.at("vulnerabilities").params;
  EXPECT_EQ(params, (nlohmann::json{{"min_severity", "high"}, {"fixed_only", false}, {"unknown_severity", "as-medium"},
                                    {"ignore", nlohmann::json::array()}}));
}

TEST(VulnerabilitiesParams, ParsesEveryParameter) {
  Policy p = parse_text(R"(policy:
  checks:
    vulnerabilities:
      action: warn
      min_severity: critical
      fixed_only: true
      unknown_severity: ignore
      ignore:
        - id: CVE-2024-1111
          reason: "no network listener in this image, SEC-9"
          until: 2026-03-01
          packages: [libssl3, openssl]
        - { id: DSA-5678-1, reason: "vendor patch applied" }
)");
  const auto& s = p.checks.at("vulnerabilities");
  EXPECT_EQ(s.action, Action::warn);
  EXPECT_EQ(s.params["min_severity"], "critical");
  EXPECT_EQ(s.params["fixed_only"], true);
  EXPECT_EQ(s.params["unknown_severity"], "ignore");
  ASSERT_EQ(s.params["ignore"].size(), 2u);
  EXPECT_EQ(s.params["ignore"][0],
            (nlohmann::json{{"id", "CVE-2024-1111"}, {"reason", "no network listener in this image, SEC-9"},
                            {"until", "2026-03-01"}, {"packages", {"libssl3", "openssl"}}}));
  EXPECT_TRUE(s.params["ignore"][1]["until"].is_null());
  EXPECT_NE(p.version, parse_text("policy:\n  checks:\n    vulnerabilities: {action: warn}\n").version)
      << "ignore entries are part of the policy version";
}

TEST(VulnerabilitiesParams, RefusesBadValuesWithTheirLine) {
  expect_refused("policy:\n  checks:\n    vulnerabilities: {min_severity: severe}\n",
                 {"ocigate.yaml:3:", "policy.checks.vulnerabilities.min_severity", "one of low, medium, high, critical",
                  "'severe'"});
  expect_refused("policy:\n  checks:\n    vulnerabilities: {unknown_severity: as-critical}\n",
                 {"policy.checks.vulnerabilities.unknown_severity", "ignore, as-low, as-medium, as-high"});
  expect_refused("policy:\n  checks:\n    vulnerabilities: {fixed_only: sometimes}\n", {"fixed_only", "true or false"});
  const std::string head = "policy:\n  checks:\n    vulnerabilities:\n      ignore:\n";
  expect_refused(head + "        - id: CVE-1\n", {"ocigate.yaml:5:", "ignore[0].reason", "is required"});
  expect_refused(head + "        - {id: CVE-1, reason: \" \"}\n", {"ignore[0].reason", "must not be empty"});
  expect_refused(head + "        - {reason: r}\n", {"ignore[0].id", "is required"});
  expect_refused(head + "        - {id: \"CVE 1\", reason: r}\n", {"ignore[0].id", "no blanks"});
  expect_refused(head + "        - {id: CVE-1, reason: r, until: 2026-02-30}\n", {"ignore[0].until", "YYYY-MM-DD"});
  expect_refused(head + "        - {id: CVE-1, reason: r, packages: []}\n", {"ignore[0].packages", "non-empty"});
  expect_refused(head + "        - {id: CVE-1, reason: r, expires: 2026-01-01}\n", {"ignore[0].expires", "unknown key"});
  expect_refused(head + "        - CVE-1\n", {"ignore[0]", "must be a mapping"});
  expect_refused("policy:\n  checks:\n    vulnerabilities: {ignore: CVE-1}\n", {"policy.checks.vulnerabilities.ignore", "must be a list"});
}

TEST(VulnerabilitiesParams, ARuleKeepsTheTopLevelParametersItDoesNotName) {
  Policy p = parse_text(R"(policy:
  checks:
    vulnerabilities: {action: block, min_severity: medium}
  rules:
    - match: "docker.io/legacy/**"
      checks:
        vulnerabilities: {fixed_only: true}
)");
  const auto& rule = p.rules[0].checks.at("vulnerabilities");
  EXPECT_EQ(rule.params["min_severity"], "medium");
  EXPECT_EQ(rule.params["fixed_only"], true);
  EXPECT_TRUE(check_used(p, "vulnerabilities"));
  EXPECT_TRUE(check_on(p, "docker.io/legacy/app", "vulnerabilities"));
}

TEST(VulnerabilitiesParams, CheckOnAndCheckUsedFollowRules) {
  Policy p = parse_text(R"(policy:
  checks:
    vulnerabilities: off
  rules:
    - match: "docker.io/acme/**"
      checks: { vulnerabilities: block }
)");
  EXPECT_TRUE(check_used(p, "vulnerabilities"));
  EXPECT_TRUE(check_on(p, "docker.io/acme/app", "vulnerabilities"));
  EXPECT_FALSE(check_on(p, "docker.io/library/alpine", "vulnerabilities"));
  EXPECT_FALSE(check_used(parse_text("policy:\n  checks:\n    vulnerabilities: off\n"), "vulnerabilities"));
  EXPECT_TRUE(check_used(default_policy(), "vulnerabilities"));
}
