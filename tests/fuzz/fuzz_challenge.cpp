// WWW-Authenticate values an upstream (or anything in between) may send.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ocigate/oci/challenge.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  const auto challenges = ocigate::oci::parse_challenges(header);
  std::size_t total = 0;
  for (const auto& c : challenges) {
    if (c.scheme.empty()) std::abort();
    for (char ch : c.scheme) {
      if (ch >= 'A' && ch <= 'Z') std::abort();  // schemes come back lower-cased
    }
    total += c.scheme.size();
    for (const auto& [key, value] : c.params) total += key.size() + value.size();
  }
  // Unquoting only ever shrinks: no output bigger than the input.
  if (total > header.size()) std::abort();
  return 0;
}
