// Keyless verification against a Sigstore stand-in made in the test (keyless_fixtures.hpp): one
// test per way a signature, its Rekor entry, its certificate or its identity can be wrong.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "keyless_helpers.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;
using nlohmann::json;
using namespace std::chrono_literals;

class Keyless : public ::testing::Test {
 protected:
  KeylessFixtures f;
  std::string payload = simplesigning_payload(image_digest_a);

  SignatureResult verify_tag(const SignedMessage& m, const KeylessTrust& trust, std::string_view digest = image_digest_a) {
    return only_result(verify_cosign_tag(sig_tag(m), digest, Signers{{}, &trust, f.now}));
  }
  SignatureResult verify_tag(const SignedMessage& m) { return verify_tag(m, keyless_trust(f)); }

  SignatureResult verify_bundle(const std::string& bundle, std::string_view digest = image_digest_a) {
    KeylessTrust trust = keyless_trust(f);
    return verify_sigstore_bundle(bundle_envelope(bundle), digest, Signers{{}, &trust, f.now});
  }
};

#define EXPECT_REASON(result, expected, fragment)                                                           \
  do {                                                                                                      \
    auto r_ = (result);                                                                                     \
    EXPECT_EQ(r_.reason, expected) << reason_text(r_.reason) << ": " << r_.detail;                        \
    EXPECT_NE(r_.detail.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << r_.detail; \
  } while (0)

// ---- what verifies

TEST_F(Keyless, ACosignTagSignatureVerifiesAndNamesIdentityIssuerLogIndexAndTime) {
  auto m = f.sign_message(payload);
  auto r = verify_tag(m);
  ASSERT_TRUE(r.valid()) << reason_text(r.reason) << ": " << r.detail;
  EXPECT_EQ(r.identity, release_workflow);
  EXPECT_EQ(r.issuer, github_issuer);
  EXPECT_EQ(r.log_index, m.entry->log_index);
  ASSERT_TRUE(r.signing_time.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*r.signing_time), std::chrono::system_clock::to_time_t(f.now));
  for (const auto& part : {release_workflow, github_issuer, "log index " + std::to_string(m.entry->log_index), utc_text(f.now)}) {
    EXPECT_NE(r.detail.find(part), std::string::npos) << part << " not in: " << r.detail;
  }
}

TEST_F(Keyless, AnEmailSubjectWithTheDeprecatedIssuerExtensionVerifies) {
  SignOptions o;
  o.san = SignOptions::San::email;
  o.subject = "release@acme.example";
  o.issuer = "https://accounts.google.com";
  o.issuer_extension = SignOptions::IssuerExtension::v1;
  auto r = verify_tag(f.sign_message(payload, o), keyless_trust(f, {identity("https://accounts.google.com", "release@acme.example")}));
  EXPECT_TRUE(r.valid()) << r.detail;
  EXPECT_EQ(r.identity, "release@acme.example");
}

TEST_F(Keyless, AUsernameOtherNameWithBothIssuerExtensionsVerifies) {
  SignOptions o;
  o.san = SignOptions::San::username;
  o.subject = "foo!oidc.local";
  o.issuer = "http://oidc.local:8080";
  o.issuer_extension = SignOptions::IssuerExtension::both;
  auto r = verify_tag(f.sign_message(payload, o), keyless_trust(f, {identity("http://oidc.local:8080", "foo!oidc.local")}));
  EXPECT_TRUE(r.valid()) << r.detail;
}

TEST_F(Keyless, ASubjectRegexpMatchesTheWholeSubject) {
  auto trust = keyless_trust(f, {identity(github_issuer, "", R"(https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*)")});
  EXPECT_TRUE(verify_tag(f.sign_message(payload), trust).valid());
}

TEST_F(Keyless, ABundleWithAnIntotoEntryAndInclusionProofVerifies) {
  auto d = f.sign_dsse(sign_statement(image_digest_a));
  ASSERT_TRUE(d.entry && d.entry->proof);
  auto r = verify_bundle(d.bundle(3));
  EXPECT_TRUE(r.valid()) << reason_text(r.reason) << ": " << r.detail;
  EXPECT_EQ(r.log_index, d.entry->log_index);
  EXPECT_EQ(r.predicate_type, "https://sigstore.dev/cosign/sign/v1");
}

TEST_F(Keyless, ABundleWithADsseEntryVerifies) {
  SignOptions o;
  o.kind = EntryKind::dsse;
  auto r = verify_bundle(f.sign_dsse(sign_statement(image_digest_a), o).bundle(3));
  EXPECT_TRUE(r.valid()) << reason_text(r.reason) << ": " << r.detail;
}

