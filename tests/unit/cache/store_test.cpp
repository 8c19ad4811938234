#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>

#include <unistd.h>

#include "helpers.hpp"

namespace ocigate::cache::test {
namespace {

// A fresh directory for a cache; tests open it as they need.
class CacheDir : public ::testing::Test {
 protected:
  TempDir dir;
};

// A cache opened in a fresh directory with the test options.
class OpenCache : public CacheDir {
 protected:
  void SetUp() override {
    store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
  }
  std::unique_ptr<Store> store;
};

class CacheBlobs : public OpenCache {};
class CacheClose : public OpenCache {};
class CacheManifests : public OpenCache {};
class CacheRecords : public OpenCache {};
class CacheTags : public OpenCache {};
class CacheBlobFiles : public CacheDir {};
class CacheConcurrency : public CacheDir {};
class CacheOpen : public CacheDir {};
class CacheReopen : public CacheDir {};

TEST_F(CacheManifests, RoundTripExactBytesAndMediaType) {
  std::string bytes("{\"schemaVersion\":2}\0\xff tail", 25);
  ASSERT_TRUE(store->put_manifest("sha256:aa", {"application/vnd.oci.image.manifest.v1+json", bytes}));
  auto got = store->get_manifest("sha256:aa");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(got->bytes, bytes);
  EXPECT_FALSE(store->get_manifest("sha256:bb"));
}

TEST_F(CacheManifests, LargeManifestAboveTheBlobFileThresholdRoundTrips) {
  std::string bytes = pattern_bytes(200 * 1024, 3);
  ASSERT_TRUE(store->put_manifest("sha256:big", {"", bytes}));
  auto got = store->get_manifest("sha256:big");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->media_type, "");
  EXPECT_EQ(got->bytes, bytes);
}

TEST_F(CacheManifests, CountTowardSizeAndReplacingDoesNotCountTwice) {
  ASSERT_TRUE(store->put_manifest("sha256:aa", {"t", std::string(1000, 'x')}));
  EXPECT_EQ(store->stats().size_bytes, 1000u);
  ASSERT_TRUE(store->put_manifest("sha256:aa", {"t", std::string(400, 'y')}));
  EXPECT_EQ(store->stats().size_bytes, 400u);
  ASSERT_TRUE(store->put_manifest("sha256:bb", {"t", std::string(100, 'z')}));
  EXPECT_EQ(store->stats().size_bytes, 500u);
}

TEST_F(CacheManifests, EmptyDigestIsRefused) {
  auto put = store->put_manifest("", {"t", "x"});
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().code, Errc::digest_invalid);
}

TEST_F(CacheTags, RoundTripAndKeepRepositoriesApart) {
  ASSERT_TRUE(store->put_tag("docker.io/library/alpine", "3.19", {"sha256:aa", "application/x", 1700000000}));
  ASSERT_TRUE(store->put_tag("docker.io/library/alpine3", ".19", {"sha256:bb", "application/y", -5}));
  auto a = store->get_tag("docker.io/library/alpine", "3.19");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->digest, "sha256:aa");
  EXPECT_EQ(a->media_type, "application/x");
  EXPECT_EQ(a->fetched_at, 1700000000);
  auto b = store->get_tag("docker.io/library/alpine3", ".19");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->digest, "sha256:bb");
  EXPECT_EQ(b->fetched_at, -5);
  EXPECT_FALSE(store->get_tag("docker.io/library/alpine", "latest"));
  EXPECT_FALSE(store->get_tag("docker.io/library/alpin", "e3.19"));
}

TEST_F(CacheTags, OverwriteReplacesTheAnswer) {
  ASSERT_TRUE(store->put_tag("r", "t", {"sha256:old", "m", 1}));
  ASSERT_TRUE(store->put_tag("r", "t", {"sha256:new", "m2", 2}));
  auto got = store->get_tag("r", "t");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->digest, "sha256:new");
  EXPECT_EQ(got->media_type, "m2");
  EXPECT_EQ(got->fetched_at, 2);
}

TEST_F(CacheTags, RepositoryKeyWithNulIsRefusedNotConfused) {
  auto put = store->put_tag(std::string("a\0b", 3), "t", {"sha256:aa", "m", 1});
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().code, Errc::name_invalid);
  EXPECT_FALSE(store->get_tag(std::string("a\0b", 3), "t"));
}

TEST_F(CacheRecords, PutGetRemove) {
  std::string value("v\0w", 3);
  ASSERT_TRUE(store->put_record("verdict", "sha256:aa", value));
  EXPECT_EQ(store->get_record("verdict", "sha256:aa"), value);
  ASSERT_TRUE(store->put_record("verdict", "sha256:aa", ""));
  EXPECT_EQ(store->get_record("verdict", "sha256:aa"), "");
  ASSERT_TRUE(store->remove_record("verdict", "sha256:aa"));
  EXPECT_FALSE(store->get_record("verdict", "sha256:aa"));
  EXPECT_TRUE(store->remove_record("verdict", "never-there"));
}

TEST_F(CacheRecords, SpacesDoNotBleedIntoEachOther) {
  ASSERT_TRUE(store->put_record("a", "bc", "1"));
  ASSERT_TRUE(store->put_record("ab", "c", "2"));
  EXPECT_EQ(store->get_record("a", "bc"), "1");
  EXPECT_EQ(store->get_record("ab", "c"), "2");
  EXPECT_FALSE(store->get_record("verdict", "bc"));
  EXPECT_FALSE(store->put_record(std::string_view("a\0b", 3), "c", "x"));
  EXPECT_FALSE(store->get_record(std::string_view("a\0b", 3), "c"));
}

