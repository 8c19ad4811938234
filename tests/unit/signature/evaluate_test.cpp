#include <gtest/gtest.h>

#include "helpers.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;

const std::string image = "ghcr.io/acme/app";

TrustStore two_entries() {
  return trust_from(
      "policy:\n  trust:\n"
      "    - match: \"ghcr.io/acme/**\"\n      cosign: {keys: [ec256.pub, rsa.pub]}\n"
      "    - match: \"ghcr.io/acme/app\"\n      notation: {trust_store: trust-store.pem, identities: [\"x509.subject: CN=release,O=Acme\"]}\n");
}

Subject subject() {
  Subject s;
  s.digest = image_digest();
  s.size = image_size();
  return s;
}

}  // namespace

TEST(FetchPlan, NamesTheTagsAndArtifactTypesOfMatchingEntries) {
  auto trust = two_entries();
  auto plan = fetch_plan(trust, image);
  EXPECT_TRUE(plan.required && plan.cosign && plan.notation);
  EXPECT_EQ(plan.artifact_types, (std::vector<std::string>{std::string(sigstore_bundle_media_type), std::string(notation_artifact_type)}));
  plan = fetch_plan(trust, "ghcr.io/acme/lib");
  EXPECT_TRUE(plan.cosign);
  EXPECT_FALSE(plan.notation);
  EXPECT_FALSE(fetch_plan(trust, "docker.io/library/alpine").required);
  std::string hex(64, 'a');
  EXPECT_EQ(FetchPlan::cosign_tag("sha256:" + hex), "sha256-" + hex + ".sig");
  EXPECT_EQ(FetchPlan::referrers_tag("sha256:" + hex), "sha256-" + hex);
}

TEST(Evaluate, AnImageNoEntryMatchesNeedsNoSignature) {
  auto eval = evaluate(two_entries(), "docker.io/library/alpine", {}, now());
  EXPECT_FALSE(eval.facts.required);
  EXPECT_NE(eval.facts.message.find("no signature required"), std::string::npos);
}

TEST(Evaluate, AnUnsignedImageSaysNoneFound) {
  Candidates c{{subject()}};
  auto eval = evaluate(two_entries(), image, c, now());
  EXPECT_TRUE(eval.facts.required);
  EXPECT_FALSE(eval.facts.satisfied);
  EXPECT_FALSE(eval.facts.incomplete);
  EXPECT_NE(eval.facts.message.find("no signature found"), std::string::npos) << eval.facts.message;
  EXPECT_NE(eval.facts.evidence.find("none found"), std::string::npos) << eval.facts.evidence;
  EXPECT_NE(eval.facts.remediation.find("cosign sign --key"), std::string::npos) << eval.facts.remediation;
  EXPECT_NE(eval.facts.remediation.find("notation sign"), std::string::npos) << eval.facts.remediation;
}

TEST(Evaluate, EveryMatchingEntryMustBeSatisfied) {
  Subject s = subject();
  s.cosign_tag = cosign_tag("rsa-pss");
  auto eval = evaluate(two_entries(), image, Candidates{{s}}, now());
  ASSERT_EQ(eval.entries.size(), 2u);
  EXPECT_TRUE(eval.entries[0].satisfied);
  EXPECT_FALSE(eval.entries[1].satisfied);
  EXPECT_FALSE(eval.facts.satisfied);
  EXPECT_NE(eval.facts.message.find("trust 'ghcr.io/acme/app': no signature found"), std::string::npos)
      << eval.facts.message;

  s.envelopes.push_back(notation("es256"));
  eval = evaluate(two_entries(), image, Candidates{{s}}, now());
  EXPECT_TRUE(eval.facts.satisfied) << eval.facts.message << " | " << eval.facts.evidence;
  EXPECT_EQ(eval.valid.size(), 2u);
  EXPECT_NE(eval.facts.message.find(fixture("rsa.fp")), std::string::npos) << eval.facts.message;
  EXPECT_EQ(eval.facts.message.rfind("signed: ", 0), 0u) << eval.facts.message;
}

