// ZIP archives as an all.zip download might arrive (truncated, corrupt, hostile): opening
// and reading every entry must end in data or an error, within the limits, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ocigate/vuln/zip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ocigate::vuln::ZipLimits limits;
  limits.max_entry_bytes = 1 << 20;
  limits.max_total_bytes = 8 << 20;
  limits.max_entries = 10000;
  auto zip = ocigate::vuln::ZipReader::from_bytes(std::string(reinterpret_cast<const char*>(data), size), limits);
  if (!zip) return 0;
  for (const auto& entry : zip->entries()) (void)zip->read(entry);
  return 0;
}
