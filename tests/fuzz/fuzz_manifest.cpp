// Manifest, index and config JSON from an upstream, with a Content-Type picked by the first byte,
// and Accept headers matched against the media type found.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ocigate/oci/digest.hpp"
#include "ocigate/oci/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ocigate::oci;
  static constexpr std::array<std::string_view, 7> content_types = {
      "", media::oci_manifest, media::oci_index, media::docker_manifest, media::docker_list,
      "application/vnd.docker.distribution.manifest.v1+prettyjws", "application/json"};
  std::string_view content_type;
  if (size > 0) {
    content_type = content_types[data[0] % content_types.size()];
    ++data;
    --size;
  }
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  auto parsed = parse_manifest(bytes, content_type);
  if (parsed) {
    for (const auto& digest : parsed->blob_digests()) {
      if (!Digest::parse(digest)) std::abort();  // descriptors were validated
    }
    for (const auto& d : parsed->layers) {
      if (d.size < 0) std::abort();
    }
    for (const auto& d : parsed->manifests) {
      if (d.size < 0 || !Digest::parse(d.digest)) std::abort();
    }
    (void)accepts(bytes.substr(0, 256), parsed->media_type);
  }
  // The same bytes as an Accept header.
  (void)accepts(bytes, media::oci_manifest);
  (void)accepts(bytes, content_type);
  return 0;
}