TEST(Evaluate, AnyOneValidSignatureSatisfiesAnEntry) {
  Subject s = subject();
  s.cosign_tag = cosign_tag("untrusted");
  s.envelopes = {bundle("replay"), bundle("ok")};
  auto trust = trust_from("policy:\n  trust:\n    - match: \"ghcr.io/**\"\n      cosign: {keys: [ec256.pub]}\n");
  auto eval = evaluate(trust, image, Candidates{{s}}, now());
  EXPECT_TRUE(eval.facts.satisfied) << eval.facts.evidence;
  ASSERT_EQ(eval.entries.size(), 1u);
  EXPECT_EQ(eval.entries[0].results.size(), 3u);
}

TEST(Evaluate, TheFailureMessageNamesTheMostTellingReason) {
  Subject s = subject();
  s.cosign_tag = cosign_tag("replay");
  s.envelopes = {bundle("untrusted")};
  auto trust = trust_from("policy:\n  trust:\n    - match: \"ghcr.io/**\"\n      cosign: {keys: [ec256.pub]}\n");
  auto eval = evaluate(trust, image, Candidates{{s}}, now());
  EXPECT_FALSE(eval.facts.satisfied);
  EXPECT_NE(eval.facts.message.find("payload for another digest (replay)"), std::string::npos) << eval.facts.message;
  EXPECT_NE(eval.facts.evidence.find("signed by an untrusted key"), std::string::npos) << eval.facts.evidence;
  EXPECT_NE(eval.facts.evidence.find("signed for " + other_digest()), std::string::npos) << eval.facts.evidence;
}

TEST(Evaluate, ALookupFailureIsAnIncompleteFailureUnlessAnotherSignatureSuffices) {
  auto trust = trust_from("policy:\n  trust:\n    - match: \"ghcr.io/**\"\n      cosign: {keys: [ec256.pub]}\n");
  Subject s = subject();
  s.lookup_error = "upstream ghcr.io answered 502";
  auto eval = evaluate(trust, image, Candidates{{s}}, now());
  EXPECT_FALSE(eval.facts.satisfied);
  EXPECT_TRUE(eval.facts.incomplete);
  EXPECT_NE(eval.facts.message.find("502"), std::string::npos);
  s.cosign_tag = cosign_tag("ec256");
  eval = evaluate(trust, image, Candidates{{s}}, now());
  EXPECT_TRUE(eval.facts.satisfied);
}

TEST(Evaluate, APlatformManifestIsAcceptedThroughASignedIndex) {
  auto trust = trust_from("policy:\n  trust:\n    - match: \"ghcr.io/**\"\n      cosign: {keys: [ec256.pub]}\n");
  Subject child;
  child.digest = other_digest();  // the platform manifest: unsigned
  Subject index = subject();      // the index it was reached through: signed
  index.via_index = true;
  index.cosign_tag = cosign_tag("ec256");
  auto eval = evaluate(trust, image, Candidates{{child, index}}, now());
  EXPECT_TRUE(eval.facts.satisfied) << eval.facts.evidence;
  EXPECT_NE(eval.facts.message.find("index sha256:"), std::string::npos) << eval.facts.message;
  // Without the index the child is unsigned.
  EXPECT_FALSE(evaluate(trust, image, Candidates{{child}}, now()).facts.satisfied);
}

TEST(Evaluate, AKeylessOnlySignatureIsReportedAsSuch) {
  auto trust = trust_from("policy:\n  trust:\n    - match: \"ghcr.io/**\"\n      cosign: {keys: [ec256.pub]}\n");
  Subject s = subject();
  s.cosign_tag = cosign_tag("keyless");
  auto eval = evaluate(trust, image, Candidates{{s}}, now());
  EXPECT_FALSE(eval.facts.satisfied);
  EXPECT_NE(eval.facts.message.find("keyless signature: not verifiable with configured keys"), std::string::npos)
      << eval.facts.message;
}

TEST(Evaluate, NotationEnvelopesAreIgnoredByCosignOnlyEntries) {
  auto trust = trust_from("policy:\n  trust:\n    - match: \"ghcr.io/**\"\n      cosign: {keys: [ec256.pub]}\n");
  Subject s = subject();
  s.envelopes = {notation("ps256")};
  auto eval = evaluate(trust, image, Candidates{{s}}, now());
  EXPECT_FALSE(eval.facts.satisfied);
  EXPECT_TRUE(eval.entries[0].results.empty());
}
