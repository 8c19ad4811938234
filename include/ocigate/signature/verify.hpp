#pragma once
// Verifying one signature artifact against trusted keys or certificates, tied to the digest
// being pulled. Pure: bytes in, result out; the caller fetched the bytes (through the cache) and
// checked blob digests. Nothing in a signature is believed before its signature verifies: a
// payload's digest and type are looked at only after that.
//
// Formats:
//   cosign tag      manifest at tag sha256-<hex>.sig; each simplesigning layer's payload is
//                   signed (annotation dev.cosignproject.cosign/signature, base64 DER ECDSA /
//                   RSA PKCS#1 v1.5 or PSS / Ed25519 over the exact payload bytes; SHA-256);
//                   payload critical.type "cosign container image signature" and
//                   critical.image.docker-manifest-digest == the digest.
//   sigstore bundle application/vnd.dev.sigstore.bundle.v0.3+json (v0.1/v0.2 too): a DSSE
//                   envelope over an in-toto statement whose subject digest is the digest; the
//                   signature covers PAE "DSSEv1 <len> <type> <len> <body>".
//   notation JWS    application/jose+json: protected header alg PS256/384/512 or ES256/384/512
//                   with every crit field understood; x5chain verifies to the trust store; the
//                   leaf subject matches an identity; payload targetArtifact digest and size.
//   notation COSE   application/cose: reported as not supported.
//   keyless         a cosign tag layer or a bundle signed with a Fulcio certificate and logged
//                   in Rekor is verified by keyless.hpp when the entry configures `keyless:`;
//                   its payload is then checked exactly as a keyed one.
//   cosign .att     manifest at tag sha256-<hex>.att; each application/vnd.dsse.envelope.v1+json
//                   layer is a DSSE envelope over an in-toto statement (attestations, for the
//                   provenance check), signed by a key or keyless (annotations as on .sig).

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/signature/trust.hpp"

