#pragma once
// UTF-8 validation for image data (paths, file contents, labels) that ends up in JSON, whose
// serializer throws on invalid UTF-8, and in messages.

#include <cstddef>
#include <string_view>

namespace ocigate::utf8 {

// The length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid: a stray
// continuation byte, a truncated sequence, an overlong form, a surrogate or a code point past
// U+10FFFF.
inline std::size_t sequence_length(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const std::size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  if (len == 1) return 1;
  unsigned cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  for (std::size_t k = 1; k < len; ++k) {
    const auto next = static_cast<unsigned char>(s[i + k]);
    if ((next & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (next & 0x3F);
  }
  const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
  if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
  return len;
}

}  // namespace ocigate::utf8
