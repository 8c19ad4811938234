// policy.trust parsing (policy module) and the signature check fed by signature::evaluate.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "helpers.hpp"
#include "ocigate/policy/checks.hpp"
#include "ocigate/policy/engine.hpp"

namespace {

using namespace ocigate::policy;
using ocigate::Errc;

ocigate::Result<Policy> parse(const std::string& yaml) {
  return parse_policy(YAML::Load(yaml)["policy"], "ocigate.yaml");
}

void expect_refused(const std::string& yaml, std::initializer_list<std::string> fragments) {
  auto p = parse(yaml);
  ASSERT_FALSE(p.ok()) << yaml;
  EXPECT_EQ(p.error().code, Errc::config_invalid);
  for (const auto& f : fragments) {
    EXPECT_NE(p.error().message.find(f), std::string::npos) << "'" << f << "' not in: " << p.error().message;
  }
}

const char* issue_example = R"(policy:
  checks: { signature: block }
  trust:
    - match: "ghcr.io/acme/**"
      cosign:   { keys: [keys/acme-release.pub, keys/acme-ci.pub] }
    - match: "docker.io/acme/**"
      notation: { trust_store: certs/acme-ca.pem, identities: ["x509.subject: CN=release,O=Acme"] }
)";

}  // namespace

TEST(PolicyTrust, ParsesTheIssueExampleWithoutReadingFiles) {
  auto p = parse(issue_example);
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_EQ(p->trust.size(), 2u);
  EXPECT_EQ(p->trust[0].match, "ghcr.io/acme/**");
  EXPECT_TRUE(p->trust[0].cosign);
  EXPECT_FALSE(p->trust[0].notation);
  ASSERT_EQ(p->trust[0].cosign_keys.size(), 2u);
  EXPECT_EQ(p->trust[0].cosign_keys[1].path, "keys/acme-ci.pub");
  EXPECT_EQ(p->trust[0].cosign_keys[1].where, "ocigate.yaml:5: policy.trust[0].cosign.keys[1]");
  EXPECT_EQ(p->trust[0].where, "ocigate.yaml:4: policy.trust[0]");
  EXPECT_TRUE(p->trust[1].notation);
  EXPECT_EQ(p->trust[1].notation_trust_store.path, "certs/acme-ca.pem");
  EXPECT_EQ(p->trust[1].notation_identities, std::vector<std::string>{"x509.subject: CN=release,O=Acme"});
}

TEST(PolicyTrust, RefusesMalformedEntriesWithTheLine) {
  expect_refused("policy:\n  trust: {}\n", {"ocigate.yaml:2:", "policy.trust", "must be a list"});
  expect_refused("policy:\n  trust:\n    - cosign: {keys: [a.pub]}\n", {"policy.trust[0].match", "is required"});
  expect_refused("policy:\n  trust:\n    - match: \"x/**\"\n", {"policy.trust[0]", "needs cosign and/or notation"});
  expect_refused("policy:\n  trust:\n    - match: \"x/**\"\n      cosign: {keys: []}\n",
                 {"ocigate.yaml:4:", "policy.trust[0].cosign.keys", "non-empty"});
  expect_refused("policy:\n  trust:\n    - match: \"x/**\"\n      cosign: {key: a.pub}\n",
                 {"policy.trust[0].cosign.key", "unknown key"});
  expect_refused("policy:\n  trust:\n    - match: \"x/**\"\n      sigstore: {}\n", {"policy.trust[0].sigstore", "unknown key"});
  expect_refused("policy:\n  trust:\n    - match: \"X Y\"\n      cosign: {keys: [a.pub]}\n", {"policy.trust[0].match", "malformed glob"});
  expect_refused("policy:\n  trust:\n    - match: \"x/**\"\n      notation: {identities: [\"*\"]}\n",
                 {"policy.trust[0].notation.trust_store", "is required"});
  expect_refused("policy:\n  trust:\n    - match: \"x/**\"\n      notation: {trust_store: ca.pem, identities: [\"CN=a\"]}\n",
                 {"ocigate.yaml:4:", "policy.trust[0].notation.identities[0]", "x509.subject"});
  expect_refused("policy:\n  trust:\n    - match: \"x/**\"\n      notation: {trust_store: ca.pem}\n",
                 {"policy.trust[0].notation.identities", "non-empty"});
}

