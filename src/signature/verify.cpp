// Signature formats: cosign tag signatures and attestations, sigstore bundles (DSSE); the
// helpers every format shares. Notation JWS envelopes are in notation.cpp.

#include "ocigate/signature/verify.hpp"

#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "crypto.hpp"
#include "json_fields.hpp"
#include "ocigate/oci/digest.hpp"
#include "ocigate/common/time.hpp"
#include "ocigate/signature/bundle.hpp"
#include "ocigate/signature/keyless.hpp"

namespace ocigate::signature {

using namespace detail;
using nlohmann::json;

namespace {

// The first configured key the signature verifies with, trying the hinted one first.
const PublicKey* find_signer(const std::vector<PublicKey>& keys, std::string_view data, std::string_view sig,
                             std::string_view hint = {}) {
  if (!hint.empty()) {
    for (const auto& key : keys) {
      std::string hex = key.fingerprint.substr(7);
      if ((hint == hex || hint == key.fingerprint) && verify_with_key(key, data, sig)) return &key;
    }
  }
  for (const auto& key : keys) {
    if (verify_with_key(key, data, sig)) return &key;
  }
  return nullptr;
}

std::string none_verified(std::size_t keys) {
  return "the signature verifies with none of the " + std::to_string(keys) +
         " configured key(s): signed by another key, or the signature bytes are corrupt";
}

void mark_valid(SignatureResult& r, const PublicKey& key) {
  r.reason = Reason::valid;
  r.fingerprint = key.fingerprint;
  r.key = key.path;
  r.detail = "verified with " + std::string(key_type_text(key.type)) + " key " + key.fingerprint +
             (key.path.empty() ? "" : " (" + key.path + ")");
}

}  // namespace

const char* format_text(Format format) {
  switch (format) {
    case Format::cosign_tag: return "cosign";
    case Format::sigstore_bundle: return "sigstore-bundle";
    case Format::notation: return "notation";
    case Format::cosign_attestation: return "cosign-attestation";
  }
  return "unknown";
}

const char* reason_text(Reason reason) {
  switch (reason) {
    case Reason::valid: return "verified";
    case Reason::untrusted_key: return "signed by an untrusted key";
    case Reason::replay: return "payload for another digest (replay)";
    case Reason::wrong_type: return "wrong payload type";
    case Reason::malformed: return "malformed signature";
    case Reason::bad_signature: return "signature does not verify";
    case Reason::bad_chain: return "bad certificate chain";
    case Reason::wrong_identity: return "signer identity not trusted";
    case Reason::expired: return "signature expired";
    case Reason::keyless: return "keyless signature: not verifiable with configured keys";
    case Reason::unsupported: return "unsupported signature format";
    case Reason::bad_tlog: return "transparency log entry does not verify";
    case Reason::bad_sct: return "certificate transparency (SCT) does not verify";
  }
  return "unknown";
}

std::optional<std::string> base64_decode(std::string_view text, bool url_safe) {
  auto value = [url_safe](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url_safe ? '-' : '+')) return 62;
    if (c == (url_safe ? '_' : '/')) return 63;
    return -1;
  };
  std::size_t end = text.size();
  std::size_t pad = 0;
  while (end > 0 && text[end - 1] == '=' && pad < 2) {
    --end;
    ++pad;
  }
  if (pad > 0 && text.size() % 4 != 0) return std::nullopt;
  if (end % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(end * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < end; ++i) {
    int v = value(text[i]);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

bool verify_with_key(const PublicKey& key, std::string_view data, std::string_view signature) {
  if (!key.pkey || signature.empty()) return false;
  switch (key.type) {
    case KeyType::ed25519:
      return verify_raw(key.pkey.get(), nullptr, RsaPadding::none, 0, data, signature);
    case KeyType::rsa:
      return verify_raw(key.pkey.get(), EVP_sha256(), RsaPadding::pkcs1, 0, data, signature) ||
             verify_raw(key.pkey.get(), EVP_sha256(), RsaPadding::pss, RSA_PSS_SALTLEN_AUTO, data, signature);
    default:
      return verify_raw(key.pkey.get(), EVP_sha256(), RsaPadding::none, 0, data, signature);
  }
}

std::string dsse_pae(std::string_view payload_type, std::string_view payload) {
  std::string out = "DSSEv1 ";
  out += std::to_string(payload_type.size());
  out += ' ';
  out += payload_type;
  out += ' ';
  out += std::to_string(payload.size());
  out += ' ';
  out += payload;
  return out;
}

std::string ecdsa_raw_to_der(std::string_view raw) {
  if (raw.empty() || raw.size() % 2 != 0 || raw.size() > 132) return {};
  std::size_t half = raw.size() / 2;
  auto integer = [](std::string_view bytes) {
    std::size_t i = 0;
    while (i + 1 < bytes.size() && bytes[i] == 0) ++i;
    std::string v(bytes.substr(i));
    if (static_cast<unsigned char>(v[0]) & 0x80) v.insert(v.begin(), '\0');
    std::string out = "\x02";
    out += static_cast<char>(v.size());
    return out + v;
  };
  std::string body = integer(raw.substr(0, half)) + integer(raw.substr(half));
  std::string out = "\x30";
  if (body.size() >= 128) out += '\x81';
  out += static_cast<char>(body.size());
  return out + body;
}

// ---- who signed: a configured key, or keyless

namespace {

std::string annotation(const json* annotations, std::string_view key) {
  return annotations ? string_at(*annotations, std::string(key).c_str()) : std::string();
}

// A signature no configured signer verified: why, in the words the old key-only check used.
void unverified(SignatureResult& r, const Signers& signers, bool has_certificate) {
  if (has_certificate) {
    r.reason = Reason::keyless;
    r.detail = "signed with a Fulcio certificate (keyless), but the trust entry configures no keyless identities; " +
               none_verified(signers.keys.size());
  } else if (signers.keys.empty()) {
    r.reason = Reason::untrusted_key;
    r.detail = "carries no certificate for keyless verification, and the trust entry configures no key";
  } else {
    r.reason = Reason::untrusted_key;
    r.detail = none_verified(signers.keys.size());
  }
}

void mark_keyless(SignatureResult& r, const KeylessOutcome& outcome) {
  r.reason = Reason::valid;
  r.fingerprint = outcome.fingerprint;
  r.key = "keyless " + outcome.identity.subject;
  r.detail = outcome.detail;
}

void copy_identity(SignatureResult& r, const KeylessOutcome& outcome) {
  r.identity = outcome.identity.subject;
  r.issuer = outcome.identity.issuer;
  r.log_index = outcome.log_index;
  r.signing_time = outcome.signing_time;
}

// What was signed turned out wrong: the signature is no longer valid.
void downgrade(SignatureResult& r, Reason reason, std::string detail) {
  r.reason = reason;
  r.detail = std::move(detail);
  r.fingerprint.clear();
  r.key.clear();
}

// Establishes who signed `data`: a configured key first, then the keyless claim when the entry
// configures keyless. Sets r (valid, or why not) and returns whether a signer verified.
bool establish_signer(SignatureResult& r, const Signers& signers, std::string_view data,
                      const std::vector<std::string>& signatures, std::string_view hint,
                      const std::optional<KeylessClaim>& claim) {
  for (const auto& sig : signatures) {
    if (const PublicKey* signer = sig.empty() ? nullptr : find_signer(signers.keys, data, sig, hint)) {
      mark_valid(r, *signer);
      return true;
    }
  }
  if (claim && signers.keyless) {
    KeylessOutcome outcome = verify_keyless(*claim, *signers.keyless, signers.now);
    copy_identity(r, outcome);
    if (outcome.valid()) {
      mark_keyless(r, outcome);
      return true;
    }
    r.reason = outcome.reason;
    r.detail = outcome.detail;
    return false;
  }
  unverified(r, signers, claim.has_value());
  return false;
}

// The keyless material on a .sig / .att layer: certificate, chain (never trusted) and Rekor
// bundle annotations. nullopt without a certificate.
std::optional<KeylessClaim> layer_claim(const json* annotations, KeylessClaim::Content content) {
  std::string pem = annotation(annotations, cosign_certificate_annotation);
  if (pem.empty()) return std::nullopt;
  KeylessClaim claim;
  claim.content = content;
  auto certs = parse_pem_certificates(pem);
  if (certs) claim.certificate = certs->front();  // unreadable: verify_keyless says malformed
  if (auto chain = parse_pem_certificates(annotation(annotations, cosign_chain_annotation))) claim.supplied_chain = *chain;
  std::string bundle = annotation(annotations, cosign_bundle_annotation);
  if (!bundle.empty()) {
    auto entry = parse_cosign_rekor_bundle(bundle);
    if (entry) claim.tlog_entries.push_back(std::move(*entry));
    else claim.tlog_error = "the " + std::string(cosign_bundle_annotation) + " annotation is unreadable: " + entry.error().message;
  }
  return claim;
}

// "sha256:<hex>" -> ("sha256", "<hex>").
std::pair<std::string, std::string> split_digest(std::string_view digest) {
  auto colon = digest.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == digest.size()) return {};
  return {std::string(digest.substr(0, colon)), std::string(digest.substr(colon + 1))};
}

// A signed simplesigning payload for `digest`; downgrades r otherwise.
void check_simplesigning(SignatureResult& r, const std::string& payload_bytes, std::string_view digest) {
  auto payload = parse_json(payload_bytes);
  const json* critical = payload ? object_at(*payload, "critical") : nullptr;
  if (!critical) return downgrade(r, Reason::malformed, "the signed payload is not a cosign simplesigning JSON document");
  std::string type = string_at(*critical, "type");
  if (type != cosign_payload_type) {
    return downgrade(r, Reason::wrong_type, "critical.type is '" + type + "', not '" + std::string(cosign_payload_type) + "'");
  }
  const json* image = object_at(*critical, "image");
  std::string signed_digest = image ? string_at(*image, "docker-manifest-digest") : "";
  if (signed_digest.empty()) return downgrade(r, Reason::malformed, "the signed payload has no critical.image.docker-manifest-digest");
  if (signed_digest != digest) downgrade(r, Reason::replay, "signed for " + signed_digest + ", not " + std::string(digest));
}

// A signed in-toto statement whose subject names `digest`; downgrades r otherwise and keeps the
// statement on r when valid.
void check_statement(SignatureResult& r, const std::string& payload_type, const std::string& payload, std::string_view digest) {
  if (payload_type != in_toto_payload_type) {
    return downgrade(r, Reason::wrong_type, "payloadType is '" + payload_type + "', not " + std::string(in_toto_payload_type));
  }
  auto statement = parse_json(payload);
  const json* subjects = nullptr;
  if (statement && statement->is_object()) {
    auto it = statement->find("subject");
    if (it != statement->end() && it->is_array()) subjects = &*it;
  }
  if (!subjects) return downgrade(r, Reason::malformed, "the signed payload is not an in-toto statement with subjects");
  auto [algorithm, hex] = split_digest(digest);
  std::string seen;
  for (const auto& subject : *subjects) {
    const json* digests = object_at(subject, "digest");
    std::string value = digests && !algorithm.empty() ? string_at(*digests, algorithm.c_str()) : "";
    if (!value.empty() && value == hex) {
      r.predicate_type = string_at(*statement, "predicateType");
      r.statement = payload;
      if (!r.predicate_type.empty()) r.detail += ", predicate " + r.predicate_type;
      return;
    }
    if (!value.empty() && seen.empty()) seen = algorithm + ":" + value;
  }
  downgrade(r, Reason::replay,
            "the statement's subject is " + (seen.empty() ? "no " + (algorithm.empty() ? std::string("matching") : algorithm) + " digest" : seen) +
                ", not " + std::string(digest));
}

struct Layer {
  const json* annotations = nullptr;
  const std::string* blob = nullptr;  // verified against its digest
};

// The layer's blob when present and intact; otherwise r says why.
std::optional<Layer> read_layer(SignatureResult& r, const json& layer, const CosignTagSignature& signature) {
  std::string layer_digest = string_at(layer, "digest");
  auto blob = signature.blobs.find(layer_digest);
  if (blob == signature.blobs.end()) {
    r.detail = "the payload blob " + layer_digest + " was not available";
    return std::nullopt;
  }
  if (oci::sha256_digest(blob->second) != layer_digest) {
    r.detail = "the payload blob does not match its digest " + layer_digest;
    return std::nullopt;
  }
  return Layer{object_at(layer, "annotations"), &blob->second};
}

const json* manifest_layers(const std::optional<json>& manifest) {
  if (!manifest || !manifest->is_object()) return nullptr;
  auto it = manifest->find("layers");
  return it != manifest->end() && it->is_array() ? &*it : nullptr;
}

std::string tag_name(std::string_view digest, const char* suffix) {
  return "sha256-" + std::string(digest.substr(std::min<std::size_t>(digest.size(), 7), 12)) + "…" + suffix;
}

SignatureResult verify_simplesigning_layer(const json& layer, std::size_t index, const CosignTagSignature& signature,
                                           std::string_view digest, const Signers& signers) {
  SignatureResult r = make_result(Format::cosign_tag, tag_name(digest, ".sig") + " layer " + std::to_string(index) + " (" +
                                                     short_digest(string_at(layer, "digest")) + ")",
                             Reason::malformed, "");
  auto content = read_layer(r, layer, signature);
  if (!content) return r;
  std::string sig_b64 = annotation(content->annotations, cosign_signature_annotation);
  bool has_cert = !annotation(content->annotations, cosign_certificate_annotation).empty();
  bool has_bundle = !annotation(content->annotations, cosign_bundle_annotation).empty();
  if (sig_b64.empty()) {
    if (has_cert || has_bundle) {
      r.reason = Reason::keyless;
      r.detail = "carries a Fulcio certificate / Rekor bundle but no signature verifiable with configured keys";
    } else {
      r.detail = "no " + std::string(cosign_signature_annotation) + " annotation";
    }
    return r;
  }
  auto sig = base64_decode(sig_b64, false);
  if (!sig || sig->empty()) {
    r.detail = "the " + std::string(cosign_signature_annotation) + " annotation is not base64";
    return r;
  }
  auto claim = layer_claim(content->annotations, KeylessClaim::Content::message);
  if (claim) {
    claim->signed_data = *content->blob;
    claim->payload = *content->blob;
    claim->signatures = {*sig};
  }
  // Only once a trusted signer verified it is the payload's content believed.
  if (establish_signer(r, signers, *content->blob, {*sig}, {}, claim)) check_simplesigning(r, *content->blob, digest);
  return r;
}

SignatureResult verify_attestation_layer(const json& layer, std::size_t index, const CosignTagSignature& attestations,
                                         std::string_view digest, const Signers& signers) {
  SignatureResult r = make_result(Format::cosign_attestation, tag_name(digest, ".att") + " layer " + std::to_string(index) + " (" +
                                                             short_digest(string_at(layer, "digest")) + ")",
                             Reason::malformed, "");
  auto content = read_layer(r, layer, attestations);
  if (!content) return r;
  auto envelope = parse_dsse_envelope(*content->blob);
  if (!envelope) {
    r.detail = "the DSSE envelope is unreadable: " + envelope.error().message;
    return r;
  }
  std::string pae = dsse_pae(envelope->payload_type, envelope->payload);
  std::vector<std::string> sigs;
  for (const auto& s : envelope->signatures) sigs.push_back(s.sig);
  auto claim = layer_claim(content->annotations, KeylessClaim::Content::dsse);
  if (claim) {
    claim->signed_data = pae;
    claim->payload = envelope->payload;
    claim->signatures = sigs;
  }
  std::string hint = envelope->signatures.empty() ? std::string() : envelope->signatures.front().keyid;
  if (establish_signer(r, signers, pae, sigs, hint, claim)) check_statement(r, envelope->payload_type, envelope->payload, digest);
  return r;
}

}  // namespace

// ---- cosign tag signatures and attestations

std::vector<SignatureResult> verify_cosign_tag(const CosignTagSignature& signature, std::string_view digest,
                                               const Signers& signers) {
  std::vector<SignatureResult> out;
  const auto manifest = parse_json(signature.manifest);
  const json* layers = manifest_layers(manifest);
  if (!layers) {
    out.push_back(make_result(Format::cosign_tag, tag_name(digest, ".sig"), Reason::malformed, "the .sig manifest is not an image manifest with layers"));
    return out;
  }
  for (std::size_t i = 0; i < layers->size(); ++i) {
    if (string_at((*layers)[i], "mediaType") != cosign_layer_media_type) continue;
    out.push_back(verify_simplesigning_layer((*layers)[i], i, signature, digest, signers));
  }
  return out;
}

std::vector<SignatureResult> verify_cosign_tag(const CosignTagSignature& signature, std::string_view digest,
                                               const std::vector<PublicKey>& keys) {
  return verify_cosign_tag(signature, digest, Signers{keys, nullptr, {}});
}

std::vector<SignatureResult> verify_cosign_attestations(const CosignTagSignature& attestations, std::string_view digest,
                                                        const Signers& signers) {
  std::vector<SignatureResult> out;
  const auto manifest = parse_json(attestations.manifest);
  const json* layers = manifest_layers(manifest);
  if (!layers) {
    out.push_back(make_result(Format::cosign_attestation, tag_name(digest, ".att"), Reason::malformed, "the .att manifest is not an image manifest with layers"));
    return out;
  }
  for (std::size_t i = 0; i < layers->size(); ++i) {
    if (string_at((*layers)[i], "mediaType") != dsse_layer_media_type) continue;
    out.push_back(verify_attestation_layer((*layers)[i], i, attestations, digest, signers));
  }
  return out;
}

// ---- sigstore bundles

SignatureResult verify_sigstore_bundle(const Envelope& envelope, std::string_view digest, const Signers& signers) {
  SignatureResult r = make_result(Format::sigstore_bundle, "bundle " + short_digest(envelope.artifact_digest), Reason::malformed, "");
  auto bundle = parse_sigstore_bundle(envelope.bytes);
  if (!bundle) {
    r.reason = bundle.error().code == Errc::unsupported ? Reason::unsupported : Reason::malformed;
    r.detail = bundle.error().message;
    return r;
  }
  if (!bundle->dsse) {
    r.reason = Reason::unsupported;
    r.detail = "a messageSignature bundle signs a blob, not an image (expected a DSSE envelope)";
    return r;
  }
  const DsseEnvelope& dsse = *bundle->dsse;
  std::string pae = dsse_pae(dsse.payload_type, dsse.payload);
  std::vector<std::string> sigs;
  for (const auto& s : dsse.signatures) sigs.push_back(s.sig);
  std::optional<KeylessClaim> claim;
  if (!bundle->certificates.empty()) {
    claim = KeylessClaim{KeylessClaim::Content::dsse, bundle->certificates.front(),
                         std::vector<std::string>(bundle->certificates.begin() + 1, bundle->certificates.end()),
                         pae, sigs, dsse.payload, bundle->tlog_entries, ""};
  }
  std::string hint = bundle->public_key_hint.empty() && !dsse.signatures.empty() ? dsse.signatures.front().keyid : bundle->public_key_hint;
  if (establish_signer(r, signers, pae, sigs, hint, claim)) check_statement(r, dsse.payload_type, dsse.payload, digest);
  return r;
}

SignatureResult verify_sigstore_bundle(const Envelope& envelope, std::string_view digest, const std::vector<PublicKey>& keys) {
  return verify_sigstore_bundle(envelope, digest, Signers{keys, nullptr, {}});
}

}  // namespace ocigate::signature
