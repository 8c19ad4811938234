#pragma once
// The loaded trust policy: policy.trust entries with their key and certificate files read and
// parsed. Built by load_trust at startup and on every reload (the only function here that reads
// files); a file that cannot be read or parsed refuses the policy, naming the file and the YAML
// line. Immutable once built and shared by every request: OpenSSL key and store objects are only
// read after loading.

#include <openssl/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ocigate/common/result.hpp"
#include "ocigate/policy/policy.hpp"

namespace ocigate::signature {

// ECDSA P-256/P-384/P-521, RSA (PKCS#1 v1.5 or PSS, told by the signature), Ed25519.
enum class KeyType { ecdsa_p256, ecdsa_p384, ecdsa_p521, rsa, ed25519 };
const char* key_type_text(KeyType type);  // "ecdsa-p256", ..., "rsa", "ed25519"

struct PublicKey {
  KeyType type = KeyType::ecdsa_p256;
  std::string fingerprint;  // "sha256:<hex>" of the DER SubjectPublicKeyInfo
  std::string path;         // the file it came from ("" for keys not read from a file)
  std::shared_ptr<EVP_PKEY> pkey;
};

// "x509.subject: CN=release,O=Acme" as an order-insensitive set of (attribute, value) pairs;
// attributes upper-cased ("cn" == "CN"), values exact. any: the identity "*".
struct Identity {
  std::string text;
  bool any = false;
  std::vector<std::pair<std::string, std::string>> rdns;  // sorted
};

struct KeylessTrust;
struct ProvenanceRule;

struct LoadedTrustEntry {
  std::string match;  // glob over "<upstream>/<repo>"
  std::string where;  // "<file>:<line>: policy.trust[i]"
  bool cosign = false;
  std::vector<PublicKey> cosign_keys;
  std::shared_ptr<const KeylessTrust> cosign_keyless;  // null unless cosign.keyless is configured
  std::shared_ptr<const ProvenanceRule> provenance;    // null unless provenance is configured
  bool notation = false;
  std::string notation_store_path;
  std::shared_ptr<X509_STORE> notation_store;   // the trust store's CA certificates
  std::vector<std::string> notation_ca_subjects;  // for messages
  std::vector<Identity> notation_identities;
};

struct TrustStore {
  std::vector<LoadedTrustEntry> entries;
  // "sha256:<hex>" over the entries and the loaded keys' and certificates' fingerprints: changes
  // when a key file's contents change even if the policy text (and so policy.version) does not.
  // Mix it into verdict cache keys.
  std::string fingerprint;

  // Entries whose glob matches "<upstream>/<repo>", in configured order.
  std::vector<const LoadedTrustEntry*> matching(std::string_view image) const;
};

// Reads and parses every file policy.trust names (keys, Notation trust stores, trusted_root.json).
// Relative paths are resolved against base_dir (the config file's directory). Errors
// (Errc::config_invalid) name the file and where it was configured:
// "<config>:<line>: policy.trust[0].cosign.keys[1]: keys/ci.pub: <why>".
Result<TrustStore> load_trust(const policy::Policy& policy, const std::filesystem::path& base_dir);

// A PEM public key (SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----"; RSA also as
// "BEGIN RSA PUBLIC KEY"). Refuses other key types and curves, and RSA below 2048 bits.
Result<PublicKey> parse_public_key(std::string_view pem, std::string_view name);

// A DER SubjectPublicKeyInfo (trusted_root.json's log keys), with the same checks.
Result<PublicKey> parse_public_key_der(std::string_view der, std::string_view name);

// "x509.subject: CN=a,O=b" or "*".
Result<Identity> parse_identity(std::string_view text);

}  // namespace ocigate::signature
