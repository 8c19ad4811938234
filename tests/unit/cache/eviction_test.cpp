#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "helpers.hpp"

namespace ocigate::cache::test {
namespace {

constexpr std::uint64_t blob_size = 100'000;

std::string blob(std::uint32_t seed) { return pattern_bytes(blob_size, seed); }

::testing::AssertionResult touch(Store& store, const std::string& digest) {
  if (!store.open_blob(digest)) return ::testing::AssertionFailure() << digest << " is not cached";
  return ::testing::AssertionSuccess();
}

TEST(CacheEviction, LeastRecentlyUsedGoesFirstAndAReadTouches) {
  TempDir dir;
  auto store = open_store(test_options(dir.path(), 3 * blob_size + blob_size / 2));
  ASSERT_TRUE(store);
  ASSERT_TRUE(put_blob(*store, "sha256:a", blob(1)));
  ASSERT_TRUE(put_blob(*store, "sha256:b", blob(2)));
  ASSERT_TRUE(put_blob(*store, "sha256:c", blob(3)));
  EXPECT_EQ(store->stats().evictions, 0u);
  ASSERT_TRUE(touch(*store, "sha256:a"));
  ASSERT_TRUE(put_blob(*store, "sha256:d", blob(4)));
  EXPECT_TRUE(store->blob_size("sha256:a"));
  EXPECT_FALSE(store->blob_size("sha256:b"));
  EXPECT_TRUE(store->blob_size("sha256:c"));
  EXPECT_TRUE(store->blob_size("sha256:d"));
  Stats stats = store->stats();
  EXPECT_EQ(stats.evictions, 1u);
  EXPECT_EQ(stats.evicted_bytes, blob_size);
  EXPECT_EQ(stats.blob_count, 3u);
  EXPECT_EQ(stats.size_bytes, 3 * blob_size);
  // blob_size() is not a use: it does not save c from going next.
  ASSERT_TRUE(put_blob(*store, "sha256:e", blob(5)));
  EXPECT_FALSE(store->blob_size("sha256:c"));
  EXPECT_TRUE(store->blob_size("sha256:a"));
  EXPECT_EQ(store->stats().evicted_bytes, 2 * blob_size);
  store->close();
  // Evicted files and metas are gone from disk, not just from the index.
  EXPECT_EQ(key_count(dir.path(), "b/"), 3u);
  EXPECT_EQ(blob_file_count(dir.path()), 3u);
}

TEST(CacheEviction, PinnedBlobIsNeverEvictedWhileItsReaderLives) {
  TempDir dir;
  auto store = open_store(test_options(dir.path(), 2 * blob_size + blob_size / 2));
  ASSERT_TRUE(store);
  const std::string a = blob(1);
  ASSERT_TRUE(put_blob(*store, "sha256:a", a));
  auto reader = store->open_blob("sha256:a");
  ASSERT_TRUE(reader);
  ASSERT_TRUE(put_blob(*store, "sha256:b", blob(2)));
  ASSERT_TRUE(put_blob(*store, "sha256:c", blob(3)));  // a is oldest but pinned: b goes
  EXPECT_TRUE(store->blob_size("sha256:a"));
  EXPECT_FALSE(store->blob_size("sha256:b"));
  ASSERT_TRUE(put_blob(*store, "sha256:d", blob(4)));  // c goes
  EXPECT_TRUE(store->blob_size("sha256:a"));
  EXPECT_FALSE(store->blob_size("sha256:c"));
  std::string all;
  ASSERT_TRUE(read_blob(*reader, all));
  EXPECT_TRUE(all == a);
  reader.reset();
  ASSERT_TRUE(put_blob(*store, "sha256:e", blob(5)));  // now a is the unpinned least recent
  EXPECT_FALSE(store->blob_size("sha256:a"));
  EXPECT_TRUE(store->blob_size("sha256:d"));
  EXPECT_TRUE(store->blob_size("sha256:e"));
  EXPECT_EQ(store->stats().evictions, 3u);
}

TEST(CacheEviction, WhenEverythingIsPinnedTheStoreStaysOverBudget) {
  TempDir dir;
  auto store = open_store(test_options(dir.path(), blob_size + blob_size / 2));
  ASSERT_TRUE(store);
  ASSERT_TRUE(put_blob(*store, "sha256:a", blob(1)));
  auto a = store->open_blob("sha256:a");
  ASSERT_TRUE(put_blob(*store, "sha256:b", blob(2)));
  auto b = store->open_blob("sha256:b");
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(store->stats().size_bytes, 2 * blob_size);
  EXPECT_EQ(store->stats().evictions, 0u);
  // The last unpin lets the pass run: a is least recently used.
  a.reset();
  EXPECT_FALSE(store->blob_size("sha256:a"));
  EXPECT_TRUE(store->blob_size("sha256:b"));
  EXPECT_EQ(store->stats().evictions, 1u);
}

TEST(CacheEviction, BlobLargerThanTheWholeCacheSurvivesItsCommitAndGoesWhenUnpinned) {
  TempDir dir;
  auto store = open_store(test_options(dir.path(), blob_size / 2));
  ASSERT_TRUE(store);
  const std::string a = blob(1);
  ASSERT_TRUE(put_blob(*store, "sha256:a", a));
  EXPECT_EQ(store->blob_size("sha256:a"), blob_size);
  {
    auto reader = store->open_blob("sha256:a");
    ASSERT_TRUE(reader);
    std::string all;
    ASSERT_TRUE(read_blob(*reader, all));
    EXPECT_TRUE(all == a);
  }
  EXPECT_FALSE(store->blob_size("sha256:a"));
  EXPECT_EQ(store->stats().evictions, 1u);
  EXPECT_EQ(store->stats().size_bytes, 0u);
}

TEST(CacheEviction, ManifestBytesCountAndTheirWriteTriggersEviction) {
  TempDir dir;
  auto store = open_store(test_options(dir.path(), 2 * blob_size + blob_size / 2));
  ASSERT_TRUE(store);
  ASSERT_TRUE(put_blob(*store, "sha256:a", blob(1)));
  ASSERT_TRUE(put_blob(*store, "sha256:b", blob(2)));
  ASSERT_TRUE(store->put_manifest("sha256:m", {"m", std::string(blob_size, 'x')}));
  EXPECT_FALSE(store->blob_size("sha256:a"));
  EXPECT_TRUE(store->blob_size("sha256:b"));
  // Manifests themselves are never evicted.
  EXPECT_TRUE(store->get_manifest("sha256:m"));
  Stats stats = store->stats();
  EXPECT_EQ(stats.size_bytes, 2 * blob_size);
  EXPECT_EQ(stats.evictions, 1u);
}

TEST(CacheEviction, JustCommittedBlobIsKeptEvenIfOlderOnesAreAllPinned) {
  TempDir dir;
  auto store = open_store(test_options(dir.path(), blob_size + blob_size / 2));
  ASSERT_TRUE(store);
  ASSERT_TRUE(put_blob(*store, "sha256:a", blob(1)));
  auto a = store->open_blob("sha256:a");
  ASSERT_TRUE(a);
  ASSERT_TRUE(put_blob(*store, "sha256:b", blob(2)));
  EXPECT_TRUE(store->blob_size("sha256:a"));
  EXPECT_TRUE(store->blob_size("sha256:b"));
}

TEST(CacheEviction, LruOrderSurvivesARestart) {
  TempDir dir;
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:a", blob(1)));
    ASSERT_TRUE(put_blob(*store, "sha256:b", blob(2)));
    ASSERT_TRUE(put_blob(*store, "sha256:c", blob(3)));
    ASSERT_TRUE(touch(*store, "sha256:a"));  // persisted by close(), not by the read
    store->close();
  }
  auto store = open_store(test_options(dir.path(), 3 * blob_size + blob_size / 2));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->stats().size_bytes, 3 * blob_size);
  ASSERT_TRUE(put_blob(*store, "sha256:d", blob(4)));
  EXPECT_TRUE(store->blob_size("sha256:a"));
  EXPECT_FALSE(store->blob_size("sha256:b"));
  EXPECT_TRUE(store->blob_size("sha256:c"));
}