TEST_F(CacheRecords, RemoveOutsideKeepsOnlyThePrefixAndOnlyInItsSpace) {
  for (const char* key : {"a/1", "b", "b/1", "b/2/x", "b0", "c/1", "\xff\xff"}) {
    ASSERT_TRUE(store->put_record("verdict", key, "v"));
    ASSERT_TRUE(store->put_record("other", key, "o"));
  }
  ASSERT_TRUE(store->put_record("verdict-latest", "a/1", "l"));
  ASSERT_TRUE(store->remove_records_outside("verdict", ""));  // empty keep: nothing removed
  EXPECT_TRUE(store->get_record("verdict", "a/1"));
  ASSERT_TRUE(store->remove_records_outside("verdict", "b/"));
  for (const char* gone : {"a/1", "b", "b0", "c/1", "\xff\xff"}) EXPECT_FALSE(store->get_record("verdict", gone)) << gone;
  for (const char* kept : {"b/1", "b/2/x"}) EXPECT_EQ(store->get_record("verdict", kept), "v") << kept;
  for (const char* key : {"a/1", "b", "b/1", "b/2/x", "b0", "c/1", "\xff\xff"}) {
    EXPECT_EQ(store->get_record("other", key), "o") << key;
  }
  EXPECT_EQ(store->get_record("verdict-latest", "a/1"), "l") << "a space that extends the name is another space";
}

TEST_F(CacheRecords, DoNotCountTowardSize) {
  ASSERT_TRUE(store->put_record("tags", "k", std::string(5000, 'x')));
  EXPECT_EQ(store->stats().size_bytes, 0u);
}

TEST_F(CacheBlobs, OddAppendsAcrossManyChunksReadBackAtArbitraryOffsets) {
  const std::string bytes = pattern_bytes(17 * test_chunk + 12345, 1);
  auto writer = store->begin_blob("sha256:aa");
  ASSERT_TRUE(writer);
  // Sizes straddle the chunk size on both sides, including appends larger than two chunks.
  const std::size_t pieces[] = {1, 7, test_chunk - 8, test_chunk, test_chunk + 1, 3 * test_chunk + 5, 100000, 13};
  std::size_t at = 0;
  for (std::size_t i = 0; at < bytes.size(); ++i) {
    std::size_t n = std::min(pieces[i % std::size(pieces)], bytes.size() - at);
    ASSERT_TRUE((*writer)->append(std::string_view(bytes).substr(at, n)));
    at += n;
    EXPECT_EQ((*writer)->appended(), at);
    EXPECT_EQ((*writer)->staged(), at);  // readable at once
  }
  ASSERT_TRUE((*writer)->commit());
  EXPECT_EQ((*writer)->staged(), bytes.size());

  EXPECT_EQ(store->blob_size("sha256:aa"), bytes.size());
  auto reader = store->open_blob("sha256:aa");
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->size(), bytes.size());
  std::string all;
  ASSERT_TRUE(read_blob(*reader, all));
  EXPECT_TRUE(all == bytes);

  std::mt19937 random(7);
  std::string out = "stale";
  for (int i = 0; i < 200; ++i) {
    std::uint64_t offset = random() % bytes.size();
    std::size_t max = random() % (3 * test_chunk);
    auto n = reader->read(offset, max, out);
    ASSERT_TRUE(n);
    // Reads cross chunk boundaries: only the end of the blob shortens them.
    std::size_t expected = std::min<std::size_t>(max, bytes.size() - offset);
    ASSERT_EQ(*n, expected) << "offset " << offset << " max " << max;
    ASSERT_TRUE(out == bytes.substr(offset, expected)) << "offset " << offset << " max " << max;
  }
}

// Readers ask for whole chunks; a reused, larger out buffer is replaced, not appended to.
TEST_F(CacheBlobs, ChunkReadsIntoAReusedBufferReturnExactBytes) {
  const std::string bytes = pattern_bytes(4 * test_chunk + 777, 3);
  ASSERT_TRUE(put_blob(*store, "sha256:aa", bytes));
  auto reader = store->open_blob("sha256:aa");
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->chunk_size(), test_chunk);
  std::string out(3 * test_chunk, 'x');
  for (std::uint64_t index : {2u, 0u, 4u, 1u, 3u}) {
    const std::uint64_t offset = index * test_chunk;
    const std::size_t length = std::min<std::size_t>(test_chunk, bytes.size() - offset);
    auto n = reader->read(offset, length, out);
    ASSERT_TRUE(n) << n.error().message;
    ASSERT_EQ(*n, length);
    ASSERT_TRUE(out == bytes.substr(offset, length)) << "chunk " << index;
    auto part = reader->read(offset + 5, 10, out);
    ASSERT_TRUE(part);
    ASSERT_EQ(out, bytes.substr(offset + 5, 10));
  }
}

