#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "helpers.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;

SignatureResult only(const std::vector<SignatureResult>& results) {
  EXPECT_EQ(results.size(), 1u);
  return results.empty() ? SignatureResult{} : results[0];
}

SignatureResult verify(const std::string& name, const std::vector<PublicKey>& keys) {
  return only(verify_cosign_tag(cosign_tag(name), image_digest(), keys));
}

}  // namespace

TEST(CosignTag, EachKeyTypeVerifiesItsOwnSignature) {
  struct Case {
    const char* manifest;
    const char* key;
  } cases[] = {{"ec256", "ec256"}, {"ec384", "ec384"}, {"rsa-pkcs1", "rsa"}, {"rsa-pss", "rsa"}, {"ed25519", "ed25519"}};
  for (const auto& c : cases) {
    auto r = verify(c.manifest, {key("untrusted.pub"), key(std::string(c.key) + ".pub")});
    EXPECT_TRUE(r.valid()) << c.manifest << ": " << reason_text(r.reason) << ": " << r.detail;
    EXPECT_EQ(r.fingerprint, fixture(std::string(c.key) + ".fp")) << c.manifest;
    EXPECT_EQ(r.format, Format::cosign_tag);
    EXPECT_NE(r.what.find("layer 0"), std::string::npos) << r.what;
  }
}

TEST(CosignTag, ASignatureByAnotherKeyIsUntrusted) {
  auto r = verify("untrusted", {key("ec256.pub"), key("rsa.pub"), key("ed25519.pub")});
  EXPECT_EQ(r.reason, Reason::untrusted_key) << r.detail;
  EXPECT_NE(r.detail.find("none of the 3 configured key(s)"), std::string::npos) << r.detail;
  EXPECT_TRUE(r.fingerprint.empty());
}

TEST(CosignTag, AValidSignatureForAnotherDigestIsAReplay) {
  auto r = verify("replay", {key("ec256.pub")});
  EXPECT_EQ(r.reason, Reason::replay);
  EXPECT_NE(r.detail.find("signed for " + other_digest()), std::string::npos) << r.detail;
  // The same signature is valid for the image it was made for.
  auto original = only(verify_cosign_tag(cosign_tag("replay"), other_digest(), {key("ec256.pub")}));
  EXPECT_TRUE(original.valid()) << original.detail;
}

TEST(CosignTag, CorruptedSignatureBytesDoNotVerify) {
  auto r = verify("corrupt", {key("ec256.pub")});
  EXPECT_EQ(r.reason, Reason::untrusted_key) << r.detail;
}

TEST(CosignTag, AWrongCriticalTypeFails) {
  auto r = verify("badtype", {key("ec256.pub")});
  EXPECT_EQ(r.reason, Reason::wrong_type);
  EXPECT_NE(r.detail.find("something else"), std::string::npos) << r.detail;
}

TEST(CosignTag, AKeylessSignatureIsNotVerifiableWithConfiguredKeys) {
  auto r = verify("keyless", {key("ec256.pub")});
  EXPECT_EQ(r.reason, Reason::keyless) << r.detail;
  EXPECT_STREQ(reason_text(r.reason), "keyless signature: not verifiable with configured keys");
}

TEST(CosignTag, ACertificateOnlyLayerIsKeyless) {
  auto sig = cosign_tag("ec256");
  auto manifest = nlohmann::json::parse(sig.manifest);
  manifest["layers"][0]["annotations"] = {{"dev.sigstore.cosign/certificate", "-----BEGIN CERTIFICATE-----"}};
  sig.manifest = manifest.dump();
  auto r = only(verify_cosign_tag(sig, image_digest(), {key("ec256.pub")}));
  EXPECT_EQ(r.reason, Reason::keyless);
}

