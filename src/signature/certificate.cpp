// Fulcio certificates: who they name, their chain to a trusted CA at a given time, and their
// embedded SCTs.

#include <openssl/ct.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "certificate.hpp"
#include "crypto.hpp"
#include "ocigate/signature/keyless.hpp"

namespace ocigate::signature {

using namespace detail;

namespace {

constexpr const char* oid_issuer_v2 = "1.3.6.1.4.1.57264.1.8";  // DER UTF8String
constexpr const char* oid_issuer_v1 = "1.3.6.1.4.1.57264.1.1";  // raw bytes (deprecated)
constexpr const char* oid_username = "1.3.6.1.4.1.57264.1.7";   // SAN OtherName, UTF8String

struct NamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
struct ObjectFree {
  void operator()(ASN1_OBJECT* p) const { ASN1_OBJECT_free(p); }
};
struct SctsFree {
  void operator()(STACK_OF(SCT)* p) const { SCT_LIST_free(p); }
};
struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
struct StackFree {
  void operator()(STACK_OF(X509)* p) const { sk_X509_free(p); }
};

std::string asn1_text(const ASN1_STRING* s) {
  if (!s) return {};
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s)));
}

std::unique_ptr<ASN1_OBJECT, ObjectFree> oid(const char* text) { return std::unique_ptr<ASN1_OBJECT, ObjectFree>(OBJ_txt2obj(text, 1)); }

// The extension's value (the bytes inside its OCTET STRING), or nullopt when absent.
std::optional<std::string> extension_value(X509* cert, const char* oid_text) {
  auto obj = oid(oid_text);
  int index = obj ? X509_get_ext_by_OBJ(cert, obj.get(), -1) : -1;
  if (index < 0) return std::nullopt;
  return asn1_text(X509_EXTENSION_get_data(X509_get_ext(cert, index)));
}

std::string oidc_issuer(X509* cert) {
  if (auto v2 = extension_value(cert, oid_issuer_v2)) {
    const auto* p = reinterpret_cast<const unsigned char*>(v2->data());
    ASN1_UTF8STRING* s = d2i_ASN1_UTF8STRING(nullptr, &p, static_cast<long>(v2->size()));
    bool whole = s && p == reinterpret_cast<const unsigned char*>(v2->data()) + v2->size();
    std::string out = whole ? asn1_text(s) : std::string();
    ASN1_UTF8STRING_free(s);
    ERR_clear_error();
    if (whole) return out;
  }
  return extension_value(cert, oid_issuer_v1).value_or("");
}

// sigstore-go's order: the first URI, else the first email, else the Fulcio username.
void read_san(X509* cert, CertificateIdentity& id) {
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  ERR_clear_error();
  if (!names) return;
  auto username = oid(oid_username);
  std::string uri, email, user;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_URI && uri.empty()) uri = asn1_text(name->d.uniformResourceIdentifier);
    if (name->type == GEN_EMAIL && email.empty()) email = asn1_text(name->d.rfc822Name);
    if (name->type == GEN_OTHERNAME && user.empty() && username &&
        OBJ_cmp(name->d.otherName->type_id, username.get()) == 0 && name->d.otherName->value &&
        name->d.otherName->value->type == V_ASN1_UTF8STRING) {
      user = asn1_text(name->d.otherName->value->value.utf8string);
    }
  }
  if (!uri.empty()) id = {uri, "uri", id.issuer};
  else if (!email.empty()) id = {email, "email", id.issuer};
  else if (!user.empty()) id = {user, "username", id.issuer};
}