// Blob files cut short or deleted behind the cache's back (a broken disk, a careless cleanup):
// a reader opened before sees a storage error, never short or wrong bytes, and a reopened cache
// drops the entry so the blob is fetched again.
TEST_F(CacheBlobFiles, ShortBlobFileIsAReadErrorAndDroppedAtOpen) {
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:aa", pattern_bytes(3 * test_chunk, 13)));
    auto reader = store->open_blob("sha256:aa");
    ASSERT_TRUE(reader);
    std::filesystem::resize_file(only_blob_file(dir.path()), 2 * test_chunk + 10);
    std::string out = "stale";
    auto n = reader->read(2 * test_chunk, test_chunk, out);
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error().code, Errc::storage_error);
    EXPECT_NE(n.error().message.find("ends at byte"), std::string::npos) << n.error().message;
    EXPECT_TRUE(out.empty());
  }
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->blob_size("sha256:aa"));
  EXPECT_EQ(store->stats().size_bytes, 0u);
  store->wait_files_deleted();
  EXPECT_EQ(blob_file_count(dir.path()), 0u);
}

TEST_F(CacheBlobFiles, MissingBlobFileDropsTheEntryOnOpenBlobAndAtOpen) {
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:aa", pattern_bytes(1000, 1)));
    ASSERT_TRUE(put_blob(*store, "sha256:bb", pattern_bytes(2000, 2)));
    std::filesystem::remove_all(blob_dir(dir.path()));
    std::filesystem::create_directory(blob_dir(dir.path()));
    EXPECT_FALSE(store->open_blob("sha256:aa"));
    EXPECT_FALSE(store->blob_size("sha256:aa"));
    EXPECT_EQ(store->stats().size_bytes, 2000u);
    // Fetched again, it is cached again.
    ASSERT_TRUE(put_blob(*store, "sha256:aa", pattern_bytes(1000, 1)));
    EXPECT_TRUE(store->open_blob("sha256:aa"));
  }
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->blob_size("sha256:aa"));
  EXPECT_FALSE(store->blob_size("sha256:bb"));
  EXPECT_EQ(store->stats().size_bytes, 1000u);
}

// 256 directories of files, not one of every file: a writer's file lies in the directory named by
// the last two hex digits of its 16-hex name.
TEST_F(CacheBlobFiles, ABlobFileLiesInTheDirectoryOfItsNamesLastTwoDigits) {
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(put_blob(*store, "sha256:aa", pattern_bytes(1000, 1)));
  const auto file = only_blob_file(dir.path());
  const std::string name = file.filename().string();
  ASSERT_EQ(name.size(), 16u);
  EXPECT_EQ(file.parent_path().filename().string(), name.substr(14));
  EXPECT_EQ(file.parent_path().parent_path(), blob_dir(dir.path()));
  std::size_t dirs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(blob_dir(dir.path()))) dirs += entry.is_directory();
  EXPECT_EQ(dirs, 256u);
}

// Earlier versions kept every blob file in blobs/ itself. Open moves them into their directories,
// also when a crash cut an earlier move short (some files moved, some not), and still deletes the
// files no entry owns.
TEST_F(CacheBlobFiles, FilesOfTheFlatLayoutMoveToTheirDirectoriesAtOpen) {
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    for (std::uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(put_blob(*store, "sha256:" + std::to_string(i), pattern_bytes(1000 + i, i)));
  }
  const auto files = blob_files_in_writer_order(dir.path());
  ASSERT_EQ(files.size(), 3u);
  for (std::size_t i = 0; i < 2; ++i) std::filesystem::rename(files[i], blob_dir(dir.path()) / files[i].filename());
  std::ofstream(blob_dir(dir.path()) / "00000000000000ff") << "no entry owns this";
  for (const auto& entry : std::filesystem::directory_iterator(blob_dir(dir.path()))) {
    if (entry.is_directory() && std::filesystem::is_empty(entry.path())) std::filesystem::remove(entry.path());
  }

  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  for (std::uint32_t i = 0; i < 3; ++i) {
    auto reader = store->open_blob("sha256:" + std::to_string(i));
    ASSERT_TRUE(reader) << i;
    std::string all;
    ASSERT_TRUE(read_blob(*reader, all));
    EXPECT_EQ(all, pattern_bytes(1000 + i, i));
  }
  EXPECT_EQ(blob_file_count(dir.path()), 3u);
  for (const auto& entry : std::filesystem::directory_iterator(blob_dir(dir.path()))) {
    EXPECT_TRUE(entry.is_directory()) << entry.path();
  }
  // A new blob's writer comes after the orphan's: no name is handed out twice.
  ASSERT_TRUE(put_blob(*store, "sha256:new", pattern_bytes(10, 9)));
  EXPECT_TRUE(std::filesystem::exists(blob_dir(dir.path()) / "00" / "0000000000000100"));
}

// Index entries naming one file (a hand-edited or damaged database): the first in key order keeps the
// file, the others are dropped, and the file stays.
TEST_F(CacheBlobFiles, AnEntryClaimingAnotherBlobsFileIsDroppedAtOpen) {
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:aa", pattern_bytes(1000, 1)));
  }
  auto meta = test_access::get_raw(dir.path(), "b/sha256:aa");
  ASSERT_TRUE(meta.ok());
  ASSERT_TRUE(test_access::put_raw(dir.path(), "b/sha256:zy", *meta).ok());
  ASSERT_TRUE(test_access::put_raw(dir.path(), "b/sha256:zz", *meta).ok());
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_EQ(store->blob_size("sha256:aa"), 1000u);
    EXPECT_FALSE(store->blob_size("sha256:zy"));
    EXPECT_FALSE(store->blob_size("sha256:zz"));
    EXPECT_EQ(store->stats().size_bytes, 1000u);
    auto reader = store->open_blob("sha256:aa");
    ASSERT_TRUE(reader);
    std::string all;
    ASSERT_TRUE(read_blob(*reader, all));
    EXPECT_EQ(all, pattern_bytes(1000, 1));
  }
  EXPECT_EQ(key_count(dir.path(), "b/"), 1u);
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
}

