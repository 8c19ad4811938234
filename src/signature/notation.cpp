// Notation JWS envelopes (notary.x509): read the envelope, check its protected header, verify the
// signature with the leaf's key, the chain to the entry's trust store, the leaf's usages, the
// signer's identity and expiry, and only then believe the payload.

#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "crypto.hpp"
#include "json_fields.hpp"
#include "ocigate/common/time.hpp"
#include "ocigate/signature/verify.hpp"

namespace ocigate::signature {

using namespace detail;
using nlohmann::json;

namespace {

// Why a step refused the envelope: the result's reason and detail.
struct Refusal {
  Reason reason;
  std::string detail;
};
using Step = std::optional<Refusal>;

Refusal malformed(std::string detail) { return {Reason::malformed, std::move(detail)}; }

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

// The envelope's parts, decoded; nothing in them is believed yet.
struct Jws {
  std::string protected_b64;
  std::string payload_b64;
  json header;  // the protected header
  json unprotected;
  std::string payload;
  std::string signature;
  AlgSpec spec{};
  std::string alg;
};

Step read_jws(const Envelope& envelope, Jws& jws) {
  if (envelope.media_type == notation_cose_media_type) {
    return Refusal{Reason::unsupported, "COSE envelopes (application/cose) are not supported; sign with --signature-format jws"};
  }
  if (envelope.media_type != notation_jws_media_type) {
    return Refusal{Reason::unsupported, "envelope media type '" + envelope.media_type + "' is not application/jose+json"};
  }
  auto doc = parse_json(envelope.bytes);
  if (!doc || !doc->is_object()) return malformed("the JWS envelope is not JSON");
  jws.protected_b64 = string_at(*doc, "protected");
  jws.payload_b64 = string_at(*doc, "payload");
  auto protected_raw = base64_decode(jws.protected_b64, true);
  auto payload_raw = base64_decode(jws.payload_b64, true);
  auto sig = base64_decode(string_at(*doc, "signature"), true);
  if (!protected_raw || !payload_raw || !sig || sig->empty()) {
    return malformed("protected header, payload or signature is missing or not base64url");
  }
  auto header = parse_json(*protected_raw);
  if (!header || !header->is_object()) return malformed("the protected header is not a JSON object");
  jws.header = std::move(*header);
  if (const json* unprotected = object_at(*doc, "header")) jws.unprotected = *unprotected;
  jws.payload = std::move(*payload_raw);
  jws.signature = std::move(*sig);
  return std::nullopt;
}

Step check_crit(const json& header) {
  static const std::vector<std::string> understood = {"io.cncf.notary.signingScheme", "io.cncf.notary.expiry",
                                                      "io.cncf.notary.authenticSigningTime"};
  auto crit = header.find("crit");
  if (crit == header.end()) return std::nullopt;
  if (!crit->is_array()) return malformed("crit is not a list");
  for (const auto& name : *crit) {
    std::string n = name.is_string() ? name.get<std::string>() : "?";
    if (std::find(understood.begin(), understood.end(), n) == understood.end()) {
      return Refusal{Reason::unsupported, "critical header '" + n + "' is not understood (a verification plugin is not supported)"};
    }
    if (!header.contains(n)) return malformed("critical header '" + n + "' is listed in crit but absent");
  }
  return std::nullopt;
}

// alg, crit and the signing scheme: what ocigate can verify at all.
Step check_header(Jws& jws) {
  jws.alg = string_at(jws.header, "alg");
  auto spec = alg_spec(jws.alg);
  if (!spec) return Refusal{Reason::unsupported, "alg '" + jws.alg + "' is not one of PS256/384/512, ES256/384/512"};
  jws.spec = *spec;
  if (auto refused = check_crit(jws.header)) return refused;
  std::string scheme = string_at(jws.header, "io.cncf.notary.signingScheme");
  if (scheme != "notary.x509" && scheme != "notary.x509.signingAuthority") {
    return Refusal{scheme.empty() ? Reason::malformed : Reason::unsupported, "signing scheme '" + scheme + "' is not notary.x509"};
  }
  return std::nullopt;
}

// The x5chain of the unprotected header, leaf first.
Step read_chain(const Jws& jws, std::vector<X509Ptr>& certs) {
  const json* chain = nullptr;
  for (const char* key : {"x5chain", "x5c"}) {
    if (jws.unprotected.is_object() && jws.unprotected.contains(key) && jws.unprotected[key].is_array()) {
      chain = &jws.unprotected[key];
    }
  }
  if (!chain || chain->empty()) return malformed("no x5chain certificate chain in the unprotected header");
  for (const auto& c : *chain) {
    auto der = c.is_string() ? base64_decode(c.get<std::string>(), false) : std::nullopt;
    if (!der) return malformed("an x5chain entry is not base64");
    const auto* p = reinterpret_cast<const unsigned char*>(der->data());
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der->size())));
    if (!cert) {
      ERR_clear_error();
      return malformed("an x5chain entry is not a DER certificate");
    }
    certs.push_back(std::move(cert));
  }
  if (!X509_get0_pubkey(certs.front().get())) return malformed("the signing certificate's public key is unreadable");
  return std::nullopt;
}

