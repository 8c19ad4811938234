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

std::size_t hex_length(std::string_view algorithm) {
  if (algorithm == "sha256") return 64;
  if (algorithm == "sha512") return 128;
  return 0;
}

}  // namespace

std::optional<Digest> Digest::parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto algorithm = text.substr(0, colon);
  auto hex = text.substr(colon + 1);
  std::size_t want = hex_length(algorithm);
  if (want == 0 || hex.size() != want || !lower_hex(hex)) return std::nullopt;
  return Digest{std::string(algorithm), std::string(hex)};
}

// A moved-from hasher, or one whose OpenSSL context failed, is inert rather than a crash: its
// finish() returns "", which never equals a digest, so verification fails closed.
struct Hasher::Impl {
  EVP_MD_CTX* ctx = nullptr;
  std::string result;  // set by finish(); later calls return it again
  bool finished = false;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Hasher::Hasher(std::string_view algorithm)
    : impl_(std::make_unique<Impl>()), algorithm_(algorithm == "sha512" ? "sha512" : "sha256") {
  const EVP_MD* md = algorithm_ == "sha512" ? EVP_sha512() : EVP_sha256();
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx && EVP_DigestInit_ex(impl_->ctx, md, nullptr) != 1) {
    EVP_MD_CTX_free(impl_->ctx);
    impl_->ctx = nullptr;
  }
}

Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(const void* data, std::size_t size) {
  if (!impl_ || !impl_->ctx || impl_->finished || size == 0) return;
  if (EVP_DigestUpdate(impl_->ctx, data, size) != 1) {
    // Poison the hasher: an empty result can never equal an expected digest.
    EVP_MD_CTX_free(impl_->ctx);
    impl_->ctx = nullptr;
  }
}

std::string Hasher::finish() {
  if (!impl_) return {};
  if (impl_->finished) return impl_->result;
  impl_->finished = true;
  if (!impl_->ctx) return {};
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, out, &length) != 1) return {};
  static constexpr char digits[] = "0123456789abcdef";
  std::string text = algorithm_ + ":";
  for (unsigned i = 0; i < length; ++i) {
    text.push_back(digits[out[i] >> 4]);
    text.push_back(digits[out[i] & 15]);
  }
  impl_->result = text;
  return text;
}

std::string sha256_digest(std::string_view bytes) {
  Hasher hasher("sha256");
  hasher.update(bytes);
  return hasher.finish();
}

}  // namespace ocigate::oci
