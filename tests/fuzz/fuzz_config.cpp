// The configuration file (YAML) and the size and duration values inside it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ocigate/common/time.hpp"
#include "ocigate/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // parse() never throws: every refusal is a Result.
  (void)ocigate::config::parse(text, "fuzz.yaml");
  if (size <= 64) {
    (void)ocigate::config::parse_size(text);
    (void)ocigate::parse_duration(text);
  }
  return 0;
}