namespace ocigate::signature {

inline constexpr std::string_view cosign_layer_media_type = "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr std::string_view cosign_signature_annotation = "dev.cosignproject.cosign/signature";
inline constexpr std::string_view cosign_certificate_annotation = "dev.sigstore.cosign/certificate";
inline constexpr std::string_view cosign_bundle_annotation = "dev.sigstore.cosign/bundle";
inline constexpr std::string_view cosign_payload_type = "cosign container image signature";
inline constexpr std::string_view sigstore_bundle_media_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
inline constexpr std::string_view notation_artifact_type = "application/vnd.cncf.notary.signature";
inline constexpr std::string_view notation_jws_media_type = "application/jose+json";
inline constexpr std::string_view notation_cose_media_type = "application/cose";

enum class Format { cosign_tag, sigstore_bundle, notation, cosign_attestation };
const char* format_text(Format format);  // "cosign" | "sigstore-bundle" | "notation" | "cosign-attestation"

// Why a signature did not verify, most specific first. A signature that verified is `valid`.
enum class Reason {
  valid,
  untrusted_key,        // signature verifies with none of the configured keys (or is corrupt)
  replay,               // validly signed, but for another digest
  wrong_type,           // validly signed, but critical.type / payloadType is not an image signature
  malformed,            // envelope, payload, base64 or JSON unreadable
  bad_signature,        // Notation, keyless: the signature does not verify with its own certificate
  bad_chain,            // Notation, keyless: the certificate chain does not verify to the trust store / a Fulcio CA
  wrong_identity,       // Notation, keyless: the signer's subject (and issuer) matches no configured identity
  expired,              // Notation: io.cncf.notary.expiry is in the past
  keyless,              // carries only a Fulcio certificate / Rekor bundle, no configured key verifies it
  unsupported,          // e.g. Notation COSE, an unknown alg or crit field
  bad_tlog,             // keyless: no Rekor entry verifies for this signature
  bad_sct,              // keyless: no embedded SCT verifies with a CT log of the trusted root
};
const char* reason_text(Reason reason);  // short phrase, e.g. "payload for another digest (replay)"

struct SignatureResult {
  Format format = Format::cosign_tag;
  Reason reason = Reason::malformed;
  bool valid() const { return reason == Reason::valid; }
  std::string what;         // which signature: "sha256-<hex>.sig layer 0 (sha256:...)", "bundle sha256:..."
  std::string detail;       // the exact reason, one line
  std::string fingerprint;  // when valid: the key's (or signing certificate's) SPKI fingerprint
  std::string key;          // when valid: key file path, or the signer certificate subject
  // Keyless signatures (when the certificate could be read; log index and time when verified).
  std::string identity, issuer;
  std::int64_t log_index = -1;
  std::optional<std::chrono::system_clock::time_point> signing_time;
  // In-toto statements (bundles, .att layers), once the signature verified.
  std::string predicate_type;
  std::string statement;  // the signed statement JSON, only when valid
};

struct KeylessTrust;

// Who may sign for a trust entry's cosign: configured keys and/or keyless identities. now is
// the time a certificate is checked at when the signature has no Rekor entry (require_tlog off).
struct Signers {
  std::vector<PublicKey> keys;
  const KeylessTrust* keyless = nullptr;
  std::chrono::system_clock::time_point now{};
};

// A cosign tag signature: the manifest found at tag `sha256-<hex>.sig` and its layer blobs by
// digest (blobs that could not be fetched are simply absent).
struct CosignTagSignature {
  std::string manifest;
  std::map<std::string, std::string> blobs;  // "sha256:<hex>" -> bytes
};

// One signature envelope found through the referrers API (or its tag fallback): the artifact
// manifest's digest (for messages), its artifactType, and the envelope layer's media type and
// bytes (the sigstore bundle JSON or the Notation JWS JSON).
struct Envelope {
  std::string artifact_digest;
  std::string artifact_type;
  std::string media_type;
  std::string bytes;
};

// One result per simplesigning layer (none when the manifest has none: the caller sees "none
// found"). A layer whose blob is missing or whose bytes do not match its digest is malformed.
std::vector<SignatureResult> verify_cosign_tag(const CosignTagSignature& signature, std::string_view digest,
                                               const Signers& signers);
std::vector<SignatureResult> verify_cosign_tag(const CosignTagSignature& signature, std::string_view digest,
                                               const std::vector<PublicKey>& keys);

// The statement's subject must name the digest ("sha256:<hex>"; any algorithm the statement
// lists, e.g. "sha512:<hex>" for a package).
SignatureResult verify_sigstore_bundle(const Envelope& envelope, std::string_view digest, const Signers& signers);
SignatureResult verify_sigstore_bundle(const Envelope& envelope, std::string_view digest,
                                       const std::vector<PublicKey>& keys);

// One result per DSSE layer of a `.att` manifest (blobs as for verify_cosign_tag); a valid one
// carries its statement and predicate type.
std::vector<SignatureResult> verify_cosign_attestations(const CosignTagSignature& attestations, std::string_view digest,
                                                        const Signers& signers);

// size: the manifest's size in bytes (targetArtifact.size); negative skips the size comparison.
SignatureResult verify_notation(const Envelope& envelope, std::string_view digest, std::int64_t size,
                                const LoadedTrustEntry& entry, std::chrono::system_clock::time_point now);

// Lower-level pieces, exposed for tests.
// Verifies `signature` over `data` with `key`: SHA-256 for ECDSA and RSA (PKCS#1 v1.5, then PSS
// with salt length = digest length or auto), pure Ed25519 over the raw data.
bool verify_with_key(const PublicKey& key, std::string_view data, std::string_view signature);
// DSSE pre-authentication encoding.
std::string dsse_pae(std::string_view payload_type, std::string_view payload);
// JWS ES* raw r||s (each half the size) to a DER ECDSA-Sig-Value; "" when malformed.
std::string ecdsa_raw_to_der(std::string_view raw);
// Standard (with or without padding) or URL-safe base64; nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view text, bool url_safe);

}  // namespace ocigate::signature
