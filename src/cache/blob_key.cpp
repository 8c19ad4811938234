#include "blob_key.hpp"

#include "ocigate/oci/digest.hpp"

namespace ocigate::cache {

namespace {

constexpr std::string_view sha256_prefix = "sha256:";
constexpr char hex_digits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// hex must hold 64 lowercase hex digits.
BlobKey from_hex(std::string_view hex) {
  BlobKey key;
  for (std::size_t i = 0; i < key.bytes.size(); ++i) {
    key.bytes[i] = static_cast<std::uint8_t>(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
  }
  return key;
}

}  // namespace

bool is_sha256_digest(std::string_view digest) {
  if (digest.size() != sha256_prefix.size() + 64 || !digest.starts_with(sha256_prefix)) return false;
  for (char c : digest.substr(sha256_prefix.size())) {
    if (hex_value(c) < 0) return false;
  }
  return true;
}

BlobKey blob_key(std::string_view digest) {
  if (is_sha256_digest(digest)) return from_hex(digest.substr(sha256_prefix.size()));
  return from_hex(std::string_view(oci::sha256_digest(digest)).substr(sha256_prefix.size()));
}

std::string sha256_digest_of(const BlobKey& key) {
  std::string out(sha256_prefix);
  for (std::uint8_t byte : key.bytes) {
    out.push_back(hex_digits[byte >> 4]);
    out.push_back(hex_digits[byte & 0xf]);
  }
  return out;
}

}  // namespace ocigate::cache
