// Keyless trust entries end to end through load_trust and evaluate: signatures and SLSA
// provenance attestations (.att layers and bundles), and the provenance predicate reader.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "helpers.hpp"
#include "keyless_helpers.hpp"
#include "ocigate/policy/checks.hpp"
#include "ocigate/policy/engine.hpp"
#include "ocigate/signature/provenance.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;

const std::string image = "ghcr.io/acme/app";
const std::string builder = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
const std::string repository = "https://github.com/acme/app";

// A config directory with the fixtures' trusted_root.json.
class KeylessEntry : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ocigate-keyless-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir_ / "sigstore");
    write("sigstore/trusted_root.json", f.trusted_root_json());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }

  ocigate::Result<TrustStore> load(const std::string& entry) {
    return load_trust(policy_from("policy:\n  trust:\n" + entry), dir_);
  }

  TrustStore store(const std::string& provenance = "") {
    auto loaded = load(
        "    - match: \"ghcr.io/acme/**\"\n"
        "      cosign:\n"
        "        keyless:\n"
        "          trusted_root: sigstore/trusted_root.json\n"
        "          identities:\n"
        "            - issuer: " + github_issuer + "\n"
        "              subject_regexp: 'https://github\\.com/acme/[^/]+/\\.github/workflows/release\\.yml@refs/tags/v.*'\n" +
        provenance);
    EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.error().message);
    return loaded.ok() ? std::move(*loaded) : TrustStore{};
  }

  TrustStore with_provenance() {
    return store("      provenance:\n        builder_ids: [\"https://github.com/acme/*/.github/workflows/release.yml@refs/tags/*\"]\n"
                 "        source_repositories: [\"https://github.com/acme/*\"]\n");
  }

  Subject subject() {
    Subject s;
    s.digest = image_digest_a;
    return s;
  }

  KeylessFixtures f;
  std::filesystem::path dir_;
};

}  // namespace

TEST(Provenance, ReadsSlsaV1AndV02) {
  auto v1 = read_provenance(provenance_statement(image_digest_a, builder, repository, true));
  ASSERT_TRUE(v1.ok()) << v1.error().message;
  EXPECT_EQ(v1->builder_id, builder);
  EXPECT_EQ(v1->source_repository, repository);
  auto v02 = read_provenance(provenance_statement(image_digest_a, builder, repository, false));
  ASSERT_TRUE(v02.ok()) << v02.error().message;
  EXPECT_EQ(v02->source_repository, repository) << "git+ prefix and @ref dropped";
}

TEST(Provenance, FallsBackToResolvedDependenciesAndMaterials) {
  auto statement = nlohmann::json::parse(provenance_statement(image_digest_a, builder, repository, true));
  statement["predicate"]["buildDefinition"]["externalParameters"] = nlohmann::json::object();
  statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"] = "git+https://gitlab.com/acme/app.git@refs/heads/main";
  auto p = read_provenance(statement.dump());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->source_repository, "https://gitlab.com/acme/app");
  statement = nlohmann::json::parse(provenance_statement(image_digest_a, builder, repository, false));
  statement["predicate"].erase("invocation");
  p = read_provenance(statement.dump());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->source_repository, repository);
}

TEST(Provenance, RefusesOtherPredicatesAndMissingFields) {
  EXPECT_EQ(read_provenance(sign_statement(image_digest_a)).error().code, ocigate::Errc::unsupported);
  auto statement = nlohmann::json::parse(provenance_statement(image_digest_a, builder, repository, true));
  statement["predicate"]["runDetails"].erase("builder");
  EXPECT_NE(read_provenance(statement.dump()).error().message.find("runDetails.builder.id"), std::string::npos);
  EXPECT_FALSE(read_provenance("[").ok());
}

