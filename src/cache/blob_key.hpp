#pragma once
// A blob's digest as the index keeps it in memory: 32 bytes instead of a 71-character string.
// Internal to ocigate_cache.
//
// A canonical SHA-256 digest ("sha256:" and 64 lowercase hex digits, all the server stores) is its 32
// raw bytes. Any other string (a sha512 digest, a name a test made up) is keyed by the SHA-256 of the
// string itself, and its owner keeps the string beside it (Index::names_): told apart by lookup, never
// by the bytes, since no string is known whose SHA-256 is a given digest.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace ocigate::cache {

struct BlobKey {
  std::array<std::uint8_t, 32> bytes{};
  bool operator==(const BlobKey&) const = default;
};

// The bytes are a digest already: the first eight are as good a hash as any.
struct BlobKeyHash {
  std::size_t operator()(const BlobKey& key) const noexcept {
    std::size_t hash = 0;
    std::memcpy(&hash, key.bytes.data(), sizeof hash);
    return hash;
  }
};

// Whether digest is "sha256:" and 64 lowercase hex digits.
bool is_sha256_digest(std::string_view digest);
BlobKey blob_key(std::string_view digest);
// The digest of a key made from a canonical SHA-256 digest.
std::string sha256_digest_of(const BlobKey& key);

}  // namespace ocigate::cache
