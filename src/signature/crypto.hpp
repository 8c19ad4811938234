#pragma once
// OpenSSL helpers private to the signature module: owning pointers, fingerprints, errors.

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace ocigate::signature::detail {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// The last OpenSSL error as text (and the queue cleared), or `fallback`.
std::string openssl_error(std::string_view fallback);

// "sha256:<hex>" of the key's DER SubjectPublicKeyInfo; "" on failure.
std::string spki_fingerprint(EVP_PKEY* pkey);

// Verifies with an explicit digest (nullptr for Ed25519) and optional RSA padding.
enum class RsaPadding { none, pkcs1, pss };
bool verify_raw(EVP_PKEY* pkey, const EVP_MD* md, RsaPadding padding, int pss_saltlen, std::string_view data,
                std::string_view signature);

// "CN=a, O=b" one-line subject of a certificate (RFC 2253 order as in the certificate).
std::string subject_text(X509* cert);

// Raw digests and hex.
std::string sha256_raw(std::string_view data);
std::string hex_encode(std::string_view bytes);
std::optional<std::string> hex_decode(std::string_view hex);  // lower or upper case; nullopt otherwise
std::string base64_encode(std::string_view bytes);              // standard alphabet, padded

// Seconds since the epoch as a time point; nullopt outside 1970..2223, which system_clock's
// nanoseconds cannot all hold (a log or an SCT may claim any 64-bit time).
std::optional<std::chrono::system_clock::time_point> epoch_seconds(std::int64_t seconds);

// A DER certificate; nullptr when it is not one (or has trailing bytes).
X509Ptr parse_der_certificate(std::string_view der);
// The certificate's DER encoding ("" on failure).
std::string certificate_der(X509* cert);
// The DER SubjectPublicKeyInfo of a key ("" on failure).
std::string spki_der(EVP_PKEY* pkey);

}  // namespace ocigate::signature::detail
