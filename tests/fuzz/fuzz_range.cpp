// Range headers against a body size taken from the first eight bytes of the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "ocigate/oci/range.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ocigate::oci;
  std::uint64_t body = 0;
  if (size >= sizeof body) {
    std::memcpy(&body, data, sizeof body);
    data += sizeof body;
    size -= sizeof body;
  }
  // Small sizes are the interesting ones; keep some of the huge ones too.
  if ((body >> 63) == 0) body %= 1u << 20;
  const std::string_view header(reinterpret_cast<const char*>(data), size);

  const ParsedRange parsed = parse_range(header, body);
  if (parsed.result == RangeResult::satisfiable) {
    const ByteRange& r = parsed.range;
    // Whatever the header says, a satisfiable range lies inside the body and is not empty.
    if (body == 0 || r.first > r.last || r.last >= body || r.length() == 0 || r.length() > body) std::abort();
  }
  return 0;
}
