// cache verify: every committed blob and manifest is rehashed; bad ones are reported and removed,
// good ones are left alone (and their LRU order too).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "../../../src/cache/codec.hpp"
#include "helpers.hpp"
#include "ocigate/cache/verify.hpp"
#include "ocigate/oci/digest.hpp"

namespace ocigate::cache::test {
namespace {

struct Blob {
  std::string digest;
  std::string bytes;
};

Blob make_blob(std::size_t size, std::uint32_t seed) {
  auto bytes = pattern_bytes(size, seed);
  return {oci::sha256_digest(bytes), bytes};
}

// The file of the committed blob stored under digest (store closed).
std::filesystem::path file_of(const std::string& path, const std::string& digest) {
  auto meta_value = test_access::get_raw(path, codec::meta_key(digest));
  EXPECT_TRUE(meta_value.ok());
  if (!meta_value.ok()) return {};
  auto meta = codec::decode_meta(*meta_value);
  EXPECT_TRUE(meta);
  if (!meta) return {};
  return blob_dir(path) / codec::blob_file_path(meta->writer_id);
}

void flip_byte(const std::filesystem::path& file, std::uint64_t offset) {
  std::fstream stream(file, std::ios::in | std::ios::out | std::ios::binary);
  stream.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  stream.get(c);
  stream.seekp(static_cast<std::streamoff>(offset));
  stream.put(static_cast<char>(c ^ 0x01));
  ASSERT_TRUE(stream.good());
}

std::set<std::string> bad_digests(const VerifyReport& report) {
  std::set<std::string> out;
  for (const auto& bad : report.bad) out.insert(bad.digest);
  return out;
}

TEST(CacheVerify, CleanCacheHasNoBadEntriesAndKeepsEverything) {
  TempDir dir;
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  auto a = make_blob(3 * test_chunk + 17, 1);
  auto b = make_blob(10, 2);
  auto empty = make_blob(0, 3);
  ASSERT_TRUE(put_blob(*store, a.digest, a.bytes));
  ASSERT_TRUE(put_blob(*store, b.digest, b.bytes));
  ASSERT_TRUE(put_blob(*store, empty.digest, empty.bytes));
  const std::string manifest = R"({"schemaVersion":2})";
  ASSERT_TRUE(store->put_manifest(oci::sha256_digest(manifest), {"application/json", manifest}));

  auto report = verify(*store);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->blobs, 3u);
  EXPECT_EQ(report->manifests, 1u);
  EXPECT_EQ(report->blob_bytes, a.bytes.size() + b.bytes.size());
  EXPECT_TRUE(report->bad.empty());
  EXPECT_EQ(store->stats().blob_count, 3u);
  EXPECT_TRUE(store->get_manifest(oci::sha256_digest(manifest)));
}

TEST(CacheVerify, CorruptedBlobFileIsFoundAndRemoved) {
  TempDir dir;
  auto a = make_blob(4 * test_chunk + 99, 4);
  auto b = make_blob(2 * test_chunk, 5);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, a.digest, a.bytes));
    ASSERT_TRUE(put_blob(*store, b.digest, b.bytes));
  }
  // One flipped byte in the middle of a: same length, wrong content.
  flip_byte(file_of(dir.path(), a.digest), 2 * test_chunk + 100);

  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  std::vector<BadEntry> heard;
  auto report = verify(*store, [&](const BadEntry& bad) { heard.push_back(bad); });
  ASSERT_TRUE(report.ok()) << report.error().message;
  ASSERT_EQ(report->bad.size(), 1u);
  EXPECT_EQ(report->bad[0].kind, "blob");
  EXPECT_EQ(report->bad[0].digest, a.digest);
  EXPECT_NE(report->bad[0].why.find("digest mismatch"), std::string::npos) << report->bad[0].why;
  EXPECT_TRUE(report->bad[0].removed);
  EXPECT_EQ(heard.size(), 1u);
  EXPECT_FALSE(store->blob_size(a.digest));
  EXPECT_FALSE(store->open_blob(a.digest));
  EXPECT_TRUE(store->blob_size(b.digest));

  // A second pass is clean, and a's file is gone from disk.
  auto again = verify(*store);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->bad.empty());
  EXPECT_EQ(again->blobs, 1u);
  store->wait_files_deleted();
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
  store.reset();
  EXPECT_EQ(key_count(dir.path(), "b/"), 1u);
}

