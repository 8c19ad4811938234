#pragma once
// A Sigstore stand-in for tests, built with OpenSSL: a root and an intermediate CA playing
// Fulcio, a P-256 key playing a CT log (real SCTs over the precertificate TBS), a P-256 key
// playing Rekor (SETs, an N-leaf RFC 6962 Merkle tree with inclusion proofs, signed
// checkpoints), and the trusted_root.json naming them. Deliberately written apart from the
// verifier: the TBS is cut from the signed certificate's DER, the SCT list and the log bodies
// are encoded by hand, the SET payload is spelled out.
//
// Used by the unit tests and by keyless_fixture_tool (which the integration tests run to sign
// images in a loopback registry).

#include <openssl/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ocigate/signature/bundle.hpp"

namespace ocigate::signature::test {

using Clock = std::chrono::system_clock;
using Pkey = std::shared_ptr<EVP_PKEY>;
using Cert = std::shared_ptr<X509>;

Pkey generate_p256();
std::string to_base64(std::string_view bytes);
std::string to_hex(std::string_view bytes);
std::string cert_der(X509* cert);
std::string cert_pem(X509* cert);
std::string key_der(EVP_PKEY* key);  // SubjectPublicKeyInfo
std::string sha256_bytes(std::string_view data);
std::string sha256_hex(std::string_view data);
std::string sign_sha256(EVP_PKEY* key, std::string_view data);  // DER ECDSA

// RFC 6962 Merkle tree over raw leaves.
std::string tree_root(const std::vector<std::string>& leaves, std::size_t begin, std::size_t end);
std::vector<std::string> tree_path(const std::vector<std::string>& leaves, std::size_t index, std::size_t begin, std::size_t end);

struct Window {
  Clock::time_point start;
  std::optional<Clock::time_point> end;
};

// A transparency log: a key, its id, and (for Rekor) the leaves logged so far.
struct FakeLog {
  std::string name = "rekor.test";  // checkpoint origin host and signer name
  Pkey key;
  Window valid;
  std::vector<std::string> leaves;  // entry bodies, in log order
  std::int64_t global_offset = 1000;  // global index = shard index + offset (Rekor shards)
  std::string log_id() const;  // raw SHA-256 of the DER key
};

enum class EntryKind { hashedrekord, intoto, dsse };

struct SignOptions {
  std::string subject = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
  enum class San { uri, email, username } san = San::uri;
  std::string issuer = "https://token.actions.githubusercontent.com";
  enum class IssuerExtension { v2, v1, both } issuer_extension = IssuerExtension::v2;
  std::optional<Clock::time_point> when;           // integratedTime; default: the fixtures' now
  std::chrono::seconds not_before_offset{-60};     // the certificate starts this long from `when`
  std::chrono::seconds validity{600};              // Fulcio's 10 minutes
  bool code_signing = true;
  bool sct = true;
  bool sct_covers_certificate = true;              // false: the SCT signs another precertificate
  std::optional<std::uint64_t> sct_timestamp_ms;   // default: 1.5 s after the certificate starts
  const FakeLog* ct_log = nullptr;                 // default: the fixtures' CT log
  X509* issuer_cert = nullptr;                     // default: the intermediate
  EVP_PKEY* issuer_key = nullptr;
  Pkey leaf_key;                                   // default: a new key per certificate
  bool tlog = true;
  bool inclusion_proof = true;
  std::size_t trailing_leaves = 3;                 // leaves logged after this entry (the proof's tree)
  EntryKind kind = EntryKind::hashedrekord;        // for DSSE: intoto or dsse
};

// A keyless signature over message bytes: what a cosign `.sig` layer carries.
struct SignedMessage {
  std::string payload;
  std::string signature;        // raw DER ECDSA
  std::string certificate_der;
  std::string certificate_pem;
  std::string chain_pem;        // intermediate, root (what cosign puts in the chain annotation)
  std::optional<TlogEntry> entry;
  std::string rekor_bundle;     // the dev.sigstore.cosign/bundle annotation ("" without a tlog entry)
  std::map<std::string, std::string> annotations() const;  // signature, certificate, chain, bundle
};

// A keyless DSSE signature over an in-toto statement.
struct SignedDsse {
  std::string statement;
  std::string envelope;         // DSSE envelope JSON (a `.att` layer)
  std::string signature;
  std::string certificate_der;
  std::string certificate_pem;
  std::string chain_pem;
  std::optional<TlogEntry> entry;
  std::string rekor_bundle;
  std::map<std::string, std::string> annotations() const;  // certificate, chain, bundle (signature "")
  std::string bundle(int minor = 3) const;  // a sigstore bundle v0.3 (or v0.1 with minor = 1)
};

class KeylessFixtures {
 public:
  explicit KeylessFixtures(Clock::time_point now = Clock::now());

  Clock::time_point now;
  Pkey root_key, intermediate_key;
  Cert root, intermediate;
  FakeLog rekor, ct;
  Window ca_valid;

  std::string trusted_root_json() const;

  SignedMessage sign_message(const std::string& payload, const SignOptions& options = {});
  SignedDsse sign_dsse(const std::string& statement, const SignOptions& options = {});

  // A certificate authority the trusted root does not list, signed by the trusted root's key
  // (a retired intermediate): an attacker's way in if supplied chains were trusted.
  std::pair<Cert, Pkey> unlisted_intermediate() const;

  // An SCT-less leaf and its key, exposed for certificate tests.
  struct Leaf {
    Cert cert;
    Pkey key;
  };
  Leaf issue_leaf(const SignOptions& options, Clock::time_point when);

  // Appends `body` to the Rekor log and returns the entry with its SET, and the inclusion proof
  // and checkpoint when asked.
  TlogEntry log_entry(const std::string& body, Clock::time_point when, const SignOptions& options);
  // Signs the entry's SET again with the Rekor key, after a test changed what it covers.
  void sign_set(TlogEntry& entry) const;
};

// A `.sig` / `.att` manifest with one layer per item (media type, payload blob, annotations) and
// its blobs, as CosignTagSignature wants them: {manifest JSON, blobs}.
struct LayerSpec {
  std::string media_type;
  std::string blob;
  std::map<std::string, std::string> annotations;
};
std::pair<std::string, std::map<std::string, std::string>> cosign_manifest(const std::vector<LayerSpec>& layers);

// The cosign simplesigning payload for a digest, and an in-toto statement with SLSA provenance.
std::string simplesigning_payload(const std::string& digest, const std::string& reference = "ghcr.io/acme/app");
std::string provenance_statement(const std::string& digest, const std::string& builder_id, const std::string& repository,
                                 bool v1 = true);

}  // namespace ocigate::signature::test