TEST_F(Keyless, AVersion01BundleWithACertificateChainVerifies) {
  auto r = verify_bundle(f.sign_dsse(sign_statement(image_digest_a)).bundle(1));
  EXPECT_TRUE(r.valid()) << reason_text(r.reason) << ": " << r.detail;
}

TEST_F(Keyless, WithoutRequireTlogASignatureWithNoEntryIsCheckedAtTheCurrentTime) {
  SignOptions o;
  o.tlog = false;
  auto m = f.sign_message(payload, o);
  auto r = verify_tag(m, keyless_trust(f, {}, false));
  EXPECT_TRUE(r.valid()) << r.detail;
  EXPECT_FALSE(r.signing_time.has_value());
  EXPECT_EQ(r.log_index, -1);
  EXPECT_NE(r.detail.find("require_tlog: false"), std::string::npos) << r.detail;
}

TEST_F(Keyless, KeysAndKeylessOnOneEntryEitherSatisfies) {
  auto trust = keyless_trust(f);
  auto key_pair = generate_p256();
  auto key = parse_public_key_der(key_der(key_pair.get()), "ci.pub");
  ASSERT_TRUE(key.ok());
  Signers both{{*key}, &trust, f.now};
  // A keyed signature, no certificate.
  auto [manifest, blobs] = cosign_manifest({{"application/vnd.dev.cosign.simplesigning.v1+json", payload,
                                             {{"dev.cosignproject.cosign/signature", to_base64(sign_sha256(key_pair.get(), payload))}}}});
  EXPECT_TRUE(only_result(verify_cosign_tag(CosignTagSignature{manifest, blobs}, image_digest_a, both)).valid());
  // A keyless one.
  EXPECT_TRUE(only_result(verify_cosign_tag(sig_tag(f.sign_message(payload)), image_digest_a, both)).valid());
}

// ---- signing time

TEST_F(Keyless, AnOldSignatureIsCheckedAtItsLoggedTimeNotNow) {
  SignOptions o;
  o.when = f.now - 24h;  // the 10-minute certificate expired a day ago
  auto r = verify_tag(f.sign_message(payload, o));
  EXPECT_TRUE(r.valid()) << reason_text(r.reason) << ": " << r.detail;
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*r.signing_time), std::chrono::system_clock::to_time_t(f.now - 24h));
}

TEST_F(Keyless, WithoutAnEntryAnExpiredCertificateIsRefused) {
  SignOptions o;
  o.when = f.now - 24h;
  o.tlog = false;
  EXPECT_REASON(verify_tag(f.sign_message(payload, o), keyless_trust(f, {}, false)), Reason::bad_chain, "expired");
}

TEST_F(Keyless, ASigningTimeBeforeTheCertificateIsRefused) {
  SignOptions o;
  o.not_before_offset = 60s;  // the certificate starts a minute after the entry was logged
  EXPECT_REASON(verify_tag(f.sign_message(payload, o)), Reason::bad_chain, "not yet valid");
}

TEST_F(Keyless, ASigningTimeAfterTheCertificateIsRefused) {
  SignOptions o;
  o.not_before_offset = -700s;  // expired 100 s before the entry was logged
  EXPECT_REASON(verify_tag(f.sign_message(payload, o)), Reason::bad_chain, "expired");
}

TEST_F(Keyless, ASigningTimeOutsideTheLogKeyWindowIsRefused) {
  f.rekor.valid.end = f.now - 24h;  // the log key was retired yesterday
  EXPECT_REASON(verify_tag(f.sign_message(payload)), Reason::bad_tlog, "outside the validity of log");
}

TEST_F(Keyless, AnExpiredTrustedRootCertificateAuthorityIsRefused) {
  f.ca_valid.end = f.now - 24h;  // the trusted root retired the CA before the signing time
  EXPECT_REASON(verify_tag(f.sign_message(payload)), Reason::bad_chain, "outside the signing time");
}

// ---- the Rekor entry against the signature

TEST_F(Keyless, ATamperedEntryBodyBreaksTheSet) {
  auto m = f.sign_message(payload);
  json body = json::parse(m.entry->body);
  body["spec"]["data"]["hash"]["value"] = std::string(64, '0');
  m.entry->body = body.dump();
  json bundle = json::parse(m.rekor_bundle);
  bundle["Payload"]["body"] = to_base64(m.entry->body);
  m.rekor_bundle = bundle.dump();
  EXPECT_REASON(verify_tag(m), Reason::bad_tlog, "SET does not verify");
}

