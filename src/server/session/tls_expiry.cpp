#include "session/tls_expiry.hpp"

#include <ctime>
#include <memory>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ocigate/server/log.hpp"

namespace ocigate::server {

Result<std::int64_t> certificate_not_after(const std::string& pem_path) {
  std::unique_ptr<BIO, decltype(&BIO_free)> file(BIO_new_file(pem_path.c_str(), "r"), BIO_free);
  if (!file) return Error{Errc::config_invalid, "cannot open certificate " + pem_path};
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(file.get(), nullptr, nullptr, nullptr),
                                                   X509_free);
  if (!cert) return Error{Errc::config_invalid, "no PEM certificate in " + pem_path};
  std::tm not_after{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &not_after) != 1) {
    return Error{Errc::config_invalid, "unreadable notAfter in " + pem_path};
  }
  return static_cast<std::int64_t>(timegm(&not_after));  // ASN1_TIME_to_tm yields UTC
}

void export_certificate_expiry(const std::string& cert_file, metrics::Metrics& metrics) {
  auto not_after = certificate_not_after(cert_file);
  if (!not_after) {
    log::warn("certificate expiry not exported", {{"error", not_after.error().message}});
    return;
  }
  metrics.set_tls_certificate_expiry(static_cast<double>(*not_after));
}

}  // namespace ocigate::server
