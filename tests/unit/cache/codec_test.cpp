#include <gtest/gtest.h>

#include "../../../src/cache/codec.hpp"

namespace ocigate::cache::codec {
namespace {

TEST(CacheCodec, ChunkKeysSortByIndexAndStayInsideTheirWritersRange) {
  EXPECT_LT(chunk_key(7, 9), chunk_key(7, 10));
  EXPECT_LT(chunk_key(7, 0xff), chunk_key(7, 0x100));
  for (std::uint64_t index : {std::uint64_t{0}, std::uint64_t{1}, UINT64_MAX}) {
    EXPECT_LE(chunks_begin(7), chunk_key(7, index));
    EXPECT_LT(chunk_key(7, index), chunks_end(7));
  }
  EXPECT_LE(chunks_end(7), chunk_key(8, 0));
  EXPECT_LT(chunk_key(6, UINT64_MAX), chunks_begin(7));
}

TEST(CacheCodec, MarkerKeysRoundTripAndRejectMalformedOnes) {
  EXPECT_EQ(parse_marker_key(marker_key(0)), 0u);
  EXPECT_EQ(parse_marker_key(marker_key(0xdeadbeef12345678)), 0xdeadbeef12345678u);
  EXPECT_FALSE(parse_marker_key("w/123"));
  EXPECT_FALSE(parse_marker_key("w/00000000000000G0"));
  EXPECT_FALSE(parse_marker_key("w/00000000000000A0"));
  EXPECT_FALSE(parse_marker_key("b/0000000000000000"));
  EXPECT_FALSE(parse_marker_key("w/00000000000000000"));
}

TEST(CacheCodec, MetaRoundTripsAndRejectsTruncatedOrZeroChunk) {
  BlobMeta meta{123456789012, 65536, 42, 1700000000000};
  std::string encoded = encode_meta(meta);
  auto decoded = decode_meta(encoded);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->size, meta.size);
  EXPECT_EQ(decoded->chunk_size, meta.chunk_size);
  EXPECT_EQ(decoded->writer_id, meta.writer_id);
  EXPECT_EQ(decoded->last_access, meta.last_access);
  EXPECT_FALSE(decode_meta(encoded.substr(0, encoded.size() - 1)));
  EXPECT_FALSE(decode_meta(encoded + "x"));
  EXPECT_FALSE(decode_meta(""));
  std::string wrong_version = encoded;
  wrong_version[0] = 9;
  EXPECT_FALSE(decode_meta(wrong_version));
  EXPECT_FALSE(decode_meta(encode_meta({1, 0, 1, 1})));
}

TEST(CacheCodec, ManifestAndTagRoundTripAndRejectTruncation) {
  std::string bytes("a\0b", 3);
  auto manifest = decode_manifest(encode_manifest({"type", bytes}));
  ASSERT_TRUE(manifest);
  EXPECT_EQ(manifest->media_type, "type");
  EXPECT_EQ(manifest->bytes, bytes);
  EXPECT_EQ(manifest_bytes_size(encode_manifest({"type", bytes})), 3u);
  EXPECT_FALSE(decode_manifest("\x05\x00\x00\x00ab"));
  EXPECT_FALSE(decode_manifest("\x01"));
  EXPECT_FALSE(manifest_bytes_size(std::string_view("\xff\xff\xff\xff", 4)));

  auto tag = decode_tag(encode_tag({"sha256:aa", "type", -3}));
  ASSERT_TRUE(tag);
  EXPECT_EQ(tag->digest, "sha256:aa");
  EXPECT_EQ(tag->media_type, "type");
  EXPECT_EQ(tag->fetched_at, -3);
  std::string encoded = encode_tag({"sha256:aa", "", 1});
  EXPECT_FALSE(decode_tag(encoded.substr(0, 11)));
  EXPECT_FALSE(decode_tag(encoded.substr(0, 14)));
}

TEST(CacheCodec, TagAndRecordKeysSeparateTheirPartsWithNul) {
  EXPECT_NE(tag_key("a", "bc"), tag_key("ab", "c"));
  EXPECT_NE(record_key("a", "bc"), record_key("ab", "c"));
  EXPECT_EQ(record_key("s", "k"), std::string("r/s\0k", 5));
}

}  // namespace
}  // namespace ocigate::cache::codec
