#pragma once
// Manifests and indexes (OCI image spec 1.1, Docker schema2), parsed for what a mirror needs:
// which media type, which blobs it references, which platforms an index offers.
// The exact bytes are always kept and served elsewhere; this is a read-only view.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"

namespace ocigate::oci {

namespace media {
inline constexpr std::string_view oci_manifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view oci_index = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view oci_config = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view docker_config = "application/vnd.docker.container.image.v1+json";
}  // namespace media

// Value of the Accept header ocigate sends upstream for manifests: all four types above.
std::string_view manifest_accept_header();

inline constexpr std::size_t max_manifest_size = 4 * 1024 * 1024;

struct Descriptor {
  std::string media_type;
  std::string digest;
  std::int64_t size = 0;
  std::string artifact_type;
  std::map<std::string, std::string> annotations;
  // Index entries only:
  std::string platform_os, platform_architecture, platform_variant;
};

enum class ManifestKind { image, index };

struct Manifest {
  ManifestKind kind = ManifestKind::image;
  std::string media_type;            // from the body's mediaType, else the Content-Type given
  std::string artifact_type;
  std::optional<Descriptor> config;  // images
  std::vector<Descriptor> layers;    // images
  std::vector<Descriptor> manifests; // indexes
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;

  // Every blob digest an image manifest references (config + layers).
  std::vector<std::string> blob_digests() const;
};

// Parses bytes served with content_type (may be empty). Fails with Errc::manifest_invalid when
// the body is not JSON, is not one of the supported kinds, or has malformed descriptors
// (bad digest, negative size). Accepts a body whose mediaType is absent when content_type
// names the kind. Schema 1 manifests are refused (manifest_invalid, "schema 1 is not supported").
Result<Manifest> parse_manifest(std::string_view bytes, std::string_view content_type);

// True when `accept` (an Accept header value, may list several types with q-values, or be empty)
// admits media_type. Empty or "*/*" accepts everything.
bool accepts(std::string_view accept, std::string_view media_type);

}  // namespace ocigate::oci
