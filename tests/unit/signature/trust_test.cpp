#include <gtest/gtest.h>

#include "helpers.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;
using ocigate::Errc;

ocigate::Result<TrustStore> load(const std::string& yaml, const std::filesystem::path& base = fixtures()) {
  return load_trust(policy_from(yaml), base);
}

std::string cosign_policy(const std::string& keys) {
  return "policy:\n  trust:\n    - match: \"ghcr.io/acme/**\"\n      cosign: {keys: [" + keys + "]}\n";
}

void expect_refused(const std::string& yaml, std::initializer_list<std::string> fragments) {
  auto store = load(yaml);
  ASSERT_FALSE(store.ok()) << yaml;
  EXPECT_EQ(store.error().code, Errc::config_invalid);
  for (const auto& f : fragments) {
    EXPECT_NE(store.error().message.find(f), std::string::npos) << "'" << f << "' not in: " << store.error().message;
  }
}

}  // namespace

TEST(ParsePublicKey, ReadsEachSupportedKeyTypeWithOpensslsFingerprint) {
  struct Case {
    const char* name;
    KeyType type;
  } cases[] = {{"ec256", KeyType::ecdsa_p256}, {"ec384", KeyType::ecdsa_p384}, {"rsa", KeyType::rsa},
               {"ed25519", KeyType::ed25519}};
  for (const auto& c : cases) {
    auto k = parse_public_key(fixture(std::string(c.name) + ".pub"), c.name);
    ASSERT_TRUE(k.ok()) << c.name << ": " << k.error().message;
    EXPECT_EQ(k->type, c.type) << c.name;
    EXPECT_EQ(k->fingerprint, fixture(std::string(c.name) + ".fp")) << c.name;
    EXPECT_TRUE(k->pkey);
  }
}

TEST(ParsePublicKey, ReadsAPkcs1RsaPublicKeyAsTheSameKey) {
  auto pkcs1 = parse_public_key(fixture("rsa_pkcs1.pub"), "rsa_pkcs1.pub");
  ASSERT_TRUE(pkcs1.ok()) << pkcs1.error().message;
  EXPECT_EQ(pkcs1->fingerprint, fixture("rsa.fp"));
}

TEST(ParsePublicKey, RefusesGarbagePrivateWeakAndUnsupportedKeysNamingTheFile) {
  for (const char* name : {"garbage.pub", "ec256.key", "weak.pub", "x25519.pub"}) {
    auto k = parse_public_key(fixture(name), name);
    ASSERT_FALSE(k.ok()) << name;
    EXPECT_EQ(k.error().message.rfind(name, 0), 0u) << k.error().message;
  }
  EXPECT_NE(parse_public_key(fixture("ec256.key"), "k").error().message.find("private key"), std::string::npos);
  EXPECT_NE(parse_public_key(fixture("weak.pub"), "k").error().message.find("1024 bits"), std::string::npos);
  EXPECT_FALSE(parse_public_key("", "empty").ok());
  EXPECT_FALSE(parse_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "t").ok());
}

TEST(LoadTrust, ResolvesRelativeKeyPathsAgainstTheConfigDirectory) {
  auto store = load(cosign_policy("ec256.pub, " + (fixtures() / "ed25519.pub").string()));
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_EQ(store->entries.size(), 1u);
  const auto& entry = store->entries[0];
  EXPECT_EQ(entry.match, "ghcr.io/acme/**");
  ASSERT_EQ(entry.cosign_keys.size(), 2u);
  EXPECT_EQ(entry.cosign_keys[0].path, (fixtures() / "ec256.pub").string());
  EXPECT_EQ(entry.cosign_keys[0].fingerprint, fixture("ec256.fp"));
  EXPECT_EQ(entry.cosign_keys[1].type, KeyType::ed25519);
  EXPECT_EQ(store->fingerprint.rfind("sha256:", 0), 0u);
}