TEST(PolicyTrust, TrustIsPartOfTheVersion) {
  auto base = parse("policy:\n  mode: enforce\n");
  auto with = parse("policy:\n  mode: enforce\n  trust:\n    - match: \"x/**\"\n      cosign: {keys: [a.pub]}\n");
  auto other_key = parse("policy:\n  mode: enforce\n  trust:\n    - match: \"x/**\"\n      cosign: {keys: [b.pub]}\n");
  auto reformatted = parse("policy:\n  mode: enforce\n  trust:\n\n    - match: \"x/**\"\n      cosign:\n        keys: [a.pub]\n");
  ASSERT_TRUE(base.ok() && with.ok() && other_key.ok() && reformatted.ok());
  EXPECT_NE(base->version, with->version);
  EXPECT_NE(with->version, other_key->version) << "removing a key (revocation) must change the version";
  EXPECT_EQ(with->version, reformatted->version) << "line numbers are not part of the version";
  EXPECT_TRUE(canonical_json(*with).contains("trust"));
}

// ---- check_signature

namespace {

CheckResult run_signature(std::optional<SignatureFacts> facts) {
  ImageFacts image;
  image.upstream = "ghcr.io";
  image.repository = "acme/app";
  image.digest = "sha256:" + std::string(64, 'a');
  image.signature = std::move(facts);
  Policy policy = default_policy();
  nlohmann::json params = nlohmann::json::object();
  std::optional<std::vector<HistoryEntry>> history;
  return check_signature(CheckInput{image, policy, params, history});
}

}  // namespace

TEST(CheckSignature, IsUnknownWhenSignaturesWereNotLookedUp) {
  auto r = run_signature(std::nullopt);
  EXPECT_EQ(r.outcome, Outcome::unknown);
  EXPECT_EQ(r.message.rfind("not evaluated: ", 0), 0u) << r.message;
}

TEST(CheckSignature, MapsTheFacts) {
  SignatureFacts not_required = ocigate::signature::not_required();
  EXPECT_EQ(run_signature(not_required).outcome, Outcome::pass);

  SignatureFacts ok{true, true, false, "signed: ...", "", "trust 'x': cosign ...: verified"};
  auto r = run_signature(ok);
  EXPECT_EQ(r.outcome, Outcome::pass);
  EXPECT_EQ(r.evidence, ok.evidence);

  SignatureFacts bad{true, false, false, "not signed as policy.trust requires: trust 'x': no signature found",
                     "sign it", "trust 'x': none found"};
  r = run_signature(bad);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_EQ(r.message, bad.message);
  EXPECT_EQ(r.remediation, "sign it");
  EXPECT_EQ(r.evidence, bad.evidence);

  SignatureFacts incomplete{true, false, true, "signatures could not be looked up (502)", "", ""};
  r = run_signature(incomplete);
  EXPECT_EQ(r.outcome, Outcome::fail) << "a lookup broken by the upstream must not let an unsigned image through";
  EXPECT_NE(r.message.find("502"), std::string::npos);
}

TEST(CheckSignature, BlocksAnUnsignedImageEndToEnd) {
  using namespace ocigate::signature::test;
  auto policy = policy_from("policy:\n  mode: enforce\n  checks: {signature: block}\n  trust:\n"
                            "    - match: \"ghcr.io/acme/**\"\n      cosign: {keys: [ec256.pub]}\n");
  auto trust = ocigate::signature::load_trust(policy, fixtures());
  ASSERT_TRUE(trust.ok()) << trust.error().message;
  ocigate::signature::Subject unsigned_image;
  unsigned_image.digest = image_digest();
  auto eval = ocigate::signature::evaluate(*trust, "ghcr.io/acme/app", {{unsigned_image}}, now());

  ImageFacts facts;
  facts.upstream = "ghcr.io";
  facts.repository = "acme/app";
  facts.reference = image_digest();
  facts.digest = image_digest();
  facts.now = now();
  facts.signature = eval.facts;
  auto verdict = evaluate(policy, facts);
  EXPECT_EQ(verdict.decision, Decision::block);
  auto blocked = verdict.violated_checks(Action::block);
  EXPECT_NE(std::find(blocked.begin(), blocked.end(), "signature"), blocked.end());
  EXPECT_NE(verdict.denied_message().find("signature"), std::string::npos) << verdict.denied_message();

  ocigate::signature::Subject signed_image = unsigned_image;
  signed_image.cosign_tag = cosign_tag("ec256");
  facts.signature = ocigate::signature::evaluate(*trust, "ghcr.io/acme/app", {{signed_image}}, now()).facts;
  verdict = evaluate(policy, facts);
  blocked = verdict.violated_checks(Action::block);
  EXPECT_EQ(std::find(blocked.begin(), blocked.end(), "signature"), blocked.end()) << verdict.to_json().dump(2);
}