TEST_F(Keyless, ALoggedEntryOfAnotherPayloadIsRefused) {
  auto logged = f.sign_message(simplesigning_payload(image_digest_b));
  auto m = f.sign_message(payload);
  m.rekor_bundle = logged.rekor_bundle;  // a genuine entry, of something else
  EXPECT_REASON(verify_tag(m), Reason::bad_tlog, "is not the SHA-256 of this payload");
}

TEST_F(Keyless, ATamperedSignatureIsRefused) {
  auto m = f.sign_message(payload);
  m.signature[m.signature.size() - 3] ^= 0x01;
  EXPECT_REASON(verify_tag(m), Reason::bad_signature, "does not verify with the certificate's key");
}

TEST_F(Keyless, AnotherCertificateThanTheEntrysIsRefused) {
  SignOptions o;
  o.leaf_key = generate_p256();
  auto m = f.sign_message(payload, o);
  // A second, equally valid certificate for the same key: the signature verifies with it, but
  // the log recorded the first one.
  auto other = f.issue_leaf(o, f.now);
  m.certificate_pem = cert_pem(other.cert.get());
  EXPECT_REASON(verify_tag(m), Reason::bad_tlog, "certificate is not this signature's certificate");
}

TEST_F(Keyless, GlobalAndShardLogIndexesSwappedAreRefused) {
  auto d = f.sign_dsse(sign_statement(image_digest_a));
  ASSERT_NE(d.entry->log_index, d.entry->proof->log_index);
  std::swap(d.entry->log_index, d.entry->proof->log_index);
  EXPECT_REASON(verify_bundle(d.bundle()), Reason::bad_tlog, "SET does not verify");
  // Only the proof given the global index: the SET holds, the inclusion proof does not.
  d = f.sign_dsse(sign_statement(image_digest_a));
  d.entry->proof->log_index = d.entry->log_index;
  EXPECT_REASON(verify_bundle(d.bundle()), Reason::bad_tlog, "inclusion proof does not lead");
}

TEST_F(Keyless, ABundleCarryingTheEntryOfAnotherStatementIsRefused) {
  auto d = f.sign_dsse(sign_statement(image_digest_a));
  auto other = f.sign_dsse(sign_statement(image_digest_a) + " ");
  d.entry = other.entry;  // genuine, logged, and about another payload
  EXPECT_REASON(verify_bundle(d.bundle()), Reason::bad_tlog, "payloadHash is not the SHA-256 of this DSSE payload");
}

TEST_F(Keyless, ATamperedInclusionProofIsRefused) {
  auto d = f.sign_dsse(sign_statement(image_digest_a));
  d.entry->proof->hashes.front()[0] ^= 0x01;
  EXPECT_REASON(verify_bundle(d.bundle()), Reason::bad_tlog, "inclusion proof does not lead");
}

TEST_F(Keyless, AWrongCheckpointKeyHintIsRefused) {
  auto d = f.sign_dsse(sign_statement(image_digest_a));
  std::string& note = d.entry->proof->checkpoint;
  auto sig_at = note.rfind(' ') + 1;
  auto raw = base64_decode(note.substr(sig_at, note.size() - sig_at - 1), false);
  ASSERT_TRUE(raw);
  (*raw)[0] ^= 0x01;  // the key hint's first byte
  note = note.substr(0, sig_at) + to_base64(*raw) + "\n";
  EXPECT_REASON(verify_bundle(d.bundle()), Reason::bad_tlog, "key hint");
}

TEST_F(Keyless, ACheckpointOfAnotherTreeIsRefused) {
  auto d = f.sign_dsse(sign_statement(image_digest_a));
  auto later = f.sign_dsse(sign_statement(image_digest_b));  // the log has grown: a genuine, newer checkpoint
  d.entry->proof->checkpoint = later.entry->proof->checkpoint;
  EXPECT_REASON(verify_bundle(d.bundle()), Reason::bad_tlog, "root hashes differ");
}

TEST_F(Keyless, ACheckpointSignedByAnotherKeyIsRefused) {
  auto d = f.sign_dsse(sign_statement(image_digest_a));
  KeylessFixtures other;  // another Rekor with the same name
  auto foreign = other.sign_dsse(sign_statement(image_digest_a));
  d.entry->proof->checkpoint = foreign.entry->proof->checkpoint;
  EXPECT_REASON(verify_bundle(d.bundle()), Reason::bad_tlog, "key hint");
}

