#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../../../src/cache/blob_key.hpp"
#include "helpers.hpp"
#include "ocigate/oci/digest.hpp"

namespace ocigate::cache::test {
namespace {

const std::string hex64 = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210";

TEST(CacheBlobKey, ASha256DigestIsItsThirtyTwoRawBytes) {
  const BlobKey key = blob_key("sha256:" + hex64);
  EXPECT_EQ(key.bytes[0], 0x00);
  EXPECT_EQ(key.bytes[1], 0x11);
  EXPECT_EQ(key.bytes[15], 0xff);
  EXPECT_EQ(key.bytes[31], 0x10);
  EXPECT_EQ(sha256_digest_of(key), "sha256:" + hex64);
}

TEST(CacheBlobKey, OnlyCanonicalSha256DigestsAreRawBytes) {
  EXPECT_TRUE(is_sha256_digest("sha256:" + hex64));
  std::string upper = hex64;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  EXPECT_FALSE(is_sha256_digest("sha256:" + upper));
  EXPECT_FALSE(is_sha256_digest("sha256:" + hex64.substr(1)));
  EXPECT_FALSE(is_sha256_digest("sha256:" + hex64 + "0"));
  EXPECT_FALSE(is_sha256_digest("sha512:" + hex64 + hex64));
  EXPECT_FALSE(is_sha256_digest("sha256:a"));
}

TEST(CacheBlobKey, AnyOtherStringIsKeyedByItsOwnSha256) {
  const std::string other = "sha256:a";
  const std::string hashed = oci::sha256_digest(other);
  EXPECT_EQ(blob_key(other), blob_key(hashed));  // why the index keeps such strings beside their key
  EXPECT_NE(blob_key("sha256:a"), blob_key("sha256:b"));
  EXPECT_NE(blob_key("sha512:" + hex64 + hex64), blob_key("sha256:" + hex64));
}

// Digests of every form come back as they went in: from blob_digests, across a reopen, and to
// eviction, which deletes the right index entry by its digest.
TEST(CacheBlobKey, EveryDigestFormSurvivesTheStore) {
  TempDir dir;
  std::string upper = hex64;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  std::vector<std::string> digests = {"sha256:" + hex64, "sha512:" + hex64 + hex64, "sha256:" + upper, "sha256:a"};
  std::sort(digests.begin(), digests.end());
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    for (std::size_t i = 0; i < digests.size(); ++i) ASSERT_TRUE(put_blob(*store, digests[i], pattern_bytes(100 + i, 1)));
    EXPECT_EQ(store->blob_digests().value(), digests);
  }
  auto store = open_store(test_options(dir.path(), 0));  // over budget: the next commit evicts all but itself
  ASSERT_TRUE(store);
  EXPECT_EQ(store->blob_digests().value(), digests);
  for (std::size_t i = 0; i < digests.size(); ++i) EXPECT_EQ(store->blob_size(digests[i]), 100 + i);
  ASSERT_TRUE(put_blob(*store, "sha256:new", pattern_bytes(10, 2)));
  EXPECT_EQ(store->blob_digests().value(), std::vector<std::string>{"sha256:new"});
  store->close();
  EXPECT_EQ(test_access::keys_with_prefix(dir.path(), "b/").value(), std::vector<std::string>{"b/sha256:new"});
}

}  // namespace
}  // namespace ocigate::cache::test
