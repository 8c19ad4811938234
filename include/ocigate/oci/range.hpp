#pragma once
// Single byte-range requests (RFC 9110 §14). Multi-range requests are not served as ranges.

#include <cstdint>
#include <string_view>

namespace ocigate::oci {

struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
  std::uint64_t length() const { return last - first + 1; }
};

enum class RangeResult {
  none,           // no header, a multi-range, or a syntactically invalid header: serve the whole body (200)
  satisfiable,    // serve `range` with 206
  unsatisfiable,  // 416 with Content-Range: bytes */size
};

struct ParsedRange {
  RangeResult result = RangeResult::none;
  ByteRange range;
};

// header: the Range header value ("bytes=0-99", "bytes=100-", "bytes=-500"); size: total size.
ParsedRange parse_range(std::string_view header, std::uint64_t size);

}  // namespace ocigate::oci