// Files cut short or deleted while the cache is open: the short one is reported and removed; the
// missing one is dropped from the index when opened (and fetched again on its next pull).
TEST(CacheVerify, TruncatedAndMissingBlobFilesLeaveTheCache) {
  TempDir dir;
  auto missing = make_blob(3 * test_chunk, 6);
  auto truncated = make_blob(3 * test_chunk + 5, 7);
  auto good = make_blob(test_chunk + 1, 8);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, missing.digest, missing.bytes));
    ASSERT_TRUE(put_blob(*store, truncated.digest, truncated.bytes));
    ASSERT_TRUE(put_blob(*store, good.digest, good.bytes));
  }
  const auto missing_file = file_of(dir.path(), missing.digest);
  const auto truncated_file = file_of(dir.path(), truncated.digest);
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(wait_checked(*store));  // cut after the check that follows open, which would drop it as lost
  std::filesystem::remove(missing_file);
  std::filesystem::resize_file(truncated_file, 3 * test_chunk);
  auto report = verify(*store);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(bad_digests(*report), (std::set<std::string>{truncated.digest}));
  for (const auto& bad : report->bad) EXPECT_TRUE(bad.removed) << bad.digest;
  EXPECT_EQ(store->stats().blob_count, 1u);
  EXPECT_TRUE(store->open_blob(good.digest));
}

TEST(CacheVerify, BadManifestsAreFoundAndRemoved) {
  TempDir dir;
  const std::string good = R"({"schemaVersion":2,"good":true})";
  const std::string bad = R"({"schemaVersion":2,"bad":true})";
  const std::string good_digest = oci::sha256_digest(good);
  const std::string bad_digest = oci::sha256_digest(bad);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->put_manifest(good_digest, {"application/json", good}));
    ASSERT_TRUE(store->put_manifest(bad_digest, {"application/json", bad}));
    // Stored under a key that is no digest at all: cannot be verified, so it goes too.
    ASSERT_TRUE(store->put_manifest("sha256:nothex", {"application/json", good}));
    ASSERT_TRUE(store->put_tag("up/repo", "latest", {bad_digest, "application/json", 1}));
  }
  // Same length, other bytes: only a rehash can tell.
  auto value = test_access::get_raw(dir.path(), codec::manifest_key(bad_digest));
  ASSERT_TRUE(value.ok());
  value->back() = ']';
  ASSERT_TRUE(test_access::put_raw(dir.path(), codec::manifest_key(bad_digest), *value));

  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  const auto size_before = store->stats().size_bytes;
  auto report = verify(*store);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->manifests, 3u);
  EXPECT_EQ(bad_digests(*report), (std::set<std::string>{bad_digest, "sha256:nothex"}));
  EXPECT_TRUE(store->get_manifest(good_digest));
  EXPECT_FALSE(store->get_manifest(bad_digest));
  EXPECT_FALSE(store->get_manifest("sha256:nothex"));
  EXPECT_EQ(store->stats().size_bytes, size_before - bad.size() - good.size());
  // The tag stays: the server fetches a manifest its tag points at but the cache lacks.
  EXPECT_TRUE(store->get_tag("up/repo", "latest"));
}

TEST(CacheVerify, InspectingDoesNotChangeTheEvictionOrder) {
  TempDir dir;
  auto a = make_blob(test_chunk, 9);
  auto b = make_blob(test_chunk, 10);
  auto c = make_blob(test_chunk, 11);
  // Room for two blobs: committing c evicts the least recently used one.
  auto store = open_store(test_options(dir.path(), 2 * test_chunk + test_chunk / 2));
  ASSERT_TRUE(store);
  ASSERT_TRUE(put_blob(*store, a.digest, a.bytes));
  ASSERT_TRUE(put_blob(*store, b.digest, b.bytes));
  ASSERT_TRUE(store->inspect_blob(a.digest));  // no use: a stays the oldest
  auto report = verify(*store);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->bad.empty());
  ASSERT_TRUE(put_blob(*store, c.digest, c.bytes));
  EXPECT_FALSE(store->blob_size(a.digest));
  EXPECT_TRUE(store->blob_size(b.digest));
  EXPECT_TRUE(store->blob_size(c.digest));
}

TEST(CacheVerify, ListsWhatIsCommittedOnly) {
  TempDir dir;
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  auto a = make_blob(100, 12);
  ASSERT_TRUE(put_blob(*store, a.digest, a.bytes));
  auto staging = store->begin_blob("sha256:staging");
  ASSERT_TRUE(staging.ok());
  ASSERT_TRUE((*staging)->append(pattern_bytes(2 * test_chunk, 13)));
  auto blobs = store->blob_digests();
  ASSERT_TRUE(blobs.ok());
  EXPECT_EQ(*blobs, std::vector<std::string>{a.digest});
  ASSERT_TRUE(store->remove_manifest("sha256:absent"));  // removing nothing is fine
  store->close();
  EXPECT_FALSE(store->blob_digests().ok());
  EXPECT_FALSE(store->manifest_digests().ok());
  EXPECT_FALSE(store->inspect_blob(a.digest));
}

TEST(CacheVerify, NoLockHolderForAClosedOrMissingDatabase) {
  TempDir dir;
  EXPECT_FALSE(lock_holder(dir.path() + "/nothing-here"));
  { auto store = open_store(test_options(dir.path())); }
  EXPECT_FALSE(lock_holder(dir.path()));
}

}  // namespace
}  // namespace ocigate::cache::test