TEST(Provenance, MismatchNamesTheField) {
  ProvenanceRule rule{{"https://github.com/acme/*/.github/workflows/release.yml@refs/tags/*"}, {"https://github.com/acme/*"}};
  EXPECT_EQ(provenance_mismatch({"", builder, repository}, rule), "");
  auto why = provenance_mismatch({"", "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1", repository}, rule);
  EXPECT_NE(why.find("builder id 'https://github.com/evil/app"), std::string::npos) << why;
  EXPECT_EQ(why.find("source repository"), std::string::npos) << why;
  why = provenance_mismatch({"", builder, "https://github.com/acme/app/fork"}, rule);
  EXPECT_NE(why.find("source repository 'https://github.com/acme/app/fork' matches none of source_repositories"), std::string::npos) << why;
  EXPECT_EQ(why.find("builder id"), std::string::npos) << why;
}

TEST(Provenance, NormalizesRepositoryUrls) {
  EXPECT_EQ(normalize_repository("git+https://github.com/acme/app@refs/heads/main"), "https://github.com/acme/app");
  EXPECT_EQ(normalize_repository("https://github.com/acme/app.git"), "https://github.com/acme/app");
  EXPECT_EQ(normalize_repository("https://github.com/acme/app"), "https://github.com/acme/app");
}

TEST_F(KeylessEntry, LoadsTheTrustedRootAndIdentities) {
  auto trust = store();
  ASSERT_EQ(trust.entries.size(), 1u);
  ASSERT_TRUE(trust.entries[0].cosign && trust.entries[0].cosign_keyless);
  EXPECT_EQ(trust.entries[0].cosign_keyless->identities.size(), 1u);
  EXPECT_TRUE(trust.entries[0].cosign_keyless->require_tlog);
  EXPECT_EQ(trust.entries[0].cosign_keyless->trusted_root_path, (dir_ / "sigstore/trusted_root.json").string());
}

TEST_F(KeylessEntry, TheFingerprintFollowsTheTrustedRootFile) {
  auto before = store().fingerprint;
  EXPECT_EQ(store().fingerprint, before);
  KeylessFixtures other;
  write("sigstore/trusted_root.json", other.trusted_root_json());
  EXPECT_NE(store().fingerprint, before) << "a new trusted root (SIGHUP) must change verdict cache keys";
}