TEST_F(Keyless, NoEntryIsRefusedWhenTheTlogIsRequired) {
  SignOptions o;
  o.tlog = false;
  EXPECT_REASON(verify_tag(f.sign_message(payload, o)), Reason::bad_tlog, "no Rekor entry");
}

TEST_F(Keyless, AnEntryOfALogTheRootDoesNotListIsNoSigningTime) {
  KeylessFixtures other;
  auto m = f.sign_message(payload);
  auto foreign = other.sign_message(payload);
  m.rekor_bundle = foreign.rekor_bundle;
  EXPECT_REASON(verify_tag(m), Reason::bad_tlog, "logs the trusted root does not list");
}

TEST_F(Keyless, AnUnreadableBundleAnnotationSaysSo) {
  auto m = f.sign_message(payload);
  m.rekor_bundle = "{\"SignedEntryTimestamp\": 1}";
  EXPECT_REASON(verify_tag(m), Reason::bad_tlog, "annotation is unreadable");
}

// ---- the certificate

TEST_F(Keyless, AnSctFromAnUnknownLogIsRefused) {
  FakeLog rogue;
  rogue.key = generate_p256();
  rogue.valid = f.ct.valid;
  SignOptions o;
  o.ct_log = &rogue;
  EXPECT_REASON(verify_tag(f.sign_message(payload, o)), Reason::bad_sct, "unknown CT log");
}

TEST_F(Keyless, AnSctOverAnotherPrecertificateIsRefused) {
  SignOptions o;
  o.sct_covers_certificate = false;
  EXPECT_REASON(verify_tag(f.sign_message(payload, o)), Reason::bad_sct, "does not verify over this precertificate");
}

TEST_F(Keyless, AnSctWithAnImpossibleTimestampIsRefused) {
  // fuzz_certificate: crash-28626b77 (a timestamp overflowing system_clock under UBSan).
  SignOptions o;
  o.sct_timestamp_ms = 1690542234999056000ull;
  EXPECT_REASON(verify_tag(f.sign_message(payload, o)), Reason::bad_sct, "impossible timestamp");
}

TEST_F(Keyless, ACertificateWithoutAnSctIsRefused) {
  SignOptions o;
  o.sct = false;
  EXPECT_REASON(verify_tag(f.sign_message(payload, o)), Reason::bad_sct, "no embedded SCT");
}

TEST_F(Keyless, AnAttackerIntermediateInTheChainAnnotationIsNotTrusted) {
  // An intermediate the trusted root's key signed but the trusted root does not list (retired):
  // were the signer's chain believed, this would verify.
  auto [unlisted, unlisted_key] = f.unlisted_intermediate();
  SignOptions o;
  o.issuer_cert = unlisted.get();
  o.issuer_key = unlisted_key.get();
  auto m = f.sign_message(payload, o);
  ASSERT_NE(m.chain_pem.find(cert_pem(unlisted.get())), std::string::npos);
  EXPECT_REASON(verify_tag(m), Reason::bad_chain, "supplied as its chain are not used");
}

TEST_F(Keyless, ACertificateWithoutCodeSigningUsageIsRefused) {
  SignOptions o;
  o.code_signing = false;
  EXPECT_REASON(verify_tag(f.sign_message(payload, o)), Reason::bad_chain, "not for code signing");
}

// ---- the identity

TEST_F(Keyless, AWrongIssuerIsRefused) {
  auto trust = keyless_trust(f, {identity("https://accounts.google.com", release_workflow)});
  EXPECT_REASON(verify_tag(f.sign_message(payload), trust), Reason::wrong_identity, "issuer " + github_issuer);
}

TEST_F(Keyless, ASubjectMatchingOnlyUnanchoredIsRefused) {
  SignOptions o;
  o.san = SignOptions::San::email;
  o.subject = "x@acme.com.evil";
  auto trust = keyless_trust(f, {identity(github_issuer, "", ".*@acme.com")});
  EXPECT_REASON(verify_tag(f.sign_message(payload, o), trust), Reason::wrong_identity, "x@acme.com.evil");
  o.subject = "x@acme.com";
  EXPECT_TRUE(verify_tag(f.sign_message(payload, o), trust).valid());
  // An alternation cannot escape the anchoring either.
  trust = keyless_trust(f, {identity(github_issuer, "", "nobody@acme.com|.*@acme.com")});
  o.subject = "x@acme.com.evil";
  EXPECT_EQ(verify_tag(f.sign_message(payload, o), trust).reason, Reason::wrong_identity);
}

