#include "ocigate/oci/digest.hpp"

#include <openssl/evp.h>

namespace ocigate::oci {

namespace {

bool lower_hex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

const EVP_MD* md_for(std::string_view algorithm) {
  return algorithm == "sha512" ? EVP_sha512() : EVP_sha256();
}

}  // namespace

std::optional<Digest> Digest::parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto algorithm = text.substr(0, colon);
  auto hex = text.substr(colon + 1);
  std::size_t want = algorithm == "sha256" ? 64 : algorithm == "sha512" ? 128 : 0;
  if (want == 0 || hex.size() != want || !lower_hex(hex)) return std::nullopt;
  return Digest{std::string(algorithm), std::string(hex)};
}

struct Hasher::Impl {
  EVP_MD_CTX* ctx = nullptr;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Hasher::Hasher(std::string_view algorithm)
    : impl_(std::make_unique<Impl>()), algorithm_(algorithm == "sha512" ? "sha512" : "sha256") {
  impl_->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(impl_->ctx, md_for(algorithm_), nullptr);
}

Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(const void* data, std::size_t size) { EVP_DigestUpdate(impl_->ctx, data, size); }

std::string Hasher::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(impl_->ctx, out, &length);
  static constexpr char digits[] = "0123456789abcdef";
  std::string text = algorithm_ + ":";
  for (unsigned i = 0; i < length; ++i) {
    text.push_back(digits[out[i] >> 4]);
    text.push_back(digits[out[i] & 15]);
  }
  return text;
}

std::string sha256_digest(std::string_view bytes) {
  Hasher hasher("sha256");
  hasher.update(bytes);
  return hasher.finish();
}

}  // namespace ocigate::oci
