// The serving certificate's notAfter, read for ocigate_tls_certificate_expiry_timestamp_seconds.
#include "session/tls_expiry.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "support.hpp"

namespace ocigate::server {
namespace {

using ::ocigate::test::TempDir;

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Cert = std::unique_ptr<X509, decltype(&X509_free)>;

Key ec_key() { return Key(EVP_EC_gen("P-256"), EVP_PKEY_free); }

// A self-signed certificate valid until not_after (unix seconds), as PEM text.
std::string certificate_pem(EVP_PKEY* key, std::int64_t not_after, const char* name) {
  Cert cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(not_after));
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name), -1, -1, 0);
  X509_set_issuer_name(cert.get(), subject);
  X509_set_pubkey(cert.get(), key);
  EXPECT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(out.get(), cert.get());
  char* data = nullptr;
  const long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string private_key_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(out.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// The value of the unlabelled expiry sample in /metrics text, or -1 when there is none.
double exported_expiry(const metrics::Metrics& metrics) {
  const std::string name = "\nocigate_tls_certificate_expiry_timestamp_seconds ";
  const std::string text = "\n" + metrics.render();
  const auto at = text.find(name);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size()));
}

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.path() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// 2027-03-01T12:34:56Z, an X.509 UTCTime (years before 2050).
constexpr std::int64_t march_2027 = 1803904496;
// 2051-01-01T00:00:00Z: from 2050 on X.509 uses GeneralizedTime, a different ASN.1 encoding.
constexpr std::int64_t january_2051 = 2556144000;

TEST(CertificateNotAfter, ReadsTheExactSecondOfAUtcTimeCertificate) {
  TempDir dir;
  auto key = ec_key();
  auto result = certificate_not_after(write(dir, "tls.crt", certificate_pem(key.get(), march_2027, "mirror")));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(*result, march_2027);
}

TEST(CertificateNotAfter, ReadsGeneralizedTimeAfter2049) {
  TempDir dir;
  auto key = ec_key();
  auto result = certificate_not_after(write(dir, "tls.crt", certificate_pem(key.get(), january_2051, "mirror")));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(*result, january_2051);
}

TEST(CertificateNotAfter, TakesTheLeafOfAChainFile) {
  // cert_file is a chain (leaf first, as use_certificate_chain_file wants): the leaf is what expires
  // in front of clients, whatever the intermediate says.
  TempDir dir;
  auto key = ec_key();
  auto path = write(dir, "chain.crt",
                    certificate_pem(key.get(), march_2027, "leaf") + certificate_pem(key.get(), january_2051, "ca"));
  auto result = certificate_not_after(path);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(*result, march_2027);
}

TEST(CertificateNotAfter, RefusesMissingFilesKeysAndGarbage) {
  TempDir dir;
  auto key = ec_key();
  auto missing = certificate_not_after(dir.path() + "/absent.crt");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("absent.crt"), std::string::npos) << missing.error().message;
  EXPECT_FALSE(certificate_not_after(write(dir, "tls.key", private_key_pem(key.get()))));
  EXPECT_FALSE(certificate_not_after(write(dir, "junk.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n")));
  EXPECT_FALSE(certificate_not_after(write(dir, "empty.crt", "")));
}

TEST(CertificateExpiryGauge, ExportedOnlyOnceACertificateWasRead) {
  TempDir dir;
  auto key = ec_key();
  metrics::Metrics metrics;
  EXPECT_EQ(exported_expiry(metrics), -1) << "no TLS, no sample: an expiry alert must not read 0 as long expired";
  export_certificate_expiry(write(dir, "tls.crt", certificate_pem(key.get(), march_2027, "mirror")), metrics);
  EXPECT_EQ(exported_expiry(metrics), static_cast<double>(march_2027)) << metrics.render();
  export_certificate_expiry(dir.path() + "/absent.crt", metrics);  // a failed read keeps the last value
  EXPECT_EQ(exported_expiry(metrics), static_cast<double>(march_2027));
  export_certificate_expiry(write(dir, "renewed.crt", certificate_pem(key.get(), january_2051, "mirror")), metrics);
  EXPECT_EQ(exported_expiry(metrics), static_cast<double>(january_2051));
}

}  // namespace
}  // namespace ocigate::server