TEST(CosignTag, APayloadNotMatchingItsDigestOrMissingIsMalformed) {
  auto sig = cosign_tag("ec256");
  auto manifest = nlohmann::json::parse(sig.manifest);
  std::string layer = manifest["layers"][0]["digest"];
  sig.blobs[layer] += " ";
  auto r = only(verify_cosign_tag(sig, image_digest(), {key("ec256.pub")}));
  EXPECT_EQ(r.reason, Reason::malformed);
  EXPECT_NE(r.detail.find("does not match its digest"), std::string::npos) << r.detail;
  sig.blobs.erase(layer);
  r = only(verify_cosign_tag(sig, image_digest(), {key("ec256.pub")}));
  EXPECT_EQ(r.reason, Reason::malformed);
  EXPECT_NE(r.detail.find("not available"), std::string::npos) << r.detail;
}

TEST(CosignTag, GarbageManifestsAndAnnotationsAreMalformed) {
  CosignTagSignature garbage{"not json", {}};
  EXPECT_EQ(only(verify_cosign_tag(garbage, image_digest(), {key("ec256.pub")})).reason, Reason::malformed);
  auto sig = cosign_tag("ec256");
  auto manifest = nlohmann::json::parse(sig.manifest);
  manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] = "!!not base64!!";
  sig.manifest = manifest.dump();
  EXPECT_EQ(only(verify_cosign_tag(sig, image_digest(), {key("ec256.pub")})).reason, Reason::malformed);
  manifest["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar";
  sig.manifest = manifest.dump();
  EXPECT_TRUE(verify_cosign_tag(sig, image_digest(), {key("ec256.pub")}).empty()) << "no simplesigning layer: none found";
}

TEST(CosignTag, NoKeysMeansUntrusted) {
  EXPECT_EQ(verify("ec256", {}).reason, Reason::untrusted_key);
}

// ---- a real cosign signature (tests/unit/signature/data/cosign-real)

namespace {

const std::string real_digest = "sha256:d37ada95d47ad12224c205a938129df7a3e52345828b4fa27b03a98825d1e2e7";

CosignTagSignature real(const std::string& signature_file) {
  auto dir = data() / "cosign-real";
  CosignTagSignature sig;
  auto manifest = nlohmann::json::parse(slurp(dir / "signature-manifest.json"));
  manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] = slurp(dir / signature_file);
  sig.manifest = manifest.dump();
  std::string payload = slurp(dir / "payload.json");
  sig.blobs[ocigate::oci::sha256_digest(payload)] = payload;
  return sig;
}

PublicKey real_key(const std::string& name) {
  auto k = parse_public_key(slurp(data() / "cosign-real" / name), name);
  EXPECT_TRUE(k.ok()) << (k.ok() ? "" : k.error().message);
  return k.ok() ? *k : PublicKey{};
}

}  // namespace

TEST(CosignRealVector, ThePublishersSignaturesVerify) {
  auto p256 = only(verify_cosign_tag(real("signature-p256.b64"), real_digest, {real_key("publisher-p256.pub")}));
  EXPECT_TRUE(p256.valid()) << reason_text(p256.reason) << ": " << p256.detail;
  auto p384 = only(verify_cosign_tag(real("signature-p384.b64"), real_digest, {real_key("publisher-p384.pub")}));
  EXPECT_TRUE(p384.valid()) << reason_text(p384.reason) << ": " << p384.detail;
}

TEST(CosignRealVector, TheManifestAsStoredCarriesTheRealAnnotation) {
  CosignTagSignature sig;
  sig.manifest = slurp(data() / "cosign-real" / "signature-manifest.json");
  std::string payload = slurp(data() / "cosign-real" / "payload.json");
  sig.blobs[ocigate::oci::sha256_digest(payload)] = payload;
  EXPECT_TRUE(only(verify_cosign_tag(sig, real_digest, {real_key("publisher-p256.pub")})).valid());
}

TEST(CosignRealVector, FailsForAnotherImageOrAnotherKey) {
  EXPECT_EQ(only(verify_cosign_tag(real("signature-p256.b64"), image_digest(), {real_key("publisher-p256.pub")})).reason,
            Reason::replay);
  EXPECT_EQ(only(verify_cosign_tag(real("signature-p256.b64"), real_digest, {real_key("publisher-p384.pub"), key("ec256.pub")}))
                .reason,
            Reason::untrusted_key);
}
