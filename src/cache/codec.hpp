#pragma once
// Key layout and value encodings of the cache database. Internal to ocigate_cache (and its tests).
//
//   m/<digest>                       manifest: u32 media type length, media type, bytes
//   t/<repo_key>\0<tag>              tag: i64 fetched_at, u32 digest length, digest, media type
//   b/<digest>                       committed blob meta (BlobMeta)
//   r/<space>\0<key>                 record
//
// A blob's bytes are one plain file, blobs/<last 2 of 16 hex>/<writer id, 16 hex> under the cache
// directory, named by the writer that filled it: writer ids count up, so the 256 directories fill
// evenly and none holds more than a 256th of a big cache. A meta owns its file; a file no meta owns
// (a writer killed before its commit, an eviction cut short by a crash) is deleted by open(), which
// lists the directories. Earlier versions kept every file in blobs/ itself; open() moves them.
//
// Earlier versions stored blobs as chunks under c/ with staging markers under w/, and version-1
// metas; open() drops all three (the blobs are fetched again).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ocigate/cache/store.hpp"

namespace ocigate::cache::codec {

struct BlobMeta {
  std::uint64_t size = 0;
  std::uint64_t writer_id = 0;
  std::uint64_t last_access = 0;  // monotonic tick: wall-clock milliseconds, strictly increasing per touch
};

inline constexpr std::string_view manifest_prefix = "m/";
inline constexpr std::string_view tag_prefix = "t/";
inline constexpr std::string_view meta_prefix = "b/";
inline constexpr std::string_view legacy_chunk_prefix = "c/";
inline constexpr std::string_view legacy_marker_prefix = "w/";
inline constexpr std::string_view record_prefix = "r/";

std::string manifest_key(std::string_view digest);
std::string tag_key(std::string_view repo_key, std::string_view tag);
std::string meta_key(std::string_view digest);
std::string record_key(std::string_view space, std::string_view key);

// The file name of a writer's blob file, and back; nullopt for any other name.
std::string blob_file_name(std::uint64_t writer_id);
// The directory under blobs/ that holds it ("2a"), and its path under blobs/ ("2a/000000000000002a").
std::string blob_file_dir(std::uint64_t writer_id);
std::string blob_file_path(std::uint64_t writer_id);
std::optional<std::uint64_t> parse_blob_file_name(std::string_view name);

std::string encode_manifest(const ManifestEntry& entry);
std::optional<ManifestEntry> decode_manifest(std::string_view value);
// Size of the manifest bytes inside an encoded value, without copying them.
std::optional<std::uint64_t> manifest_bytes_size(std::string_view value);

std::string encode_tag(const TagEntry& entry);
std::optional<TagEntry> decode_tag(std::string_view value);

std::string encode_meta(const BlobMeta& meta);
std::optional<BlobMeta> decode_meta(std::string_view value);

}  // namespace ocigate::cache::codec