// Every blob dropped for a lost file is reported (for the log) and counted (for a metric): one
// deleted by hand is found when next read, one cut short by the check after open. Nothing else is.
TEST_F(CacheBlobFiles, LostFilesAreReportedAndCounted) {
  std::vector<std::pair<std::string, std::string>> lost;
  Options options = test_options(dir.path());
  options.on_lost_file = [&lost](const std::string& digest, const std::string& why) { lost.emplace_back(digest, why); };
  {
    auto store = open_store(options);
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:aa", pattern_bytes(1000, 1)));
    std::filesystem::remove(only_blob_file(dir.path()));
    ASSERT_TRUE(put_blob(*store, "sha256:bb", pattern_bytes(3000, 2)));
    ASSERT_TRUE(put_blob(*store, "sha256:cc", pattern_bytes(500, 3)));
    EXPECT_TRUE(lost.empty());
    EXPECT_FALSE(store->open_blob("sha256:aa"));
    ASSERT_EQ(lost.size(), 1u);
    EXPECT_EQ(lost[0].first, "sha256:aa");
    EXPECT_NE(lost[0].second.find("cannot be opened"), std::string::npos) << lost[0].second;
    EXPECT_EQ(store->stats().lost_files, 1u);
    EXPECT_FALSE(store->open_blob("sha256:aa"));  // gone from the index: not reported twice
    EXPECT_EQ(store->stats().lost_files, 1u);
    ASSERT_TRUE(store->remove_blob("sha256:cc"));  // removed on purpose: not lost
    EXPECT_EQ(store->stats().lost_files, 1u);
  }
  std::filesystem::resize_file(only_blob_file(dir.path()), 2000);
  lost.clear();
  auto store = open_store(options);
  ASSERT_TRUE(store);
  ASSERT_TRUE(wait_checked(*store));
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].first, "sha256:bb");
  EXPECT_EQ(lost[0].second, "its file has 2000 of 3000 bytes");
  EXPECT_EQ(store->stats().lost_files, 1u);
  EXPECT_FALSE(store->blob_size("sha256:bb"));
}

// open() does not stat every blob file before it returns; a thread checks them after it. Until then a
// blob's first use checks its own file: none whose file is missing or short is ever served, and each
// is dropped, reported and counted once, whichever finds it.
TEST_F(CacheBlobFiles, BlobsLoadedAtOpenAreCheckedBeforeUseAndByTheThreadAfterOpen) {
  constexpr int blobs = 300;
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    for (int i = 0; i < blobs; ++i) ASSERT_TRUE(put_blob(*store, "sha256:" + std::to_string(i), pattern_bytes(100, i)));
  }
  const auto files = blob_files_in_writer_order(dir.path());  // files[i] holds blob i
  ASSERT_EQ(files.size(), static_cast<std::size_t>(blobs));
  std::filesystem::resize_file(files[7], 50);
  std::filesystem::remove(files[8]);
  std::filesystem::resize_file(files[250], 10);
  std::filesystem::remove(files[251]);
  std::atomic<int> lost{0};
  Options options = test_options(dir.path());
  options.on_lost_file = [&lost](const std::string&, const std::string&) { ++lost; };
  {
    auto store = open_store(options);
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->blob_size("sha256:7"));
    EXPECT_FALSE(store->open_blob("sha256:8"));
    EXPECT_FALSE(store->inspect_blob("sha256:250"));
    EXPECT_EQ(store->blob_size("sha256:9"), 100u);
    // Fetched again, a lost blob commits again even if the thread has not reached it.
    ASSERT_TRUE(put_blob(*store, "sha256:251", pattern_bytes(100, 251)));
    EXPECT_EQ(store->blob_size("sha256:251"), 100u);
    ASSERT_TRUE(wait_checked(*store));
    EXPECT_EQ(lost.load(), 4);
    EXPECT_EQ(store->stats().lost_files, 4u);
    EXPECT_EQ(store->stats().blob_count, static_cast<std::uint64_t>(blobs - 3));
    EXPECT_EQ(store->stats().size_bytes, (blobs - 3) * 100u);
  }
  EXPECT_EQ(key_count(dir.path(), "b/"), static_cast<std::size_t>(blobs - 3));
  EXPECT_EQ(blob_file_count(dir.path()), static_cast<std::size_t>(blobs - 3));
}

// Closing while the thread still checks (a big cache, a quick stop) stops it; what it did not reach
// is checked after the next open.
TEST_F(CacheBlobFiles, ClosingStopsTheCheckAndTheNextOpenFinishesIt) {
  constexpr int blobs = 2000;
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    for (int i = 0; i < blobs; ++i) ASSERT_TRUE(put_blob(*store, "sha256:" + std::to_string(i), pattern_bytes(10, i)));
  }
  std::filesystem::remove(blob_files_in_writer_order(dir.path()).back());
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
  }
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(wait_checked(*store));
  EXPECT_EQ(store->stats().blob_count, static_cast<std::uint64_t>(blobs - 1));
  EXPECT_FALSE(store->blob_size("sha256:" + std::to_string(blobs - 1)));
}

