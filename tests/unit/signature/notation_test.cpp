#include <gtest/gtest.h>

#include "helpers.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;

SignatureResult verify(const std::string& name, const TrustStore& trust = notation_trust(),
                       std::int64_t size = image_size()) {
  EXPECT_EQ(trust.entries.size(), 1u);
  if (trust.entries.empty()) return {};
  return verify_notation(notation(name), image_digest(), size, trust.entries[0], now());
}

}  // namespace

TEST(EcdsaRawToDer, EncodesIntegersMinimallyAndPositive) {
  std::string raw(64, '\0');
  raw[0] = '\x80';   // r with the high bit set needs a 0x00 pad
  raw[63] = '\x01';  // s = 1
  std::string der = ecdsa_raw_to_der(raw);
  ASSERT_FALSE(der.empty());
  EXPECT_EQ(der[0], '\x30');
  EXPECT_EQ(static_cast<unsigned char>(der[1]), der.size() - 2);
  EXPECT_EQ(der.substr(2, 3), std::string("\x02\x21\x00", 3));
  EXPECT_EQ(der.substr(der.size() - 3), std::string("\x02\x01\x01", 3));
  EXPECT_TRUE(ecdsa_raw_to_der("").empty());
  EXPECT_TRUE(ecdsa_raw_to_der("abc").empty());
  EXPECT_FALSE(ecdsa_raw_to_der(std::string(132, '\x7f')).empty());  // P-521
}

TEST(NotationJws, PS256AndES256EnvelopesVerify) {
  for (const char* name : {"ps256", "es256"}) {
    auto r = verify(name);
    EXPECT_TRUE(r.valid()) << name << ": " << reason_text(r.reason) << ": " << r.detail;
    EXPECT_EQ(r.fingerprint.rfind("sha256:", 0), 0u);
    EXPECT_NE(r.key.find("CN=release"), std::string::npos) << r.key;
    EXPECT_EQ(r.format, Format::notation);
  }
}

TEST(NotationJws, ATamperedPayloadDoesNotVerify) {
  auto r = verify("tampered");
  EXPECT_EQ(r.reason, Reason::bad_signature) << r.detail;
}

TEST(NotationJws, AnotherDigestOrSizeIsAReplay) {
  auto r = verify("replay");
  EXPECT_EQ(r.reason, Reason::replay) << r.detail;
  EXPECT_NE(r.detail.find(other_digest()), std::string::npos);
  EXPECT_EQ(verify("wrong-size").reason, Reason::replay);
  EXPECT_TRUE(verify("wrong-size", notation_trust(), -1).valid()) << "a negative size skips the comparison";
}

TEST(NotationJws, ASignerOutsideTheIdentitiesIsRefused) {
  auto r = verify("wrong-identity");
  EXPECT_EQ(r.reason, Reason::wrong_identity) << r.detail;
  EXPECT_NE(r.detail.find("CN=dev"), std::string::npos) << r.detail;
  EXPECT_TRUE(verify("wrong-identity", notation_trust("*")).valid());
  EXPECT_TRUE(verify("wrong-identity", notation_trust("x509.subject: O=Acme, CN=dev")).valid());
  EXPECT_EQ(verify("ps256", notation_trust("x509.subject: CN=release")).reason, Reason::wrong_identity)
      << "the whole subject must match, not a subset";
}

TEST(NotationJws, AChainToAnotherCaIsRefused) {
  auto r = verify("untrusted-chain");
  EXPECT_EQ(r.reason, Reason::bad_chain) << r.detail;
  EXPECT_NE(r.detail.find("trust-store.pem"), std::string::npos) << r.detail;
}

TEST(NotationJws, ACertificateNotForCodeSigningIsRefused) {
  auto r = verify("tls-cert");
  EXPECT_EQ(r.reason, Reason::bad_chain) << r.detail;
  EXPECT_NE(r.detail.find("code signing"), std::string::npos) << r.detail;
}

TEST(NotationJws, AnExpiredSignatureIsRefused) {
  EXPECT_EQ(verify("expired").reason, Reason::expired);
}

TEST(NotationJws, CoseAndUnknownEnvelopesAreUnsupported) {
  auto trust = notation_trust();
  auto e = notation("ps256");
  e.media_type = std::string(notation_cose_media_type);
  auto r = verify_notation(e, image_digest(), image_size(), trust.entries[0], now());
  EXPECT_EQ(r.reason, Reason::unsupported);
  EXPECT_NE(r.detail.find("COSE"), std::string::npos);
  e = notation("ps256");
  e.bytes = "{\"payload\":1}";
  EXPECT_EQ(verify_notation(e, image_digest(), image_size(), trust.entries[0], now()).reason, Reason::malformed);
}
