// Layer bytes as upstreams send them: the first input byte picks the declared media type (which
// may lie about the compression), the rest is the layer. The scan must end with a report, never
// a crash, a hang or unbounded memory, and the report must survive its JSON round trip.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

#include "ocigate/layers/merge.hpp"
#include "ocigate/layers/scan.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr std::array<std::string_view, 4> media_types = {
      "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.gzip"};
  const auto media_type = media_types[data[0] % media_types.size()];
  ocigate::layers::ScanLimits limits;
  limits.max_entries = 10'000;
  limits.content_budget = 1 << 20;
  const auto bytes = std::as_bytes(std::span(data + 1, size - 1));
  auto report = ocigate::layers::scan_bytes(media_type, bytes, "sha256:fuzz", limits);
  auto again = ocigate::layers::LayerReport::from_json(report.to_json());
  if (!again || !(*again == report)) std::abort();
  (void)ocigate::layers::merge({report, report});
  return 0;
}