// A cache written by an older version (blobs as RocksDB chunks, version-1 metas) opens: the old
// blobs are dropped, and everything else (manifests, tags, records) stays.
TEST_F(CacheBlobFiles, ChunkedBlobsOfAnOlderVersionAreDroppedAtOpen) {
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->put_manifest("sha256:m", {"application/json", "{}"}));
    ASSERT_TRUE(store->put_record("verdict", "k", "v"));
  }
  std::string old_meta(1 + 8 + 4 + 8 + 8, '\0');
  old_meta[0] = 1;
  old_meta[1] = 10;  // size 10
  old_meta[9] = 1;   // chunk size 1
  ASSERT_TRUE(test_access::put_raw(dir.path(), "b/sha256:old", old_meta));
  ASSERT_TRUE(test_access::put_raw(dir.path(), "c/0000000000000001/0000000000000000", "0123456789"));
  ASSERT_TRUE(test_access::put_raw(dir.path(), "w/0000000000000002", ""));
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->blob_size("sha256:old"));
    EXPECT_TRUE(store->get_manifest("sha256:m"));
    EXPECT_EQ(store->get_record("verdict", "k"), "v");
    EXPECT_EQ(store->stats().size_bytes, 2u);
  }
  EXPECT_EQ(key_count(dir.path(), "b/"), 0u);
  EXPECT_EQ(key_count(dir.path(), "c/"), 0u);
  EXPECT_EQ(key_count(dir.path(), "w/"), 0u);
}

// A blob of many default-size chunks, appended in odd pieces, reads back the same before and after
// a restart.
TEST_F(CacheBlobFiles, TwentyMebibyteBlobReadsBackBeforeAndAfterReopen) {
  const std::string bytes = pattern_bytes((20u << 20) + 12345, 23);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:big", bytes, 3 * test_chunk + 7));
    auto reader = store->open_blob("sha256:big");
    ASSERT_TRUE(reader);
    std::string all;
    ASSERT_TRUE(read_blob(*reader, all));
    EXPECT_TRUE(all == bytes);
  }
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  auto reader = store->open_blob("sha256:big");
  ASSERT_TRUE(reader);
  std::string all;
  ASSERT_TRUE(read_blob(*reader, all));
  EXPECT_TRUE(all == bytes);
}