TEST_F(KeylessEntry, RefusesABadRegexpOrRootWithTheLine) {
  auto bad = load("    - match: \"x/**\"\n      cosign:\n        keyless:\n          trusted_root: sigstore/trusted_root.json\n"
                  "          identities: [{issuer: \"https://i\", subject_regexp: \"(x\"}]\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("ocigate.yaml:7: policy.trust[0].cosign.keyless.identities[0]"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("not a valid regular expression"), std::string::npos) << bad.error().message;
  write("sigstore/broken.json", "{\"tlogs\": 3}");
  bad = load("    - match: \"x/**\"\n      cosign:\n        keyless:\n          trusted_root: sigstore/broken.json\n"
             "          identities: [{issuer: \"https://i\", subject: s}]\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("policy.trust[0].cosign.keyless.trusted_root: sigstore/broken.json"), std::string::npos)
      << bad.error().message;
  EXPECT_NE(bad.error().message.find("tlogs: must be a list"), std::string::npos) << bad.error().message;
  bad = load("    - match: \"x/**\"\n      cosign:\n        keyless:\n          trusted_root: missing.json\n"
             "          identities: [{issuer: \"https://i\", subject: s}]\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("cannot be read"), std::string::npos) << bad.error().message;
}

TEST_F(KeylessEntry, AKeylessSignedImageSatisfiesTheEntryWithEvidence) {
  auto trust = store();
  Subject s = subject();
  auto m = f.sign_message(simplesigning_payload(image_digest_a));
  s.cosign_tag = sig_tag(m);
  auto eval = evaluate(trust, image, Candidates{{s}}, f.now);
  EXPECT_TRUE(eval.facts.satisfied) << eval.facts.message << " | " << eval.facts.evidence;
  for (const auto& part : {release_workflow, github_issuer, "log index " + std::to_string(m.entry->log_index), "signed " + utc_text(f.now)}) {
    EXPECT_NE(eval.facts.evidence.find(part), std::string::npos) << part << " not in evidence: " << eval.facts.evidence;
    EXPECT_NE(eval.facts.message.find(part), std::string::npos) << part << " not in message: " << eval.facts.message;
  }
  EXPECT_FALSE(eval.provenance.required);
}

TEST_F(KeylessEntry, AWrongIdentityIsBlockedWithTheReasonAndAKeylessRemedy) {
  auto trust = store();
  Subject s = subject();
  SignOptions o;
  o.subject = "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1.0.0";
  s.cosign_tag = sig_tag(f.sign_message(simplesigning_payload(image_digest_a), o));
  auto eval = evaluate(trust, image, Candidates{{s}}, f.now);
  EXPECT_FALSE(eval.facts.satisfied);
  EXPECT_NE(eval.facts.message.find("signer identity not trusted"), std::string::npos) << eval.facts.message;
  EXPECT_NE(eval.facts.evidence.find("https://github.com/evil/app"), std::string::npos) << eval.facts.evidence;
  EXPECT_NE(eval.facts.remediation.find("sign keyless"), std::string::npos) << eval.facts.remediation;
}

TEST_F(KeylessEntry, FetchPlanAsksForAttestationsOnlyWithAProvenanceRule) {
  EXPECT_FALSE(fetch_plan(store(), image).attestations);
  auto plan = fetch_plan(with_provenance(), image);
  EXPECT_TRUE(plan.attestations && plan.cosign);
  EXPECT_EQ(FetchPlan::attestation_tag(image_digest_a), "sha256-" + std::string(64, 'a') + ".att");
}

TEST_F(KeylessEntry, AMatchingProvenanceAttestationSatisfiesTheRule) {
  Subject s = subject();
  s.cosign_tag = sig_tag(f.sign_message(simplesigning_payload(image_digest_a)));
  s.attestation_tag = att_tag(f.sign_dsse(provenance_statement(image_digest_a, builder, repository)));
  auto eval = evaluate(with_provenance(), image, Candidates{{s}}, f.now);
  EXPECT_TRUE(eval.provenance.required);
  EXPECT_TRUE(eval.provenance.satisfied) << eval.provenance.message << " | " << eval.provenance.evidence;
  EXPECT_NE(eval.provenance.message.find(builder), std::string::npos) << eval.provenance.message;
  EXPECT_NE(eval.provenance.evidence.find("cosign-attestation"), std::string::npos) << eval.provenance.evidence;
}

TEST_F(KeylessEntry, AProvenanceBundleAmongTheReferrersSatisfiesTheRule) {
  Subject s = subject();
  s.envelopes.push_back(bundle_envelope(f.sign_dsse(provenance_statement(image_digest_a, builder, repository, false)).bundle()));
  auto eval = evaluate(with_provenance(), image, Candidates{{s}}, f.now);
  EXPECT_TRUE(eval.provenance.satisfied) << eval.provenance.message;
  EXPECT_TRUE(eval.facts.satisfied) << "a verified statement about the digest is a signature too: " << eval.facts.message;
}

TEST_F(KeylessEntry, ANonMatchingBuilderIsNamedInTheViolation) {
  Subject s = subject();
  s.attestation_tag = att_tag(f.sign_dsse(provenance_statement(image_digest_a, "https://github.com/actions/runner/self-hosted", repository)));
  auto eval = evaluate(with_provenance(), image, Candidates{{s}}, f.now);
  EXPECT_FALSE(eval.provenance.satisfied);
  EXPECT_FALSE(eval.provenance.incomplete);
  EXPECT_NE(eval.provenance.message.find("builder id 'https://github.com/actions/runner/self-hosted' matches none of builder_ids"), std::string::npos)
      << eval.provenance.message;
  EXPECT_NE(eval.provenance.remediation.find("SLSA provenance"), std::string::npos);
}

TEST_F(KeylessEntry, ANonMatchingSourceRepositoryIsNamedInTheViolation) {
  Subject s = subject();
  s.attestation_tag = att_tag(f.sign_dsse(provenance_statement(image_digest_a, builder, "https://github.com/evil/app")));
  auto eval = evaluate(with_provenance(), image, Candidates{{s}}, f.now);
  EXPECT_FALSE(eval.provenance.satisfied);
  EXPECT_NE(eval.provenance.message.find("source repository 'https://github.com/evil/app'"), std::string::npos) << eval.provenance.message;
}

TEST_F(KeylessEntry, AnAttestationByAnUntrustedIdentityDoesNotCount) {
  Subject s = subject();
  SignOptions o;
  o.issuer = "https://accounts.google.com";
  s.attestation_tag = att_tag(f.sign_dsse(provenance_statement(image_digest_a, builder, repository), o));
  auto eval = evaluate(with_provenance(), image, Candidates{{s}}, f.now);
  EXPECT_FALSE(eval.provenance.satisfied);
  EXPECT_NE(eval.provenance.message.find("no verified provenance attestation: signer identity not trusted"), std::string::npos)
      << eval.provenance.message;
}

TEST_F(KeylessEntry, AnAttestationForAnotherDigestDoesNotCount) {
  Subject s = subject();
  s.attestation_tag = att_tag(f.sign_dsse(provenance_statement(image_digest_b, builder, repository)));
  auto eval = evaluate(with_provenance(), image, Candidates{{s}}, f.now);
  EXPECT_FALSE(eval.provenance.satisfied);
  EXPECT_NE(eval.provenance.message.find("replay"), std::string::npos) << eval.provenance.message;
}

TEST_F(KeylessEntry, NoAttestationFailsAndALookupErrorIsIncomplete) {
  Subject s = subject();
  auto eval = evaluate(with_provenance(), image, Candidates{{s}}, f.now);
  EXPECT_FALSE(eval.provenance.satisfied);
  EXPECT_FALSE(eval.provenance.incomplete);
  EXPECT_NE(eval.provenance.message.find("no provenance attestation found"), std::string::npos) << eval.provenance.message;
  s.lookup_error = "upstream answered 503";
  eval = evaluate(with_provenance(), image, Candidates{{s}}, f.now);
  EXPECT_TRUE(eval.provenance.incomplete);
  EXPECT_NE(eval.provenance.message.find("could not be looked up"), std::string::npos) << eval.provenance.message;
}

TEST_F(KeylessEntry, TheProvenanceCheckTurnsTheFactsIntoAFinding) {
  using namespace ocigate::policy;
  Subject s = subject();
  s.attestation_tag = att_tag(f.sign_dsse(provenance_statement(image_digest_a, "https://evil.example/builder", repository)));
  auto eval = ocigate::signature::evaluate(with_provenance(), image, Candidates{{s}}, f.now);
  Policy policy = default_policy();
  EXPECT_EQ(policy.checks.at("provenance").action, Action::off) << "off by default";
  for (auto& [id, setting] : policy.checks) setting.action = id == "provenance" ? Action::block : Action::off;
  policy.mode = Mode::enforce;
  stamp_version(policy);
  ImageFacts facts;
  facts.upstream = "ghcr.io";
  facts.repository = "acme/app";
  facts.digest = image_digest_a;
  facts.now = f.now;
  facts.provenance = eval.provenance;
  auto verdict = ocigate::policy::evaluate(policy, facts);
  EXPECT_EQ(verdict.decision, Decision::block);
  ASSERT_EQ(verdict.violations().size(), 1u);
  EXPECT_NE(verdict.violations()[0]->message.find("builder id 'https://evil.example/builder'"), std::string::npos)
      << verdict.violations()[0]->message;
  facts.provenance.reset();
  verdict = ocigate::policy::evaluate(policy, facts);
  EXPECT_EQ(verdict.decision, Decision::allow);
  EXPECT_EQ(verdict.findings[0].outcome, Outcome::unknown);
  Subject failing = subject();
  failing.lookup_error = "timeout";
  facts.provenance = ocigate::signature::evaluate(with_provenance(), image, Candidates{{failing}}, f.now).provenance;
  verdict = ocigate::policy::evaluate(policy, facts);
  EXPECT_EQ(verdict.findings[0].outcome, Outcome::unknown) << "a failed lookup is unknown, not a violation";
  EXPECT_NE(verdict.findings[0].message.find("could not be looked up"), std::string::npos) << verdict.findings[0].message;
}