TEST(CacheEviction, OpeningOverBudgetEvictsOnTheFirstWrite) {
  TempDir dir;
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    for (std::uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(put_blob(*store, "sha256:" + std::to_string(i), blob(i)));
  }
  auto store = open_store(test_options(dir.path(), blob_size));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->stats().blob_count, 4u);
  ASSERT_TRUE(store->put_manifest("sha256:m", {"m", "{}"}));
  EXPECT_LE(store->stats().size_bytes, blob_size);
  EXPECT_EQ(store->stats().evictions, 4u);
}

// A store with room for two and a half blobs whose reaper waits at a gate: after a, b and c went
// in, a is evicted and its file waits there. The gate opens at the end of any test that left it shut.
class CacheReaper : public ::testing::Test {
 protected:
  void open(std::chrono::milliseconds close_grace = Options{}.close_delete_grace) {
    Options options = test_options(dir.path(), 2 * blob_size + blob_size / 2);
    options.before_deleting_files = [opened = gate.get_future().share()] { opened.wait(); };
    options.close_delete_grace = close_grace;
    store = open_store(options);
    ASSERT_TRUE(store);
    ASSERT_TRUE(put_blob(*store, "sha256:a", blob(1)));
    ASSERT_TRUE(put_blob(*store, "sha256:b", blob(2)));
    ASSERT_TRUE(put_blob(*store, "sha256:c", blob(3)));  // evicts a
  }
  void open_gate() {
    if (!opened) gate.set_value();
    opened = true;
  }
  // Closes the store while the reaper is held: the gate opens once close() is under way (its
  // database is gone).
  void close_while_held() {
    std::thread closing([&] { store->close(); });
    while (store->put_record("test", "k", "v")) std::this_thread::yield();
    open_gate();
    closing.join();
  }
  void TearDown() override { open_gate(); }