TEST_F(CacheBlobs, ReadAtOrPastTheEndReturnsZeroAndClearsOut) {
  const std::string bytes = pattern_bytes(test_chunk + 10, 2);
  ASSERT_TRUE(put_blob(*store, "sha256:aa", bytes));
  auto reader = store->open_blob("sha256:aa");
  ASSERT_TRUE(reader);
  std::string out = "stale";
  auto n = reader->read(bytes.size(), 100, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
  EXPECT_TRUE(out.empty());
  n = reader->read(bytes.size() + 1000000, 100, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
  n = reader->read(bytes.size() - 3, std::numeric_limits<std::size_t>::max(), out);
  ASSERT_TRUE(n);
  EXPECT_EQ(out, bytes.substr(bytes.size() - 3));
}

TEST_F(CacheBlobs, EmptyBlobCommitsAndReadsAsEmpty) {
  ASSERT_TRUE(put_blob(*store, "sha256:empty", ""));
  EXPECT_EQ(store->blob_size("sha256:empty"), 0u);
  auto reader = store->open_blob("sha256:empty");
  ASSERT_TRUE(reader);
  std::string out;
  auto n = reader->read(0, 10, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
}

TEST_F(CacheBlobs, InvisibleUntilCommit) {
  const std::string bytes = pattern_bytes(3 * test_chunk + 1, 4);
  auto writer = store->begin_blob("sha256:aa");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(bytes));
  EXPECT_EQ((*writer)->staged(), bytes.size());
  EXPECT_FALSE(store->blob_size("sha256:aa"));
  EXPECT_FALSE(store->open_blob("sha256:aa"));
  EXPECT_EQ(store->stats().blob_count, 0u);
  EXPECT_EQ(store->stats().size_bytes, 0u);
  ASSERT_TRUE((*writer)->commit());
  EXPECT_EQ(store->blob_size("sha256:aa"), bytes.size());
  EXPECT_TRUE(store->open_blob("sha256:aa"));
  EXPECT_EQ(store->stats().blob_count, 1u);
  EXPECT_EQ(store->stats().size_bytes, bytes.size());
}

TEST_F(CacheBlobs, ReadStagedIsClampedToWhatWasAppended) {
  const std::string bytes = pattern_bytes(2 * test_chunk + 500, 5);
  auto writer = store->begin_blob("sha256:aa");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(bytes));
  std::string out;
  auto n = (*writer)->read_staged(test_chunk - 10, 1000, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1000u);
  EXPECT_EQ(out, bytes.substr(test_chunk - 10, 1000));
  n = (*writer)->read_staged(2 * test_chunk + 490, 1000, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 10u);
  n = (*writer)->read_staged(2 * test_chunk + 500, 1000, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
  ASSERT_TRUE((*writer)->commit());
  n = (*writer)->read_staged(2 * test_chunk - 10, 1000, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 510u);
  EXPECT_EQ(out, bytes.substr(2 * test_chunk - 10));
}

TEST_F(CacheBlobs, ReadStagedFromAnotherThreadWhileAppending) {
  const std::string bytes = pattern_bytes(40 * test_chunk + 777, 6);
  auto begun = store->begin_blob("sha256:aa");
  ASSERT_TRUE(begun);
  std::shared_ptr<BlobWriter> writer(std::move(*begun));
  std::atomic<bool> abandoned{false};

  std::thread follower([&] {
    std::uint64_t offset = 0;
    std::string out;
    int failures = 0;
    while (offset < bytes.size() && failures < 5 && !abandoned) {
      std::uint64_t staged = writer->staged();
      if (staged > writer->appended()) {
        ++failures;
        ADD_FAILURE() << "staged " << staged << " is past what was appended";
      }
      auto n = writer->read_staged(offset, 50000, out);
      if (!n) {
        ++failures;
        ADD_FAILURE() << n.error().message;
        continue;
      }
      if (*n > 0 && out != bytes.substr(offset, *n)) {
        ++failures;
        ADD_FAILURE() << "bytes differ at " << offset;
      }
      offset += *n;
      if (*n == 0) std::this_thread::yield();
    }
    EXPECT_EQ(offset, bytes.size());
  });

  bool written = true;
  for (std::size_t at = 0; written && at < bytes.size(); at += 9973) {
    written = writer->append(std::string_view(bytes).substr(at, 9973)).ok();
  }
  EXPECT_TRUE(written);
  EXPECT_TRUE(written && writer->commit());
  abandoned = !written;  // the follower must not wait for bytes that never come
  follower.join();
}

TEST_F(CacheBlobs, DestroyingAnUncommittedWriterDeletesItsFile) {
  {
    auto writer = store->begin_blob("sha256:aa");
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append(pattern_bytes(5 * test_chunk + 3, 7)));
    EXPECT_EQ(blob_file_count(dir.path()), 1u);
  }
  EXPECT_FALSE(store->blob_size("sha256:aa"));
  EXPECT_EQ(blob_file_count(dir.path()), 0u);
}

TEST_F(CacheBlobs, CommittingADigestAlreadyPresentSucceedsAndKeepsOneCopy) {
  const std::string bytes = pattern_bytes(3 * test_chunk + 99, 8);
  auto first = store->begin_blob("sha256:aa");
  auto second = store->begin_blob("sha256:aa");
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  ASSERT_TRUE((*first)->append(bytes));
  ASSERT_TRUE((*second)->append(bytes));
  ASSERT_TRUE((*first)->commit());
  ASSERT_TRUE((*second)->commit());
  EXPECT_EQ(store->stats().blob_count, 1u);
  EXPECT_EQ(store->stats().size_bytes, bytes.size());
  // The loser's file is gone from the directory; it still reads its own (identical) bytes.
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
  std::string out;
  auto n = (*second)->read_staged(test_chunk - 5, 2 * test_chunk, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(out, bytes.substr(test_chunk - 5, 2 * test_chunk));
  EXPECT_TRUE(put_blob(*store, "sha256:aa", bytes));
  EXPECT_EQ(store->stats().blob_count, 1u);
  first->reset();
  second->reset();
  store->close();
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
  EXPECT_EQ(key_count(dir.path(), "b/"), 1u);
}

TEST_F(CacheBlobs, AppendAfterCommitAndDoubleCommitAreErrors) {
  auto writer = store->begin_blob("sha256:aa");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("abc"));
  ASSERT_TRUE((*writer)->commit());
  EXPECT_FALSE((*writer)->append("d"));
  EXPECT_FALSE((*writer)->commit());
  EXPECT_EQ(store->blob_size("sha256:aa"), 3u);
}

TEST_F(CacheBlobs, EmptyDigestIsRefused) {
  auto writer = store->begin_blob("");
  ASSERT_FALSE(writer);
  EXPECT_EQ(writer.error().code, Errc::digest_invalid);
}

TEST_F(CacheBlobs, RemoveDeletesAnUnpinnedBlob) {
  ASSERT_TRUE(put_blob(*store, "sha256:aa", pattern_bytes(2 * test_chunk + 1, 9)));
  ASSERT_TRUE(store->remove_blob("sha256:aa"));
  EXPECT_FALSE(store->blob_size("sha256:aa"));
  EXPECT_EQ(store->stats().size_bytes, 0u);
  EXPECT_TRUE(store->remove_blob("sha256:aa"));
  store->wait_files_deleted();
  EXPECT_EQ(blob_file_count(dir.path()), 0u);
  store->close();
  EXPECT_EQ(key_count(dir.path(), "b/"), 0u);
}

// The descriptors handed out for sendfile(2) hold exactly the blob's bytes: the writer's while
// it stages (and after its file is unlinked by a failure elsewhere), the reader's once committed,
// even after the blob was removed from the index.
std::string pread_all(int fd, std::size_t size) {
  std::string out(size + 16, '\0');
  const ssize_t n = ::pread(fd, out.data(), out.size(), 0);
  out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  return out;
}

TEST_F(CacheBlobs, FileDescriptorsHoldTheStagedAndCommittedBytes) {
  const std::string bytes = pattern_bytes(3 * test_chunk + 9, 12);
  auto writer = store->begin_blob("sha256:aa");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(std::string_view(bytes).substr(0, test_chunk)));
  ASSERT_GE((*writer)->file_descriptor(), 0);
  EXPECT_TRUE(pread_all((*writer)->file_descriptor(), bytes.size()) == bytes.substr(0, test_chunk));
  ASSERT_TRUE((*writer)->append(std::string_view(bytes).substr(test_chunk)));
  ASSERT_TRUE((*writer)->commit());
  EXPECT_TRUE(pread_all((*writer)->file_descriptor(), bytes.size()) == bytes);
  auto reader = store->open_blob("sha256:aa");
  ASSERT_TRUE(reader);
  ASSERT_GE(reader->file_descriptor(), 0);
  ASSERT_TRUE(store->remove_blob("sha256:aa"));
  EXPECT_TRUE(pread_all(reader->file_descriptor(), bytes.size()) == bytes);
}

