#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "helpers.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;

SignatureResult verify(const Envelope& envelope, const std::vector<PublicKey>& keys) {
  return verify_sigstore_bundle(envelope, image_digest(), keys);
}

}  // namespace

TEST(DssePae, MatchesTheSpecExample) {
  EXPECT_EQ(dsse_pae("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  EXPECT_EQ(dsse_pae("", ""), "DSSEv1 0  0 ");
}

TEST(SigstoreBundle, AValidBundleVerifiesWithTheConfiguredKey) {
  auto r = verify(bundle("ok"), {key("untrusted.pub"), key("ec256.pub")});
  EXPECT_TRUE(r.valid()) << reason_text(r.reason) << ": " << r.detail;
  EXPECT_EQ(r.fingerprint, fixture("ec256.fp"));
  EXPECT_EQ(r.format, Format::sigstore_bundle);
  EXPECT_NE(r.detail.find("https://sigstore.dev/cosign/sign/v1"), std::string::npos) << r.detail;
}

TEST(SigstoreBundle, ATamperedStatementDoesNotVerify) {
  auto r = verify(bundle("tampered"), {key("ec256.pub")});
  EXPECT_EQ(r.reason, Reason::untrusted_key) << r.detail;
}

TEST(SigstoreBundle, ASignedStatementForAnotherDigestIsAReplay) {
  auto r = verify(bundle("replay"), {key("ec256.pub")});
  EXPECT_EQ(r.reason, Reason::replay) << r.detail;
  EXPECT_NE(r.detail.find(other_digest()), std::string::npos) << r.detail;
}

TEST(SigstoreBundle, AnotherKeyIsUntrustedAndACertificateIsKeyless) {
  EXPECT_EQ(verify(bundle("untrusted"), {key("ec256.pub")}).reason, Reason::untrusted_key);
  EXPECT_EQ(verify(bundle("keyless"), {key("ec256.pub")}).reason, Reason::keyless);
}

TEST(SigstoreBundle, MalformedAndUnsupportedBundles) {
  auto e = bundle("ok");
  e.bytes = "{";
  EXPECT_EQ(verify(e, {key("ec256.pub")}).reason, Reason::malformed);
  auto json = nlohmann::json::parse(fixture("bundle-ok.json"));
  json["dsseEnvelope"]["payload"] = "%%%";
  e.bytes = json.dump();
  EXPECT_EQ(verify(e, {key("ec256.pub")}).reason, Reason::malformed);
  json = nlohmann::json::parse(fixture("bundle-ok.json"));
  json["mediaType"] = "application/json";
  e.bytes = json.dump();
  EXPECT_EQ(verify(e, {key("ec256.pub")}).reason, Reason::malformed);
  json = nlohmann::json::parse(fixture("bundle-ok.json"));
  json.erase("dsseEnvelope");
  json["messageSignature"] = {{"signature", "AAAA"}};
  e.bytes = json.dump();
  EXPECT_EQ(verify(e, {key("ec256.pub")}).reason, Reason::unsupported);
}

TEST(SigstoreBundle, AChangedPayloadTypeBreaksThePaeSignature) {
  auto json = nlohmann::json::parse(fixture("bundle-ok.json"));
  json["dsseEnvelope"]["payloadType"] = "application/json";
  auto e = bundle("ok");
  e.bytes = json.dump();
  EXPECT_EQ(verify(e, {key("ec256.pub")}).reason, Reason::untrusted_key);
}
