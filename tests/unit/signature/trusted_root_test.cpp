// trusted_root.json: Sigstore's public-good root, a generated one, and refusals.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "keyless_helpers.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;
using nlohmann::json;

std::string refused(const std::string& text) {
  auto root = parse_trusted_root(text);
  EXPECT_FALSE(root.ok()) << text;
  return root.ok() ? std::string() : root.error().message;
}

}  // namespace

TEST(TrustedRoot, ReadsSigstorePublicGood) {
  auto root = parse_trusted_root(slurp(data() / "sigstore-go" / "public-good.json"));
  ASSERT_TRUE(root.ok()) << root.error().message;
  ASSERT_EQ(root->certificate_authorities.size(), 2u);
  EXPECT_EQ(root->certificate_authorities[1].chain.size(), 2u);
  EXPECT_NE(root->certificate_authorities[1].name.find("https://fulcio.sigstore.dev"), std::string::npos);
  EXPECT_TRUE(root->certificate_authorities[0].valid_for.end.has_value());
  EXPECT_FALSE(root->certificate_authorities[1].valid_for.end.has_value());
  ASSERT_EQ(root->tlogs.size(), 1u);
  EXPECT_EQ(root->tlogs[0].base_url, "https://rekor.sigstore.dev");
  EXPECT_EQ(root->tlogs[0].key.type, KeyType::ecdsa_p256);
  // Rekor's log id is the SHA-256 of its key.
  EXPECT_EQ(root->tlogs[0].key_id, sha256_bytes(key_der(root->tlogs[0].key.pkey.get())));
  EXPECT_NE(root->tlog(root->tlogs[0].key_id), nullptr);
  EXPECT_EQ(root->ctlogs.size(), 2u);
  EXPECT_EQ(root->timestamp_authorities, 1u);
  EXPECT_EQ(root->fingerprint.rfind("sha256:", 0), 0u);
}

TEST(TrustedRoot, ReadsAGeneratedRootAndIgnoresUnknownFields) {
  KeylessFixtures f;
  auto root = parse_trusted_root(f.trusted_root_json());
  ASSERT_TRUE(root.ok()) << root.error().message;
  EXPECT_EQ(root->tlogs[0].key_id, f.rekor.log_id());
  EXPECT_EQ(root->ctlogs[0].key_id, f.ct.log_id());
  EXPECT_EQ(root->timestamp_authorities, 1u) << "a TSA entry of another shape is counted, not refused";
}

TEST(TrustedRoot, RefusesMalformedEntriesNamingTheField) {
  KeylessFixtures f;
  json good = json::parse(f.trusted_root_json());
  EXPECT_NE(refused("{").find("not JSON"), std::string::npos);
  json j = good;
  j["tlogs"][0]["publicKey"]["validFor"].erase("start");
  EXPECT_NE(refused(j.dump()).find("tlogs[0].publicKey.validFor.start: missing"), std::string::npos);
  j = good;
  j["certificateAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"] = "AAAA";
  EXPECT_NE(refused(j.dump()).find("certificateAuthorities[0].certChain.certificates[0].rawBytes: is not a DER certificate"), std::string::npos);
  j = good;
  j["tlogs"][0]["logId"]["keyId"] = "%%";
  EXPECT_NE(refused(j.dump()).find("tlogs[0].logId.keyId: is not base64"), std::string::npos);
  j = good;
  j["tlogs"] = json::array();
  EXPECT_NE(refused(j.dump()).find("no transparency log"), std::string::npos);
  j = good;
  j.erase("certificateAuthorities");
  EXPECT_NE(refused(j.dump()).find("no certificate authority"), std::string::npos);
  j = good;
  j["mediaType"] = "application/json";
  EXPECT_NE(refused(j.dump()).find("not a Sigstore trusted root"), std::string::npos);
  j = good;
  j["ctlogs"][0]["publicKey"]["validFor"]["end"] = "2000-01-01T00:00:00Z";
  EXPECT_NE(refused(j.dump()).find("ends before it starts"), std::string::npos);
  j = good;
  j["tlogs"][0]["publicKey"]["validFor"]["start"] = "yesterday";
  EXPECT_NE(refused(j.dump()).find("is not an RFC 3339 time"), std::string::npos);
  j = good;
  j["ctlogs"] = "x";
  EXPECT_NE(refused(j.dump()).find("ctlogs: must be a list"), std::string::npos);
}
