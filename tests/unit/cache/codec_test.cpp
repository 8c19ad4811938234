#include <gtest/gtest.h>

#include "../../../src/cache/codec.hpp"

namespace ocigate::cache::codec {
namespace {

TEST(CacheCodec, BlobFileNamesRoundTripAndRejectOtherNames) {
  EXPECT_EQ(blob_file_name(0x2a), "000000000000002a");
  EXPECT_EQ(parse_blob_file_name(blob_file_name(0)), 0u);
  EXPECT_EQ(parse_blob_file_name(blob_file_name(0xdeadbeef12345678)), 0xdeadbeef12345678u);
  EXPECT_FALSE(parse_blob_file_name("123"));
  EXPECT_FALSE(parse_blob_file_name("00000000000000G0"));
  EXPECT_FALSE(parse_blob_file_name("00000000000000A0"));
  EXPECT_FALSE(parse_blob_file_name("00000000000000000"));
  EXPECT_FALSE(parse_blob_file_name("lost+found"));
}

TEST(CacheCodec, MetaRoundTripsAndRejectsTruncatedOrOlderVersions) {
  BlobMeta meta{123456789012, 42, 1700000000000};
  std::string encoded = encode_meta(meta);
  auto decoded = decode_meta(encoded);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->size, meta.size);
  EXPECT_EQ(decoded->writer_id, meta.writer_id);
  EXPECT_EQ(decoded->last_access, meta.last_access);
  EXPECT_FALSE(decode_meta(encoded.substr(0, encoded.size() - 1)));
  EXPECT_FALSE(decode_meta(encoded + "x"));
  EXPECT_FALSE(decode_meta(""));
  std::string wrong_version = encoded;
  wrong_version[0] = 9;
  EXPECT_FALSE(decode_meta(wrong_version));
  // Version 1 (chunked blobs) had a chunk size too.
  std::string version_one(1 + 8 + 4 + 8 + 8, '\0');
  version_one[0] = 1;
  EXPECT_FALSE(decode_meta(version_one));
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