// The signature first, with the leaf's own key: is the envelope intact?
Step check_signature(const Jws& jws, EVP_PKEY* leaf_key, const std::string& subject) {
  std::string signing_input = jws.protected_b64 + "." + jws.payload_b64;
  bool ok = false;
  int key_id = EVP_PKEY_get_base_id(leaf_key);
  if (jws.spec.rsa_pss) {
    ok = (key_id == EVP_PKEY_RSA || key_id == EVP_PKEY_RSA_PSS) &&
         verify_raw(leaf_key, jws.spec.md, RsaPadding::pss, RSA_PSS_SALTLEN_DIGEST, signing_input, jws.signature);
  } else if (key_id == EVP_PKEY_EC && ec_key_type(leaf_key) == jws.spec.ec_type) {
    std::string der = ecdsa_raw_to_der(jws.signature);
    ok = !der.empty() && verify_raw(leaf_key, jws.spec.md, RsaPadding::none, 0, signing_input, der);
  }
  if (ok) return std::nullopt;
  return Refusal{Reason::bad_signature,
                 jws.alg + " signature does not verify with the signing certificate's key (" + subject + "): tampered or corrupt"};
}

// The chain to the configured trust store at `now`, and a leaf made for code signing.
Step check_chain(const std::vector<X509Ptr>& certs, const LoadedTrustEntry& entry, const std::string& subject,
                 std::chrono::system_clock::time_point now) {
  if (!entry.notation_store) return Refusal{Reason::bad_chain, "no trust store configured"};
  X509* leaf = certs.front().get();
  std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> untrusted(sk_X509_new_null(),
                                                                      [](STACK_OF(X509)* s) { sk_X509_free(s); });
  for (std::size_t i = 1; i < certs.size(); ++i) sk_X509_push(untrusted.get(), certs[i].get());
  std::unique_ptr<X509_STORE_CTX, void (*)(X509_STORE_CTX*)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!ctx || X509_STORE_CTX_init(ctx.get(), entry.notation_store.get(), leaf, untrusted.get()) != 1) {
    return Refusal{Reason::bad_chain, "cannot set up chain verification: " + openssl_error("unknown error")};
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return Refusal{Reason::bad_chain, "the chain of " + subject + " does not verify to " + entry.notation_store_path + ": " +
                                          X509_verify_cert_error_string(err)};
  }
  std::uint32_t flags = X509_get_extension_flags(leaf);
  if (((flags & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(leaf) & XKU_CODE_SIGN)) ||
      ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE))) {
    return Refusal{Reason::bad_chain, "the signing certificate " + subject + " is not for code signing (extended key usage / key usage)"};
  }
  return std::nullopt;
}

