// Signature formats: cosign tag signatures, sigstore bundles (DSSE), Notation JWS envelopes.

#include "ocigate/signature/verify.hpp"

#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "crypto.hpp"
#include "ocigate/oci/digest.hpp"
#include "ocigate/common/time.hpp"

namespace ocigate::signature {

using namespace detail;
using nlohmann::json;

namespace {

std::string short_digest(std::string_view digest) {
  return std::string(digest.substr(0, std::min<std::size_t>(digest.size(), 19)));  // sha256: + 12 hex
}

std::optional<json> parse_json(std::string_view text) {
  json out = json::parse(text.begin(), text.end(), nullptr, false);
  if (out.is_discarded()) return std::nullopt;
  return out;
}

std::string string_at(const json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json* object_at(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? &*it : nullptr;
}

SignatureResult result(Format format, std::string what, Reason reason, std::string detail) {
  SignatureResult r;
  r.format = format;
  r.what = std::move(what);
  r.reason = reason;
  r.detail = std::move(detail);
  return r;
}

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

// ---- cosign tag signatures

std::vector<SignatureResult> verify_cosign_tag(const CosignTagSignature& signature, std::string_view digest,
                                               const std::vector<PublicKey>& keys) {
  std::vector<SignatureResult> out;
  std::string tag_short = "sha256-" + std::string(digest.substr(std::min<std::size_t>(digest.size(), 7), 12)) + "….sig";
  auto manifest = parse_json(signature.manifest);
  const json* layers = nullptr;
  if (manifest && manifest->is_object()) {
    auto it = manifest->find("layers");
    if (it != manifest->end() && it->is_array()) layers = &*it;
  }
  if (!layers) {
    out.push_back(result(Format::cosign_tag, tag_short, Reason::malformed, "the .sig manifest is not an image manifest with layers"));
    return out;
  }
  for (std::size_t i = 0; i < layers->size(); ++i) {
    const json& layer = (*layers)[i];
    if (string_at(layer, "mediaType") != cosign_layer_media_type) continue;
    std::string layer_digest = string_at(layer, "digest");
    SignatureResult r = result(Format::cosign_tag, tag_short + " layer " + std::to_string(i) + " (" + short_digest(layer_digest) + ")",
                               Reason::malformed, "");
    const json* annotations = object_at(layer, "annotations");
    std::string sig_b64 = annotations ? string_at(*annotations, std::string(cosign_signature_annotation).c_str()) : "";
    bool has_cert = annotations && (!string_at(*annotations, std::string(cosign_certificate_annotation).c_str()).empty());
    bool has_bundle = annotations && (!string_at(*annotations, std::string(cosign_bundle_annotation).c_str()).empty());
    auto blob = signature.blobs.find(layer_digest);
    if (blob == signature.blobs.end()) {
      r.detail = "the payload blob " + layer_digest + " was not available";
      out.push_back(std::move(r));
      continue;
    }
    if (oci::sha256_digest(blob->second) != layer_digest) {
      r.detail = "the payload blob does not match its digest " + layer_digest;
      out.push_back(std::move(r));
      continue;
    }
    if (sig_b64.empty()) {
      if (has_cert || has_bundle) {
        r.reason = Reason::keyless;
        r.detail = "carries a Fulcio certificate / Rekor bundle but no signature verifiable with configured keys";
      } else {
        r.detail = "no " + std::string(cosign_signature_annotation) + " annotation";
      }
      out.push_back(std::move(r));
      continue;
    }
    auto sig = base64_decode(sig_b64, false);
    if (!sig || sig->empty()) {
      r.detail = "the " + std::string(cosign_signature_annotation) + " annotation is not base64";
      out.push_back(std::move(r));
      continue;
    }
    const PublicKey* signer = find_signer(keys, blob->second, *sig);
    if (!signer) {
      if (has_cert) {
        r.reason = Reason::keyless;
        r.detail = "signed with a Fulcio certificate (keyless); " + none_verified(keys.size());
      } else {
        r.reason = Reason::untrusted_key;
        r.detail = none_verified(keys.size());
      }
      out.push_back(std::move(r));
      continue;
    }
    // Only now, signed by a trusted key, is the payload's content believed.
    auto payload = parse_json(blob->second);
    const json* critical = payload ? object_at(*payload, "critical") : nullptr;
    if (!critical) {
      r.detail = "the signed payload is not a cosign simplesigning JSON document";
      out.push_back(std::move(r));
      continue;
    }
    std::string type = string_at(*critical, "type");
    if (type != cosign_payload_type) {
      r.reason = Reason::wrong_type;
      r.detail = "critical.type is '" + type + "', not '" + std::string(cosign_payload_type) + "'";
      out.push_back(std::move(r));
      continue;
    }
    const json* image = object_at(*critical, "image");
    std::string signed_digest = image ? string_at(*image, "docker-manifest-digest") : "";
    if (signed_digest.empty()) {
      r.detail = "the signed payload has no critical.image.docker-manifest-digest";
      out.push_back(std::move(r));
      continue;
    }
    if (signed_digest != digest) {
      r.reason = Reason::replay;
      r.detail = "signed for " + signed_digest + ", not " + std::string(digest);
      out.push_back(std::move(r));
      continue;
    }
    mark_valid(r, *signer);
    out.push_back(std::move(r));
  }
  return out;
}

// ---- sigstore bundles

SignatureResult verify_sigstore_bundle(const Envelope& envelope, std::string_view digest,
                                       const std::vector<PublicKey>& keys) {
  SignatureResult r = result(Format::sigstore_bundle, "bundle " + short_digest(envelope.artifact_digest), Reason::malformed, "");
  auto bundle = parse_json(envelope.bytes);
  if (!bundle || !bundle->is_object()) {
    r.detail = "the bundle is not JSON";
    return r;
  }
  std::string media_type = string_at(*bundle, "mediaType");
  if (media_type.rfind("application/vnd.dev.sigstore.bundle", 0) != 0) {
    r.detail = "mediaType '" + media_type + "' is not a sigstore bundle";
    return r;
  }
  const json* dsse = object_at(*bundle, "dsseEnvelope");
  if (!dsse) {
    if (object_at(*bundle, "messageSignature")) {
      r.reason = Reason::unsupported;
      r.detail = "a messageSignature bundle signs a blob, not an image (expected a DSSE envelope)";
    } else {
      r.detail = "no dsseEnvelope";
    }
    return r;
  }
  const json* material = object_at(*bundle, "verificationMaterial");
  std::string hint;
  bool has_cert = false;
  if (material) {
    if (const json* pk = object_at(*material, "publicKey")) hint = string_at(*pk, "hint");
    has_cert = object_at(*material, "certificate") || object_at(*material, "x509CertificateChain");
  }
  std::string payload_type = string_at(*dsse, "payloadType");
  auto payload = base64_decode(string_at(*dsse, "payload"), false);
  if (!payload) {
    r.detail = "the DSSE payload is not base64";
    return r;
  }
  auto sigs = dsse->find("signatures");
  if (sigs == dsse->end() || !sigs->is_array() || sigs->empty()) {
    r.detail = "the DSSE envelope has no signatures";
    return r;
  }
  std::string pae = dsse_pae(payload_type, *payload);
  const PublicKey* signer = nullptr;
  bool decodable = false;
  for (const auto& s : *sigs) {
    auto sig = base64_decode(string_at(s, "sig"), false);
    if (!sig || sig->empty()) continue;
    decodable = true;
    std::string keyid = string_at(s, "keyid");
    signer = find_signer(keys, pae, *sig, hint.empty() ? keyid : hint);
    if (signer) break;
  }
  if (!decodable) {
    r.detail = "no DSSE signature is base64";
    return r;
  }
  if (!signer) {
    r.reason = has_cert ? Reason::keyless : Reason::untrusted_key;
    r.detail = (has_cert ? "signed with a certificate (keyless); " : "") + none_verified(keys.size());
    return r;
  }
  if (payload_type != "application/vnd.in-toto+json") {
    r.reason = Reason::wrong_type;
    r.detail = "payloadType is '" + payload_type + "', not application/vnd.in-toto+json";
    return r;
  }
  auto statement = parse_json(*payload);
  const json* subjects = nullptr;
  if (statement && statement->is_object()) {
    auto it = statement->find("subject");
    if (it != statement->end() && it->is_array()) subjects = &*it;
  }
  if (!subjects) {
    r.detail = "the signed payload is not an in-toto statement with subjects";
    return r;
  }
  std::string hex(digest.substr(std::min<std::size_t>(digest.size(), 7)));
  std::string seen;
  for (const auto& subject : *subjects) {
    const json* digests = object_at(subject, "digest");
    std::string value = digests ? string_at(*digests, "sha256") : "";
    if (value == hex && !hex.empty() && digest.substr(0, 7) == "sha256:") {
      mark_valid(r, *signer);
      std::string predicate = string_at(*statement, "predicateType");
      if (!predicate.empty()) r.detail += ", predicate " + predicate;
      return r;
    }
    if (!value.empty() && seen.empty()) seen = "sha256:" + value;
  }
  r.reason = Reason::replay;
  r.detail = "the statement's subject is " + (seen.empty() ? std::string("no sha256 digest") : seen) + ", not " + std::string(digest);
  return r;
}

// ---- Notation JWS

namespace {

struct AlgSpec {
  const EVP_MD* md;
  bool rsa_pss;
  KeyType ec_type;
};

std::optional<AlgSpec> alg_spec(const std::string& alg) {
  if (alg == "PS256") return AlgSpec{EVP_sha256(), true, KeyType::rsa};
  if (alg == "PS384") return AlgSpec{EVP_sha384(), true, KeyType::rsa};
  if (alg == "PS512") return AlgSpec{EVP_sha512(), true, KeyType::rsa};
  if (alg == "ES256") return AlgSpec{EVP_sha256(), false, KeyType::ecdsa_p256};
  if (alg == "ES384") return AlgSpec{EVP_sha384(), false, KeyType::ecdsa_p384};
  if (alg == "ES512") return AlgSpec{EVP_sha512(), false, KeyType::ecdsa_p521};
  return std::nullopt;
}

std::optional<KeyType> ec_key_type(EVP_PKEY* pkey) {
  char group[64] = {0};
  std::size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1) return std::nullopt;
  std::string g(group);
  if (g == "prime256v1") return KeyType::ecdsa_p256;
  if (g == "secp384r1") return KeyType::ecdsa_p384;
  if (g == "secp521r1") return KeyType::ecdsa_p521;
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> cert_rdns(X509* cert) {
  std::vector<std::pair<std::string, std::string>> out;
  X509_NAME* name = X509_get_subject_name(cert);
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    const char* sn = OBJ_nid2sn(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    if (len < 0) continue;
    std::string attr = sn ? sn : "?";
    for (auto& c : attr) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    out.emplace_back(attr, std::string(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len)));
    OPENSSL_free(utf8);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

SignatureResult verify_notation(const Envelope& envelope, std::string_view digest, std::int64_t size,
                                const LoadedTrustEntry& entry, std::chrono::system_clock::time_point now) {
  SignatureResult r = result(Format::notation, "notation " + short_digest(envelope.artifact_digest), Reason::malformed, "");
  if (envelope.media_type == notation_cose_media_type) {
    r.reason = Reason::unsupported;
    r.detail = "COSE envelopes (application/cose) are not supported; sign with --signature-format jws";
    return r;
  }
  if (envelope.media_type != notation_jws_media_type) {
    r.reason = Reason::unsupported;
    r.detail = "envelope media type '" + envelope.media_type + "' is not application/jose+json";
    return r;
  }
  auto jws = parse_json(envelope.bytes);
  if (!jws || !jws->is_object()) {
    r.detail = "the JWS envelope is not JSON";
    return r;
  }
  std::string protected_b64 = string_at(*jws, "protected");
  std::string payload_b64 = string_at(*jws, "payload");
  auto protected_raw = base64_decode(protected_b64, true);
  auto payload_raw = base64_decode(payload_b64, true);
  auto sig = base64_decode(string_at(*jws, "signature"), true);
  if (!protected_raw || !payload_raw || !sig || sig->empty()) {
    r.detail = "protected header, payload or signature is missing or not base64url";
    return r;
  }
  auto header = parse_json(*protected_raw);
  if (!header || !header->is_object()) {
    r.detail = "the protected header is not a JSON object";
    return r;
  }
  std::string alg = string_at(*header, "alg");
  auto spec = alg_spec(alg);
  if (!spec) {
    r.reason = Reason::unsupported;
    r.detail = "alg '" + alg + "' is not one of PS256/384/512, ES256/384/512";
    return r;
  }
  static const std::vector<std::string> understood = {"io.cncf.notary.signingScheme", "io.cncf.notary.expiry",
                                                      "io.cncf.notary.authenticSigningTime"};
  auto crit = header->find("crit");
  if (crit != header->end()) {
    if (!crit->is_array()) {
      r.detail = "crit is not a list";
      return r;
    }
    for (const auto& name : *crit) {
      std::string n = name.is_string() ? name.get<std::string>() : "?";
      if (std::find(understood.begin(), understood.end(), n) == understood.end()) {
        r.reason = Reason::unsupported;
        r.detail = "critical header '" + n + "' is not understood (a verification plugin is not supported)";
        return r;
      }
      if (!header->contains(n)) {
        r.detail = "critical header '" + n + "' is listed in crit but absent";
        return r;
      }
    }
  }
  std::string scheme = string_at(*header, "io.cncf.notary.signingScheme");
  if (scheme != "notary.x509" && scheme != "notary.x509.signingAuthority") {
    r.reason = scheme.empty() ? Reason::malformed : Reason::unsupported;
    r.detail = "signing scheme '" + scheme + "' is not notary.x509";
    return r;
  }
  const json* unprotected = object_at(*jws, "header");
  const json* chain = nullptr;
  for (const char* key : {"x5chain", "x5c"}) {
    if (unprotected && unprotected->contains(key) && (*unprotected)[key].is_array()) chain = &(*unprotected)[key];
  }
  if (!chain || chain->empty()) {
    r.detail = "no x5chain certificate chain in the unprotected header";
    return r;
  }
  std::vector<X509Ptr> certs;
  for (const auto& c : *chain) {
    auto der = c.is_string() ? base64_decode(c.get<std::string>(), false) : std::nullopt;
    if (!der) {
      r.detail = "an x5chain entry is not base64";
      return r;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(der->data());
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der->size())));
    if (!cert) {
      ERR_clear_error();
      r.detail = "an x5chain entry is not a DER certificate";
      return r;
    }
    certs.push_back(std::move(cert));
  }
  X509* leaf = certs.front().get();
  EVP_PKEY* leaf_key = X509_get0_pubkey(leaf);
  if (!leaf_key) {
    r.detail = "the signing certificate's public key is unreadable";
    return r;
  }
  std::string subject = subject_text(leaf);
  r.key = subject;
  // The signature first, with the leaf's own key: is the envelope intact?
  std::string signing_input = protected_b64 + "." + payload_b64;
  bool ok = false;
  int key_id = EVP_PKEY_get_base_id(leaf_key);
  if (spec->rsa_pss) {
    ok = (key_id == EVP_PKEY_RSA || key_id == EVP_PKEY_RSA_PSS) &&
         verify_raw(leaf_key, spec->md, RsaPadding::pss, RSA_PSS_SALTLEN_DIGEST, signing_input, *sig);
  } else {
    ok = key_id == EVP_PKEY_EC && ec_key_type(leaf_key) == spec->ec_type;
    if (ok) {
      std::string der = ecdsa_raw_to_der(*sig);
      ok = !der.empty() && verify_raw(leaf_key, spec->md, RsaPadding::none, 0, signing_input, der);
    }
  }
  if (!ok) {
    r.reason = Reason::bad_signature;
    r.detail = alg + " signature does not verify with the signing certificate's key (" + subject + "): tampered or corrupt";
    return r;
  }
  // Then the certificate chain to the configured trust store.
  if (!entry.notation_store) {
    r.reason = Reason::bad_chain;
    r.detail = "no trust store configured";
    return r;
  }
  std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> untrusted(sk_X509_new_null(),
                                                                      [](STACK_OF(X509)* s) { sk_X509_free(s); });
  for (std::size_t i = 1; i < certs.size(); ++i) sk_X509_push(untrusted.get(), certs[i].get());
  std::unique_ptr<X509_STORE_CTX, void (*)(X509_STORE_CTX*)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!ctx || X509_STORE_CTX_init(ctx.get(), entry.notation_store.get(), leaf, untrusted.get()) != 1) {
    r.reason = Reason::bad_chain;
    r.detail = "cannot set up chain verification: " + openssl_error("unknown error");
    return r;
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    r.reason = Reason::bad_chain;
    r.detail = "the chain of " + subject + " does not verify to " + entry.notation_store_path + ": " +
               X509_verify_cert_error_string(err);
    return r;
  }
  // Notation signs with code-signing certificates: refuse a leaf whose usages say otherwise.
  std::uint32_t flags = X509_get_extension_flags(leaf);
  if (((flags & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(leaf) & XKU_CODE_SIGN)) ||
      ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE))) {
    r.reason = Reason::bad_chain;
    r.detail = "the signing certificate " + subject + " is not for code signing (extended key usage / key usage)";
    return r;
  }
  // The signer's identity.
  auto rdns = cert_rdns(leaf);
  bool identity_ok = false;
  for (const auto& id : entry.notation_identities) identity_ok = identity_ok || id.any || id.rdns == rdns;
  if (!identity_ok) {
    r.reason = Reason::wrong_identity;
    std::string ids;
    for (const auto& id : entry.notation_identities) ids += (ids.empty() ? "" : ", ") + id.text;
    r.detail = "signer " + subject + " matches none of the identities [" + ids + "]";
    return r;
  }
  std::string expiry = string_at(*header, "io.cncf.notary.expiry");
  if (!expiry.empty()) {
    auto when = parse_rfc3339(expiry);
    if (!when || *when < now) {
      r.reason = when ? Reason::expired : Reason::malformed;
      r.detail = "io.cncf.notary.expiry " + expiry + (when ? " has passed" : " is not RFC 3339");
      return r;
    }
  }
  // Only now is the payload believed.
  if (string_at(*header, "cty") != "application/vnd.cncf.notary.payload.v1+json") {
    r.reason = Reason::wrong_type;
    r.detail = "cty is '" + string_at(*header, "cty") + "', not application/vnd.cncf.notary.payload.v1+json";
    return r;
  }
  auto payload = parse_json(*payload_raw);
  const json* target = payload ? object_at(*payload, "targetArtifact") : nullptr;
  if (!target) {
    r.detail = "the payload has no targetArtifact";
    return r;
  }
  std::string target_digest = string_at(*target, "digest");
  if (target_digest != digest) {
    r.reason = Reason::replay;
    r.detail = "signed for " + (target_digest.empty() ? std::string("no digest") : target_digest) + ", not " + std::string(digest);
    return r;
  }
  auto target_size = target->find("size");
  if (size >= 0 && (target_size == target->end() || !target_size->is_number_integer() || target_size->get<std::int64_t>() != size)) {
    r.reason = Reason::replay;
    r.detail = "targetArtifact.size is not the manifest's " + std::to_string(size) + " bytes";
    return r;
  }
  r.reason = Reason::valid;
  r.fingerprint = spki_fingerprint(leaf_key);
  r.detail = alg + " signature by " + subject + " (key " + r.fingerprint + "), chain verified to " + entry.notation_store_path;
  return r;
}

}  // namespace ocigate::signature
