#pragma once
// Content digests ("sha256:<64 hex>") and an incremental SHA-256 over OpenSSL EVP.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace ocigate::oci {

// A digest we can verify. Only sha256 and sha512 are accepted; the hex part must be
// lowercase and of the algorithm's exact length. Anything else is DIGEST_INVALID.
struct Digest {
  std::string algorithm;  // "sha256" or "sha512"
  std::string hex;        // lowercase hex

  static std::optional<Digest> parse(std::string_view text);
  std::string str() const { return algorithm + ":" + hex; }
  bool operator==(const Digest&) const = default;
};

// Incremental hasher for the algorithm of a digest. Cheap to move; not copyable.
class Hasher {
 public:
  explicit Hasher(std::string_view algorithm = "sha256");  // "sha256" or "sha512"
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // Finishes and returns "<algorithm>:<hex>". The hasher may not be updated afterwards.
  std::string finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string algorithm_;
};

// One-shot: "sha256:<hex>" of bytes.
std::string sha256_digest(std::string_view bytes);

}  // namespace ocigate::oci