TEST_F(Keyless, AnExactSubjectIsExact) {
  auto trust = keyless_trust(f, {identity(github_issuer, release_workflow + "x")});
  EXPECT_REASON(verify_tag(f.sign_message(payload), trust), Reason::wrong_identity, "matches none of the identities");
}

// ---- what was signed

TEST_F(Keyless, AReplayedSignatureForAnotherDigestIsRefused) {
  auto r = verify_tag(f.sign_message(simplesigning_payload(image_digest_b)));
  EXPECT_REASON(r, Reason::replay, image_digest_b);
  EXPECT_TRUE(r.fingerprint.empty());
}

TEST_F(Keyless, AReplayedBundleStatementForAnotherDigestIsRefused) {
  EXPECT_REASON(verify_bundle(f.sign_dsse(sign_statement(image_digest_b)).bundle()), Reason::replay, image_digest_b);
}

TEST_F(Keyless, AKeylessSignatureOnAKeysOnlyEntryIsReportedAsKeyless) {
  auto key = parse_public_key_der(key_der(generate_p256().get()), "ci.pub");
  ASSERT_TRUE(key.ok());
  auto r = only_result(verify_cosign_tag(sig_tag(f.sign_message(payload)), image_digest_a, std::vector<PublicKey>{*key}));
  EXPECT_REASON(r, Reason::keyless, "configures no keyless identities");
}

TEST_F(Keyless, AMalformedCertificateAnnotationIsMalformed) {
  auto m = f.sign_message(payload);
  m.certificate_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  EXPECT_EQ(verify_tag(m).reason, Reason::malformed);
}

// ---- identities

TEST(KeylessIdentity, ABadRegexpIsRefusedWhenLoaded) {
  auto id = make_keyless_identity("https://issuer", "", "(unclosed");
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message.find("not a valid regular expression"), std::string::npos) << id.error().message;
  EXPECT_FALSE(make_keyless_identity("", "a", "").ok());
  EXPECT_FALSE(make_keyless_identity("https://issuer", "a", "b").ok());
}

TEST(KeylessIdentity, SyntaxOutsideTheSharedPartOfGoAndEcmaScriptIsRefusedByName) {
  for (const auto& [regexp, why] : std::vector<std::pair<std::string, std::string>>{
           {"(?i)repo:acme/.*", "groups other than"},
           {"(?P<org>acme)/.*", "groups other than"},
           {"(?=repo).*", "groups other than"},
           {"(a)\\1", "back-references"},
           {"\\Arepo", "Go-only syntax"},
           {"repo\\z", "Go-only syntax"},
           {"\\pLrepo", "Go-only syntax"},
           {std::string(600, 'a'), "longer than 512"}}) {
    auto id = make_keyless_identity("https://issuer", "", regexp);
    ASSERT_FALSE(id.ok()) << regexp;
    EXPECT_NE(id.error().message.find(why), std::string::npos) << regexp << ": " << id.error().message;
  }
  auto plain = make_keyless_identity("https://issuer", "", R"((?:release|deploy)\.yml@refs/tags/v[0-9]+\.[0-9]+)");
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_TRUE(plain->matches({"release.yml@refs/tags/v1.2", "uri", "https://issuer"}));
  EXPECT_FALSE(plain->matches({"build.yml@refs/tags/v1.2", "uri", "https://issuer"}));
}

TEST(KeylessIdentity, APathologicalExpressionIsMatchedWithoutBacktracking) {
  // (a|a)* backtracks 2^n ways in a depth-first matcher; the breadth-first one answers at once.
  auto id = make_keyless_identity("https://issuer", "", "(a|a)*b");
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_FALSE(id->matches({std::string(1000, 'a'), "email", "https://issuer"}));
  EXPECT_TRUE(id->matches({std::string(1000, 'a') + "b", "email", "https://issuer"}));
  EXPECT_FALSE(id->matches({std::string(1100, 'a') + "b", "email", "https://issuer"})) << "over 1 KiB never matches";
}

TEST(KeylessIdentity, MatchesIssuerExactlyAndSubjectWhole) {
  auto id = make_keyless_identity("https://issuer", "", "^repo:acme/.*$");
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(id->matches({"repo:acme/app", "uri", "https://issuer"}));
  EXPECT_FALSE(id->matches({"repo:acme/app", "uri", "https://issuer/"}));
  EXPECT_FALSE(id->matches({"xrepo:acme/app", "uri", "https://issuer"}));
  EXPECT_FALSE(id->matches({"", "", "https://issuer"}));
}

}  // namespace