TEST(LoadTrust, RefusesAnUnreadableKeyNamingTheFileAndTheLine) {
  expect_refused(cosign_policy("ec256.pub, missing.pub"),
                 {"ocigate.yaml:4:", "policy.trust[0].cosign.keys[1]", "missing.pub", "cannot be read"});
  expect_refused(cosign_policy("garbage.pub"), {"ocigate.yaml:4:", "policy.trust[0].cosign.keys[0]", "garbage.pub",
                                                "not a PEM public key"});
  expect_refused(cosign_policy("."), {"is a directory"});
}

TEST(LoadTrust, KeysFromAnotherDirectoryAreNotFound) {
  auto store = load(cosign_policy("ec256.pub"), "/nonexistent-dir");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("/nonexistent-dir/ec256.pub"), std::string::npos) << store.error().message;
}

TEST(LoadTrust, ReadsANotationTrustStoreAndIdentities) {
  auto store = notation_trust();
  ASSERT_EQ(store.entries.size(), 1u);
  const auto& entry = store.entries[0];
  EXPECT_TRUE(entry.notation);
  EXPECT_TRUE(entry.notation_store);
  ASSERT_EQ(entry.notation_ca_subjects.size(), 1u);
  EXPECT_NE(entry.notation_ca_subjects[0].find("Acme Root CA"), std::string::npos);
  ASSERT_EQ(entry.notation_identities.size(), 1u);
  EXPECT_EQ(entry.notation_identities[0].rdns.size(), 2u);
}

TEST(LoadTrust, RefusesATrustStoreWithoutCertificates) {
  expect_refused("policy:\n  trust:\n    - match: \"x/**\"\n      notation: {trust_store: ec256.pub, identities: [\"*\"]}\n",
                 {"ocigate.yaml:4:", "policy.trust[0].notation.trust_store", "ec256.pub", "no PEM certificate"});
}

TEST(LoadTrust, TheFingerprintFollowsKeyContentsNotOnlyPaths) {
  auto dir = std::filesystem::temp_directory_path() / ("ocigate-sig-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(fixtures() / "ec256.pub", dir / "k.pub", std::filesystem::copy_options::overwrite_existing);
  auto a = load(cosign_policy("k.pub"), dir);
  std::filesystem::copy_file(fixtures() / "ec384.pub", dir / "k.pub", std::filesystem::copy_options::overwrite_existing);
  auto b = load(cosign_policy("k.pub"), dir);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->fingerprint, b->fingerprint);
}

TEST(ParseIdentity, IsAnOrderInsensitiveSetOfAttributes) {
  auto a = parse_identity("x509.subject: CN=release,O=Acme");
  auto b = parse_identity("x509.subject: o=Acme, CN=release");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->rdns, b->rdns);
  EXPECT_TRUE(parse_identity("*")->any);
  auto escaped = parse_identity("x509.subject: CN=a\\,b,O=Acme");
  ASSERT_TRUE(escaped.ok());
  EXPECT_EQ(escaped->rdns[0], (std::pair<std::string, std::string>{"CN", "a,b"}));
  EXPECT_FALSE(parse_identity("x509.subject: CN=a,,O=b").ok());
  EXPECT_FALSE(parse_identity("subject: CN=a").ok());
}

TEST(TrustStoreMatching, UsesThePolicyGlobs) {
  auto store = trust_from("policy:\n  trust:\n    - match: \"ghcr.io/acme/**\"\n      cosign: {keys: [ec256.pub]}\n"
                          "    - match: \"ghcr.io/acme/app\"\n      cosign: {keys: [rsa.pub]}\n");
  EXPECT_EQ(store.matching("ghcr.io/acme/app").size(), 2u);
  EXPECT_EQ(store.matching("ghcr.io/acme/team/lib").size(), 1u);
  EXPECT_TRUE(store.matching("docker.io/library/alpine").empty());
}