Step check_identity(X509* leaf, const LoadedTrustEntry& entry, const std::string& subject) {
  auto rdns = cert_rdns(leaf);
  for (const auto& id : entry.notation_identities) {
    if (id.any || id.rdns == rdns) return std::nullopt;
  }
  std::string ids;
  for (const auto& id : entry.notation_identities) ids += (ids.empty() ? "" : ", ") + id.text;
  return Refusal{Reason::wrong_identity, "signer " + subject + " matches none of the identities [" + ids + "]"};
}

Step check_expiry(const json& header, std::chrono::system_clock::time_point now) {
  std::string expiry = string_at(header, "io.cncf.notary.expiry");
  if (expiry.empty()) return std::nullopt;
  auto when = parse_rfc3339(expiry);
  if (!when) return malformed("io.cncf.notary.expiry " + expiry + " is not RFC 3339");
  if (*when < now) return Refusal{Reason::expired, "io.cncf.notary.expiry " + expiry + " has passed"};
  return std::nullopt;
}

// Only now is the payload believed: it must name this manifest, digest and size.
Step check_payload(const Jws& jws, std::string_view digest, std::int64_t size) {
  const std::string cty = string_at(jws.header, "cty");
  if (cty != "application/vnd.cncf.notary.payload.v1+json") {
    return Refusal{Reason::wrong_type, "cty is '" + cty + "', not application/vnd.cncf.notary.payload.v1+json"};
  }
  auto payload = parse_json(jws.payload);
  const json* target = payload ? object_at(*payload, "targetArtifact") : nullptr;
  if (!target) return malformed("the payload has no targetArtifact");
  std::string target_digest = string_at(*target, "digest");
  if (target_digest != digest) {
    return Refusal{Reason::replay,
                   "signed for " + (target_digest.empty() ? std::string("no digest") : target_digest) + ", not " + std::string(digest)};
  }
  auto target_size = target->find("size");
  if (size >= 0 && (target_size == target->end() || !target_size->is_number_integer() || target_size->get<std::int64_t>() != size)) {
    return Refusal{Reason::replay, "targetArtifact.size is not the manifest's " + std::to_string(size) + " bytes"};
  }
  return std::nullopt;
}

}  // namespace

SignatureResult verify_notation(const Envelope& envelope, std::string_view digest, std::int64_t size,
                                const LoadedTrustEntry& entry, std::chrono::system_clock::time_point now) {
  SignatureResult r = make_result(Format::notation, "notation " + short_digest(envelope.artifact_digest), Reason::malformed, "");
  auto refuse = [&r](Refusal refusal) {
    r.reason = refusal.reason;
    r.detail = std::move(refusal.detail);
    return r;
  };
  Jws jws;
  std::vector<X509Ptr> certs;
  if (auto refused = read_jws(envelope, jws)) return refuse(std::move(*refused));
  if (auto refused = check_header(jws)) return refuse(std::move(*refused));
  if (auto refused = read_chain(jws, certs)) return refuse(std::move(*refused));
  X509* leaf = certs.front().get();
  EVP_PKEY* leaf_key = X509_get0_pubkey(leaf);
  const std::string subject = subject_text(leaf);
  r.key = subject;
  if (auto refused = check_signature(jws, leaf_key, subject)) return refuse(std::move(*refused));
  if (auto refused = check_chain(certs, entry, subject, now)) return refuse(std::move(*refused));
  if (auto refused = check_identity(leaf, entry, subject)) return refuse(std::move(*refused));
  if (auto refused = check_expiry(jws.header, now)) return refuse(std::move(*refused));
  if (auto refused = check_payload(jws, digest, size)) return refuse(std::move(*refused));
  r.reason = Reason::valid;
  r.fingerprint = spki_fingerprint(leaf_key);
  r.detail = jws.alg + " signature by " + subject + " (key " + r.fingerprint + "), chain verified to " + entry.notation_store_path;
  return r;
}

}  // namespace ocigate::signature
