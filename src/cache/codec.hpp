#pragma once
// Key layout and value encodings of the cache database. Internal to ocigate_cache (and its tests).
//
//   m/<digest>                       manifest: u32 media type length, media type, bytes
//   t/<repo_key>\0<tag>              tag: i64 fetched_at, u32 digest length, digest, media type
//   b/<digest>                       committed blob meta (BlobMeta)
//   c/<writer id, 16 hex>/<index, 16 hex>   one chunk of a blob
//   w/<writer id, 16 hex>            staging marker: chunks of this writer may exist that no meta owns
//   r/<space>\0<key>                 record
//
// Fixed-width hex keeps chunks of one writer contiguous and in index order, so one DeleteRange
// drops all of them. The staging marker is written before the writer's first chunk; the WAL
// replays a prefix of the writes, so any chunk that survives a crash has its marker too, and
// open() can find orphans without reading chunk data.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ocigate/cache/store.hpp"

namespace ocigate::cache::codec {

struct BlobMeta {
  std::uint64_t size = 0;
  std::uint32_t chunk_size = 0;
  std::uint64_t writer_id = 0;
  std::uint64_t last_access = 0;  // monotonic tick: wall-clock milliseconds, strictly increasing per touch
};

inline constexpr std::string_view manifest_prefix = "m/";
inline constexpr std::string_view tag_prefix = "t/";
inline constexpr std::string_view meta_prefix = "b/";
inline constexpr std::string_view chunk_prefix = "c/";
inline constexpr std::string_view marker_prefix = "w/";
inline constexpr std::string_view record_prefix = "r/";

std::string manifest_key(std::string_view digest);
std::string tag_key(std::string_view repo_key, std::string_view tag);
std::string meta_key(std::string_view digest);
std::string chunk_key(std::uint64_t writer_id, std::uint64_t index);
// [first, last) covering every chunk of one writer.
std::string chunks_begin(std::uint64_t writer_id);
std::string chunks_end(std::uint64_t writer_id);
std::string marker_key(std::uint64_t writer_id);
std::string record_key(std::string_view space, std::string_view key);

// Parses the 16 hex digits after a marker prefix; nullopt if the key is not a well-formed marker.
std::optional<std::uint64_t> parse_marker_key(std::string_view key);

std::string encode_manifest(const ManifestEntry& entry);
std::optional<ManifestEntry> decode_manifest(std::string_view value);
// Size of the manifest bytes inside an encoded value, without copying them.
std::optional<std::uint64_t> manifest_bytes_size(std::string_view value);

std::string encode_tag(const TagEntry& entry);
std::optional<TagEntry> decode_tag(std::string_view value);

std::string encode_meta(const BlobMeta& meta);
std::optional<BlobMeta> decode_meta(std::string_view value);

}  // namespace ocigate::cache::codec
