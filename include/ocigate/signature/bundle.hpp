#pragma once
// Parsers for the keyless signature material a registry hands out, all untrusted input: nothing
// here verifies anything, it only reads shapes (keyless.hpp verifies). Pure, no exceptions.
//
//   sigstore bundle   application/vnd.dev.sigstore.bundle.v0.3+json (and "...bundle+json;version=0.1
//                     / 0.2"): verificationMaterial {certificate | x509CertificateChain | publicKey,
//                     tlogEntries[]}, then dsseEnvelope or messageSignature. Byte fields are base64;
//                     int64 fields may be JSON strings (protobuf JSON) or numbers.
//   cosign annotations on a `.sig` / `.att` layer:
//                     dev.sigstore.cosign/certificate  PEM leaf certificate
//                     dev.sigstore.cosign/chain        PEM intermediates and root (never trusted)
//                     dev.sigstore.cosign/bundle       {"SignedEntryTimestamp": b64, "Payload":
//                                                      {"body": b64, "integratedTime", "logIndex", "logID": hex}}
//   DSSE envelope     {"payloadType", "payload": b64, "signatures": [{"keyid", "sig": b64}]}
//                     (a `.att` layer, application/vnd.dsse.envelope.v1+json)

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"

namespace ocigate::signature {

inline constexpr std::string_view cosign_chain_annotation = "dev.sigstore.cosign/chain";
inline constexpr std::string_view dsse_layer_media_type = "application/vnd.dsse.envelope.v1+json";
inline constexpr std::string_view in_toto_payload_type = "application/vnd.in-toto+json";

// An RFC 6962 inclusion proof with the checkpoint (a signed note) it leads to.
struct InclusionProof {
  std::int64_t log_index = -1;  // the entry's index in this log shard's tree (not the global index)
  std::int64_t tree_size = 0;
  std::string root_hash;        // raw
  std::vector<std::string> hashes;  // raw, leaf to root
  std::string checkpoint;       // signed note text
};

// A Rekor (v1) transparency log entry as a bundle or a cosign annotation carries it.
struct TlogEntry {
  std::string body;                    // the canonicalized entry body (JSON bytes)
  std::int64_t integrated_time = 0;    // seconds since the epoch, as the log claims
  std::int64_t log_index = -1;         // global index: what the SET signs
  std::string log_id;                  // raw key id of the log
  std::string kind, version;           // kindVersion, when the bundle names it
  std::string signed_entry_timestamp;  // raw SET; "" when there is none
  std::optional<InclusionProof> proof;
};

struct DsseSignature {
  std::string keyid;
  std::string sig;  // raw
};

struct DsseEnvelope {
  std::string payload_type;
  std::string payload;  // raw
  std::vector<DsseSignature> signatures;
};

struct MessageSignature {
  std::string digest_algorithm;  // "SHA2_256"
  std::string digest;            // raw
  std::string signature;         // raw
};

struct SigstoreBundle {
  std::string media_type;
  // DER certificates: [0] is the signing certificate (v0.3 `certificate`, or the first of a
  // v0.1/v0.2 `x509CertificateChain`); the rest are what the signer supplied, never trusted.
  std::vector<std::string> certificates;
  std::string public_key_hint;  // keyed bundles
  std::vector<TlogEntry> tlog_entries;
  std::optional<DsseEnvelope> dsse;
  std::optional<MessageSignature> message;
};

// Errors: Errc::manifest_invalid with what is wrong ("tlogEntries[0].logIndex: not an integer");
// Errc::unsupported for a shape that is valid but not handled (e.g. a Rekor v2 entry).
Result<SigstoreBundle> parse_sigstore_bundle(std::string_view json);
Result<DsseEnvelope> parse_dsse_envelope(std::string_view json);
Result<TlogEntry> parse_cosign_rekor_bundle(std::string_view json);
// Every "-----BEGIN CERTIFICATE-----" block as DER, in order; an error when none is readable.
Result<std::vector<std::string>> parse_pem_certificates(std::string_view pem);

}  // namespace ocigate::signature