  TempDir dir;
  std::promise<void> gate;
  bool opened = false;
  std::unique_ptr<Store> store;
};

// Unlinking the files of a big eviction pass takes seconds: the commit that ran the pass returns
// without waiting for it, and the files go after.
TEST_F(CacheReaper, TheCommitThatEvictsReturnsBeforeTheFilesAreDeleted) {
  open();
  EXPECT_FALSE(store->blob_size("sha256:a"));
  EXPECT_EQ(blob_file_count(dir.path()), 3u);  // a's file waits at the gate
  open_gate();
  store->wait_files_deleted();
  EXPECT_EQ(blob_file_count(dir.path()), 2u);
}

// close() lets the thread delete every file still queued before it stops: none is left over for
// the next open to find.
TEST_F(CacheReaper, ClosingDeletesTheFilesStillToDelete) {
  open();
  ASSERT_TRUE(store->remove_blob("sha256:b"));  // b's file queues behind a's
  EXPECT_EQ(blob_file_count(dir.path()), 3u);
  close_while_held();
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
}

// A stop must not wait for the unlinks of a mass eviction: past close_delete_grace the files still
// queued are left, and the next open deletes them as orphans.
TEST_F(CacheReaper, ClosingLeavesWhatItCannotDeleteInTimeToTheNextOpen) {
  open(std::chrono::milliseconds(0));
  ASSERT_TRUE(store->remove_blob("sha256:b"));
  close_while_held();
  EXPECT_EQ(blob_file_count(dir.path()), 3u);
  store.reset();
  store = open_store(test_options(dir.path(), 2 * blob_size + blob_size / 2));
  ASSERT_TRUE(store);
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
  EXPECT_EQ(store->blob_size("sha256:c"), blob_size);
}

}  // namespace
}  // namespace ocigate::cache::test