TEST_F(CacheBlobs, RemovingAPinnedBlobHidesItButLetsTheReaderFinish) {
  const std::string bytes = pattern_bytes(4 * test_chunk + 17, 10);
  ASSERT_TRUE(put_blob(*store, "sha256:aa", bytes));
  auto reader = store->open_blob("sha256:aa");
  ASSERT_TRUE(reader);
  ASSERT_TRUE(store->remove_blob("sha256:aa"));
  EXPECT_FALSE(store->blob_size("sha256:aa"));
  EXPECT_FALSE(store->open_blob("sha256:aa"));
  std::string all;
  ASSERT_TRUE(read_blob(*reader, all));
  EXPECT_TRUE(all == bytes);
  // A new copy may be committed while the old one is still being read.
  ASSERT_TRUE(put_blob(*store, "sha256:aa", bytes));
  reader.reset();
  EXPECT_EQ(store->blob_size("sha256:aa"), bytes.size());
  auto again = store->open_blob("sha256:aa");
  ASSERT_TRUE(again);
  ASSERT_TRUE(read_blob(*again, all));
  EXPECT_TRUE(all == bytes);
  again.reset();
  store->close();
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
}

TEST_F(CacheBlobFiles, UnreadableMetaIsDroppedAtOpen) {
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:good", "good bytes"));
  }
  ASSERT_TRUE(test_access::put_raw(dir.path(), "b/sha256:bad", "garbage"));
  ASSERT_TRUE(test_access::put_raw(dir.path(), "m/sha256:badmanifest", "\xff\xff"));
  ASSERT_TRUE(test_access::put_raw(dir.path(), "w/not-hex", ""));
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->blob_size("sha256:bad"));
    EXPECT_FALSE(store->get_manifest("sha256:badmanifest"));
    EXPECT_EQ(store->blob_size("sha256:good"), 10u);
    EXPECT_EQ(store->stats().blob_count, 1u);
  }
  EXPECT_EQ(key_count(dir.path(), "b/"), 1u);
}

TEST_F(CacheBlobFiles, MetaClaimingAnotherBlobsFileIsDroppedAtOpen) {
  const std::string bytes = pattern_bytes(2 * test_chunk + 5, 18);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:a", bytes));
  }
  auto meta = test_access::get_raw(dir.path(), "b/sha256:a");
  ASSERT_TRUE(meta);
  ASSERT_TRUE(test_access::put_raw(dir.path(), "b/sha256:b", *meta));
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_EQ(store->stats().blob_count, 1u);
    EXPECT_FALSE(store->blob_size("sha256:b"));
    // Removing the survivor must not trip over the dropped duplicate.
    auto reader = store->open_blob("sha256:a");
    ASSERT_TRUE(reader);
    std::string all;
    ASSERT_TRUE(read_blob(*reader, all));
    EXPECT_TRUE(all == bytes);
    reader.reset();
    ASSERT_TRUE(store->remove_blob("sha256:a"));
    EXPECT_EQ(store->stats().blob_count, 0u);
  }
  EXPECT_EQ(key_count(dir.path(), "b/"), 0u);
  EXPECT_EQ(blob_file_count(dir.path()), 0u);
}

TEST_F(CacheReopen, KeepsCommittedBlobsTagsManifestsAndRecords) {
  const std::string bytes = pattern_bytes(6 * test_chunk + 321, 13);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:aa", bytes));
    ASSERT_TRUE(store->put_manifest("sha256:mm", {"application/m", "manifest bytes"}));
    ASSERT_TRUE(store->put_tag("docker.io/library/alpine", "latest", {"sha256:mm", "application/m", 42}));
    ASSERT_TRUE(store->put_record("verdict", "sha256:mm", "pass"));
    store->close();
  }
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->blob_size("sha256:aa"), bytes.size());
  auto reader = store->open_blob("sha256:aa");
  ASSERT_TRUE(reader);
  std::string all;
  ASSERT_TRUE(read_blob(*reader, all));
  EXPECT_TRUE(all == bytes);
  auto manifest = store->get_manifest("sha256:mm");
  ASSERT_TRUE(manifest);
  EXPECT_EQ(manifest->bytes, "manifest bytes");
  auto tag = store->get_tag("docker.io/library/alpine", "latest");
  ASSERT_TRUE(tag);
  EXPECT_EQ(tag->digest, "sha256:mm");
  EXPECT_EQ(tag->fetched_at, 42);
  EXPECT_EQ(store->get_record("verdict", "sha256:mm"), "pass");
  Stats stats = store->stats();
  EXPECT_EQ(stats.blob_count, 1u);
  EXPECT_EQ(stats.size_bytes, bytes.size() + 14);
}

TEST_F(CacheReopen, NewWritersDoNotReuseLiveWriterIds) {
  const std::string first = pattern_bytes(2 * test_chunk + 1, 14);
  const std::string second = pattern_bytes(2 * test_chunk + 2, 15);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:aa", first));
  }
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(put_blob(*store, "sha256:bb", second));
  std::string all;
  auto a = store->open_blob("sha256:aa");
  ASSERT_TRUE(a);
  ASSERT_TRUE(read_blob(*a, all));
  EXPECT_TRUE(all == first);
  auto b = store->open_blob("sha256:bb");
  ASSERT_TRUE(b);
  ASSERT_TRUE(read_blob(*b, all));
  EXPECT_TRUE(all == second);
}

