// Digests as clients and upstreams send them, and the hasher they select.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ocigate/oci/digest.hpp"
#include "ocigate/oci/reference.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace ocigate::oci;

  auto digest = Digest::parse(text);
  if (digest) {
    // A parsed digest is canonical: it prints back to the input, parses again to itself, looks
    // like a digest, and names an algorithm the hasher knows.
    if (digest->str() != text) std::abort();
    auto again = Digest::parse(digest->str());
    if (!again || !(*again == *digest)) std::abort();
    if (!looks_like_digest(text)) std::abort();
    Hasher hasher(digest->algorithm);
    hasher.update(text);
    const auto hashed = hasher.finish();
    auto computed = Digest::parse(hashed);
    if (!computed || computed->algorithm != digest->algorithm) std::abort();
  }
  const auto sha = sha256_digest(text);
  if (!Digest::parse(sha)) std::abort();
  return 0;
}
