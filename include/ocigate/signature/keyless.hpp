#pragma once
// Keyless (Sigstore) signature verification: a short-lived Fulcio certificate bound to an OIDC
// identity, logged in Rekor. Offline, with OpenSSL and a trusted root (trusted_root.hpp); pure.
//
// verify_keyless checks, in this order (each failure names its step):
//   1. the signature over the signed bytes with the certificate's key (bad_signature);
//   2. the Rekor entries (bad_tlog): for an entry of a log in the trusted root, the SET over the
//      RFC 8785 canonical JSON {body, integratedTime, logID, logIndex} with that log's key, the
//      log key valid at integratedTime, the RFC 6962 inclusion proof (when present) against a
//      checkpoint signed by that log whose root and size match the proof, and the body (kinds
//      hashedrekord 0.0.1, intoto 0.0.2, dsse 0.0.1) naming this signature, this certificate
//      and this payload's digest. The first such entry's integratedTime is the signing time:
//      nothing else is (an unverified integratedTime or an entry of an unknown log is not).
//      Without a verified entry the signature fails unless require_tlog is false and the
//      signature carries no entry at all; the chain is then checked at `now`;
//   3. the certificate chain to a Fulcio CA of the trusted root at the signing time, built from
//      that CA's own intermediates only (the signer's `chain` is never used), the CA's validity
//      window holding the signing time, and a code-signing leaf (bad_chain);
//   4. an embedded SCT signed by a CT log of the trusted root over the precertificate (the leaf's
//      TBSCertificate without the SCT list, with the issuing CA's key hash), its timestamp in
//      that log's window (bad_sct). Skipped only when the trusted root lists no CT log;
//   5. the identity: the SAN (URI, else email, else the Fulcio username OtherName) and the OIDC
//      issuer (extension 1.3.6.1.4.1.57264.1.8, a DER UTF8String, else the deprecated ...1.1,
//      raw bytes) matching one configured identity (wrong_identity).
// What was signed for (the payload's digest, the statement's subject) is checked by the caller
// afterwards (verify.hpp), as for keyed signatures.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"
#include "ocigate/signature/bundle.hpp"
#include "ocigate/signature/trusted_root.hpp"
#include "ocigate/signature/verify.hpp"

namespace ocigate::signature {

// Who signed, read from a certificate.
struct CertificateIdentity {
  std::string subject;       // the SAN
  std::string subject_kind;  // "uri" | "email" | "username" | "" (none)
  std::string issuer;        // the OIDC issuer; "" when the certificate has none
};

struct SubjectPattern;  // a compiled subject_regexp (keyless.cpp)

// One configured identity: the issuer exactly, the subject exactly or by a regular expression
// that must match the whole subject. The syntax is the part of Go's (what cosign and
// policy-controller take) that ECMAScript reads the same way: no flags, named groups,
// look-arounds, back-references, \A \z \p; it is matched with std::regex in linear time, the
// subject at most 1 KiB. ocigate anchors it, so ".*@acme.com" does not match "x@acme.com.evil"
// as it would unanchored in cosign.
struct KeylessIdentity {
  std::string issuer;
  std::string subject;         // exact; or
  std::string subject_regexp;  // as configured
  std::shared_ptr<const SubjectPattern> regexp;  // subject_regexp, compiled
  bool matches(const CertificateIdentity& id) const;
  std::string text() const;  // "issuer <i>, subject <s>" / "issuer <i>, subject_regexp <r>"
};
Result<KeylessIdentity> make_keyless_identity(std::string issuer, std::string subject, std::string subject_regexp);

// A trust entry's keyless configuration, loaded.
struct KeylessTrust {
  std::shared_ptr<const TrustedRoot> root;
  std::string trusted_root_path;
  std::vector<KeylessIdentity> identities;
  bool require_tlog = true;
};

// What a keyless signature brings, gathered from a `.sig`/`.att` layer or a bundle.
struct KeylessClaim {
  enum class Content { message, dsse };
  Content content = Content::message;
  std::string certificate;                  // DER signing certificate
  std::vector<std::string> supplied_chain;  // DER certificates the signer sent along: reported, never trusted
  std::string signed_data;                  // the exact signed bytes: the payload, or the DSSE PAE
  std::vector<std::string> signatures;      // raw candidate signatures over signed_data
  std::string payload;                      // message: the payload bytes; dsse: the DSSE payload
  std::vector<TlogEntry> tlog_entries;
  std::string tlog_error;  // why the signer's log material could not be read ("" when fine)
};

struct KeylessOutcome {
  Reason reason = Reason::malformed;
  std::string detail;            // one line: why it failed, or what verified
  CertificateIdentity identity;  // when the certificate could be read
  std::string fingerprint;       // the signing key's SPKI fingerprint
  std::int64_t log_index = -1;   // global index of the verified Rekor entry
  std::optional<std::chrono::system_clock::time_point> signing_time;  // its verified integratedTime
  std::string ca;                // the Fulcio CA the chain verified to
  bool valid() const { return reason == Reason::valid; }
};

KeylessOutcome verify_keyless(const KeylessClaim& claim, const KeylessTrust& trust,
                              std::chrono::system_clock::time_point now);

// ---- Lower-level steps, exposed for tests and fuzzing.

// The certificate's SAN and OIDC issuer; an error when the DER is not a certificate.
Result<CertificateIdentity> certificate_identity(std::string_view der);

// RFC 6962 hashes: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right).
std::string merkle_leaf_hash(std::string_view data);
std::string merkle_node_hash(std::string_view left, std::string_view right);
// RFC 9162 2.1.3.2: does `proof` lead from the leaf at `index` of a tree of `size` to `root`?
bool verify_inclusion(std::uint64_t index, std::uint64_t size, std::string_view leaf_hash,
                      const std::vector<std::string>& proof, std::string_view root);

// A checkpoint: origin line, tree size, base64 root hash, optional extra lines.
struct Checkpoint {
  std::string origin;
  std::uint64_t size = 0;
  std::string root_hash;  // raw
};
// Parses a signed note and verifies a signature line whose key hint (the first 4 bytes of
// SHA-256 over the log key's DER) is the log's, over the note text with the log's key.
Result<Checkpoint> verify_checkpoint(std::string_view signed_note, const TransparencyLog& log);

// The RFC 8785 canonical JSON the SET signs: {"body":<b64>,"integratedTime":n,"logID":<hex>,"logIndex":n}.
std::string set_payload(const TlogEntry& entry);

// Log-level checks of one entry against the log its log_id names: SET, key window, inclusion
// proof and checkpoint. Errors say which.
Status verify_tlog_entry(const TlogEntry& entry, const TransparencyLog& log);
// The entry's body names this signature, certificate (DER) and payload.
Status match_entry_body(const TlogEntry& entry, const KeylessClaim& claim, std::string_view signature);

// Verifies one embedded SCT of `leaf` issued by `issuer` against the CT logs of `root`; the
// result names the log.
Result<std::string> verify_embedded_sct(X509* leaf, X509* issuer, const TrustedRoot& root);

}  // namespace ocigate::signature
