#pragma once
// Fixture access for the signature tests: files signed by openssl at build time.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ocigate/oci/digest.hpp"
#include "ocigate/signature/evaluate.hpp"
#include "ocigate/signature/trust.hpp"
#include "ocigate/signature/verify.hpp"

namespace ocigate::signature::test {

inline std::filesystem::path fixtures() { return OCIGATE_SIGNATURE_FIXTURES; }
inline std::filesystem::path data() { return OCIGATE_SIGNATURE_DATA; }

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}
inline std::string fixture(const std::string& name) { return slurp(fixtures() / name); }

inline std::string image_digest() { return fixture("digest.txt"); }
inline std::string other_digest() { return fixture("other_digest.txt"); }
inline std::int64_t image_size() { return std::stoll(fixture("size.txt")); }

inline PublicKey key(const std::string& name) {
  auto k = parse_public_key(fixture(name), name);
  EXPECT_TRUE(k.ok()) << (k.ok() ? "" : k.error().message);
  return k.ok() ? *k : PublicKey{};
}

// The .sig manifest "cosign-<name>.json" with every payload blob the fixtures wrote.
inline CosignTagSignature cosign_tag(const std::string& name) {
  CosignTagSignature sig;
  sig.manifest = fixture("cosign-" + name + ".json");
  for (const auto& entry : std::filesystem::directory_iterator(fixtures())) {
    std::string file = entry.path().filename().string();
    if (file.rfind("blob-", 0) == 0) sig.blobs["sha256:" + file.substr(5)] = slurp(entry.path());
  }
  return sig;
}

inline Envelope bundle(const std::string& name) {
  return Envelope{"sha256:" + std::string(64, 'b'), std::string(sigstore_bundle_media_type),
                  std::string(sigstore_bundle_media_type), fixture("bundle-" + name + ".json")};
}

inline Envelope notation(const std::string& name) {
  return Envelope{"sha256:" + std::string(64, 'c'), std::string(notation_artifact_type),
                  std::string(notation_jws_media_type), fixture("notation-" + name + ".json")};
}

// A policy parsed from YAML text (the `policy:` section), for load_trust.
inline policy::Policy policy_from(const std::string& yaml) {
  auto p = policy::parse_policy(YAML::Load(yaml)["policy"], "ocigate.yaml");
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return p.ok() ? *p : policy::Policy{};
}

inline TrustStore trust_from(const std::string& yaml) {
  auto store = load_trust(policy_from(yaml), fixtures());
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  return store.ok() ? *store : TrustStore{};
}

// A trust entry for Notation with the fixtures' CA and the release identity.
inline TrustStore notation_trust(const std::string& identity = "x509.subject: CN=release,O=Acme") {
  return trust_from("policy:\n  trust:\n    - match: \"ghcr.io/acme/**\"\n      notation: {trust_store: trust-store.pem, identities: [\"" +
                    identity + "\"]}\n");
}

inline std::chrono::system_clock::time_point now() { return std::chrono::system_clock::now(); }

}  // namespace ocigate::signature::test