// The precertificate TBS an SCT signs: the leaf's TBSCertificate without the SCT list extension.
std::string precert_tbs(X509* leaf) {
  X509Ptr copy(X509_dup(leaf));
  if (!copy) return {};
  int index = X509_get_ext_by_NID(copy.get(), NID_ct_precert_scts, -1);
  if (index < 0) return {};
  X509_EXTENSION_free(X509_delete_ext(copy.get(), index));
  int len = i2d_re_X509_tbs(copy.get(), nullptr);
  if (len <= 0) return (ERR_clear_error(), std::string());
  std::string out(static_cast<std::size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  if (i2d_re_X509_tbs(copy.get(), &p) != len) return (ERR_clear_error(), std::string());
  return out;
}

void put_uint(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

// RFC 6962 3.2 digitally-signed struct for a precert entry.
std::string sct_signed_data(const SCT* sct, std::string_view issuer_key_hash, std::string_view tbs) {
  std::string out;
  out += '\0';  // v1
  out += '\0';  // certificate_timestamp
  put_uint(out, SCT_get_timestamp(sct), 8);
  put_uint(out, 1, 2);  // precert_entry
  out.append(issuer_key_hash);
  put_uint(out, tbs.size(), 3);
  out.append(tbs);
  unsigned char* ext = nullptr;
  std::size_t ext_len = SCT_get0_extensions(sct, &ext);
  put_uint(out, ext_len, 2);
  if (ext_len > 0) out.append(reinterpret_cast<const char*>(ext), ext_len);
  return out;
}

}  // namespace

Result<CertificateIdentity> certificate_identity(std::string_view der) {
  X509Ptr cert = parse_der_certificate(der);
  if (!cert) return Error{Errc::manifest_invalid, "not a DER certificate"};
  return identity_of(cert.get());
}

namespace detail {

CertificateIdentity identity_of(X509* cert) {
  CertificateIdentity id;
  id.issuer = oidc_issuer(cert);
  read_san(cert, id);
  return id;
}

ChainResult verify_fulcio_chain(X509* leaf, const TrustedRoot& root, std::chrono::system_clock::time_point when) {
  ChainResult out;
  std::string first_error;
  for (const auto& ca : root.certificate_authorities) {
    std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
    std::unique_ptr<STACK_OF(X509), StackFree> intermediates(sk_X509_new_null());
    std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
    if (!store || !intermediates || !ctx || X509_STORE_add_cert(store.get(), ca.chain.back().get()) != 1) {
      out.error = "cannot set up chain verification: " + openssl_error("out of memory");
      return out;
    }
    for (std::size_t i = 0; i + 1 < ca.chain.size(); ++i) sk_X509_push(intermediates.get(), ca.chain[i].get());
    // The CA's last certificate is its trust anchor even when it is not self-signed.
    X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, intermediates.get()) != 1) {
      out.error = "cannot set up chain verification: " + openssl_error("unknown error");
      return out;
    }
    X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(when));
    if (X509_verify_cert(ctx.get()) != 1) {
      int err = X509_STORE_CTX_get_error(ctx.get());
      ERR_clear_error();
      if (first_error.empty()) first_error = ca.name + ": " + X509_verify_cert_error_string(err);
      continue;
    }
    if (!ca.valid_for.contains(when)) {
      // The trusted root retired (or had not yet started) this CA at the signing time.
      if (first_error.empty() || first_error.find("outside") == std::string::npos) {
        first_error = ca.name + " is valid " + ca.valid_for.text() + ", outside the signing time";
      }
      continue;
    }
    STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
    X509* issuer = sk_X509_num(chain) > 1 ? sk_X509_value(chain, 1) : nullptr;
    if (issuer) {
      X509_up_ref(issuer);
      out.issuer.reset(issuer);
    }
    out.ca = ca.name;
    return out;
  }
  out.error = first_error.empty() ? "the trusted root lists no certificate authority" : first_error;
  return out;
}

}  // namespace detail

Result<std::string> verify_embedded_sct(X509* leaf, X509* issuer, const TrustedRoot& root) {
  std::unique_ptr<STACK_OF(SCT), SctsFree> scts(
      static_cast<STACK_OF(SCT)*>(X509_get_ext_d2i(leaf, NID_ct_precert_scts, nullptr, nullptr)));
  ERR_clear_error();
  if (!scts || sk_SCT_num(scts.get()) == 0) return Error{Errc::denied, "the certificate has no embedded SCT"};
  if (!issuer) return Error{Errc::denied, "no issuing CA to compute the SCT's issuer key hash"};
  std::string tbs = precert_tbs(leaf);
  std::string issuer_key_hash = sha256_raw(spki_der(X509_get0_pubkey(issuer)));
  if (tbs.empty() || issuer_key_hash.empty()) return Error{Errc::denied, "cannot rebuild the precertificate: " + openssl_error("encoding failed")};
  std::string why;
  for (int i = 0; i < sk_SCT_num(scts.get()); ++i) {
    const SCT* sct = sk_SCT_value(scts.get(), i);
    unsigned char* id = nullptr;
    std::size_t id_len = SCT_get0_log_id(sct, &id);
    const TransparencyLog* log = root.ctlog(std::string_view(reinterpret_cast<const char*>(id), id_len));
    if (!log) {
      if (why.empty()) why = "SCT from unknown CT log " + hex_encode(std::string_view(reinterpret_cast<const char*>(id), id_len));
      continue;
    }
    auto when = epoch_seconds(static_cast<std::int64_t>(SCT_get_timestamp(sct) / 1000));
    if (SCT_get_version(sct) != SCT_VERSION_V1 || !when || !log->valid_for.contains(*when)) {
      why = "SCT of " + log->base_url + (when ? " at " + utc_text(*when) : std::string(" with an impossible timestamp")) +
            " is outside its validity (" + log->valid_for.text() + ")";
      continue;
    }
    unsigned char* sig = nullptr;
    std::size_t sig_len = SCT_get0_signature(sct, &sig);
    std::string_view signature(reinterpret_cast<const char*>(sig), sig_len);
    if (verify_raw(log->key.pkey.get(), EVP_sha256(), log->key.type == KeyType::rsa ? RsaPadding::pkcs1 : RsaPadding::none, 0,
                   sct_signed_data(sct, issuer_key_hash, tbs), signature)) {
      return log->base_url.empty() ? hex_encode(log->key_id) : log->base_url;
    }
    why = "SCT of " + log->base_url + " does not verify over this precertificate";
  }
  return Error{Errc::denied, why};
}

}  // namespace ocigate::signature