TEST_F(CacheOpen, SecondStoreOnTheSamePathFailsCleanly) {
  auto first = open_store(test_options(dir.path()));
  ASSERT_TRUE(first);
  auto second = Store::open(test_options(dir.path()));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::storage_error);
  EXPECT_NE(second.error().message.find("lock"), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find(dir.path()), std::string::npos) << second.error().message;
  ASSERT_TRUE(first->put_record("s", "k", "still works"));
  EXPECT_EQ(first->get_record("s", "k"), "still works");
}

TEST_F(CacheOpen, PathThatIsAFileFailsWithStorageError) {
  const std::string file = dir.path() + "/plain-file";
  std::ofstream(file) << "not a directory";
  auto store = Store::open(test_options(file));
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, Errc::storage_error);
  EXPECT_FALSE(store.error().message.empty());
  auto below = Store::open(test_options(file + "/cache"));
  ASSERT_FALSE(below);
  EXPECT_EQ(below.error().code, Errc::storage_error);
}

TEST_F(CacheOpen, CreatesMissingParentDirectories) {
  auto store = open_store(test_options(dir.path() + "/a/b/c"));
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->put_record("s", "k", "v"));
}

TEST_F(CacheOpen, RejectsZeroChunkSizeAndEmptyPath) {
  Options options = test_options(dir.path());
  options.chunk_size = 0;
  auto store = Store::open(options);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, Errc::config_invalid);
  auto empty = Store::open(test_options(""));
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Errc::config_invalid);
}

TEST_F(CacheClose, LaterCallsFailAndLiveHandlesStaySafe) {
  const std::string bytes = pattern_bytes(2 * test_chunk, 16);
  ASSERT_TRUE(put_blob(*store, "sha256:aa", bytes));
  ASSERT_TRUE(store->put_manifest("sha256:mm", {"m", "x"}));
  auto reader = store->open_blob("sha256:aa");
  ASSERT_TRUE(reader);
  auto writer = store->begin_blob("sha256:bb");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(pattern_bytes(3 * test_chunk, 17)));
  store->close();
  store->close();  // idempotent

  EXPECT_FALSE(store->get_manifest("sha256:mm"));
  auto put = store->put_manifest("sha256:mm", {"m", "x"});
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().code, Errc::storage_error);
  EXPECT_FALSE(store->blob_size("sha256:aa"));
  EXPECT_FALSE(store->open_blob("sha256:aa"));
  auto begun = store->begin_blob("sha256:cc");
  ASSERT_FALSE(begun);
  EXPECT_EQ(begun.error().code, Errc::storage_error);
  EXPECT_FALSE(store->get_record("s", "k"));
  EXPECT_FALSE(store->put_record("s", "k", "v"));
  EXPECT_FALSE(store->remove_record("s", "k"));
  EXPECT_FALSE(store->remove_blob("sha256:aa"));
  EXPECT_FALSE(store->put_tag("r", "t", {}));
  EXPECT_FALSE(store->get_tag("r", "t"));

  std::string out;
  auto n = reader->read(0, 10, out);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Errc::storage_error);
  EXPECT_FALSE((*writer)->append("more"));
  EXPECT_FALSE((*writer)->read_staged(0, 10, out));
  EXPECT_FALSE((*writer)->commit());
  reader.reset();
  writer->reset();
  store.reset();

  // The uncommitted writer deleted its file; the committed blob's stays.
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
  {
    auto reopened = open_store(test_options(dir.path()));
    ASSERT_TRUE(reopened);
    EXPECT_EQ(reopened->blob_size("sha256:aa"), bytes.size());
    EXPECT_FALSE(reopened->blob_size("sha256:bb"));
  }
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
}

TEST_F(CacheConcurrency, ParallelWritersReadersAndManifestsKeepTheIndexConsistent) {
  // Small enough that eviction runs while readers pin blobs.
  auto store = open_store(test_options(dir.path(), 6 * (2 * test_chunk + 100)));
  ASSERT_TRUE(store);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 6; ++i) {
        const std::string digest = "sha256:" + std::to_string(t) + "-" + std::to_string(i);
        const std::string bytes = pattern_bytes(2 * test_chunk + 100, static_cast<std::uint32_t>(t * 100 + i));
        EXPECT_TRUE(put_blob(*store, digest, bytes, 30001));
        EXPECT_TRUE(store->put_manifest(digest, {"m", "x"}));
        for (int k = 0; k <= i; ++k) {
          auto reader = store->open_blob("sha256:" + std::to_string(t) + "-" + std::to_string(k));
          if (!reader) continue;  // evicted
          std::string all;
          EXPECT_TRUE(read_blob(*reader, all));
          EXPECT_TRUE(all == pattern_bytes(2 * test_chunk + 100, static_cast<std::uint32_t>(t * 100 + k)));
        }
        (void)store->stats();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  Stats stats = store->stats();
  EXPECT_LE(stats.size_bytes, 6 * (2 * test_chunk + 100));
  EXPECT_EQ(stats.evictions + stats.blob_count, 24u);
  const std::uint64_t blobs = stats.blob_count;
  store->close();
  EXPECT_EQ(key_count(dir.path(), "b/"), blobs);
  EXPECT_EQ(blob_file_count(dir.path()), blobs);
}

}  // namespace
}  // namespace ocigate::cache::test
