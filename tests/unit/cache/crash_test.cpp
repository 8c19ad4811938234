// Crash tests: a child process (this same binary, re-executed) stages or commits a blob and dies
// with _exit() mid-way, holding the database open; the parent then reopens it. Running the child
// as a fresh exec avoids fork() in a process with RocksDB background threads.

#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "helpers.hpp"

extern char** environ;

namespace ocigate::cache::test {
namespace {

constexpr const char* dir_variable = "OCIGATE_CACHE_CRASH_DIR";
constexpr const char* mode_variable = "OCIGATE_CACHE_CRASH_MODE";
constexpr std::size_t staged_size = 5 * test_chunk + 1234;

std::string staged_bytes() { return pattern_bytes(staged_size, 99); }

// Modes ending in "-unlogged" stage every chunk outside the write-ahead log (as a big blob's
// chunks past logged_chunk_bytes are): those reach disk only when a memtable is flushed, as an
// unlogged blob's commit does. This commits a two-chunk unlogged blob for that.
bool commit_flusher(Store& store) {
  auto writer = store.begin_blob("sha256:flusher");
  return writer && (*writer)->append(pattern_bytes(2 * test_chunk, 5)) && (*writer)->commit();
}

// Child side. Exit codes: 0 = reached the crash point, anything else = setup failed.
[[noreturn]] void run_child(const std::string& path, const std::string& mode) {
  auto options = test_options(path);
  const bool unlogged = mode.ends_with("-unlogged");
  if (unlogged) options.logged_chunk_bytes = 0;
  auto opened = Store::open(options);
  if (!opened) _exit(10);
  Store* store = opened->release();  // never destroyed: the process dies holding it
  const std::string base = unlogged ? mode.substr(0, mode.size() - std::strlen("-unlogged")) : mode;
  if (base == "stage" || base == "stage-flushed" || base == "commit" || base == "commit-then-stage") {
    auto writer = store->begin_blob("sha256:crash");
    if (!writer) _exit(11);
    if (!(*writer)->append(staged_bytes())) _exit(12);
    if (base == "stage-flushed" && !commit_flusher(*store)) _exit(18);
    if (base.starts_with("commit") && !(*writer)->commit()) _exit(13);
    if (base == "commit-then-stage") {
      auto other = store->begin_blob("sha256:other");
      if (!other || !(*other)->append(staged_bytes())) _exit(14);
      other->release();
    }
    writer->release();
    _exit(0);
  }
  if (mode == "remove-pinned") {
    auto writer = store->begin_blob("sha256:crash");
    if (!writer || !(*writer)->append(staged_bytes()) || !(*writer)->commit()) _exit(15);
    auto reader = store->open_blob("sha256:crash");
    if (!reader) _exit(16);
    if (!store->remove_blob("sha256:crash")) _exit(17);
    reader.release();
    writer->release();
    _exit(0);
  }
  _exit(20);
}

// Runs before main() in the child only; the parent sees no variables and goes on to the tests.
const bool child_checked = [] {
  const char* path = std::getenv(dir_variable);
  const char* mode = std::getenv(mode_variable);
  if (path && mode) run_child(path, mode);
  return true;
}();

::testing::AssertionResult crash_child(const std::string& path, const std::string& mode) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(dir_variable) + "=" + path);
  env_strings.push_back(std::string(mode_variable) + "=" + mode);
  std::vector<char*> env;
  for (auto& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::string self = "/proc/self/exe";
  std::string filter = "--gtest_filter=-*";
  char* argv[] = {self.data(), filter.data(), nullptr};
  pid_t pid = 0;
  int spawned = posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, env.data());
  if (spawned != 0) return ::testing::AssertionFailure() << "posix_spawn: " << std::strerror(spawned);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return ::testing::AssertionFailure() << "waitpid failed";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure() << "child failed with status " << status;
  }
  return ::testing::AssertionSuccess();
}

TEST(CacheCrash, StagingChunksLeftByAKilledWriterAreRemovedAtOpen) {
  ASSERT_TRUE(child_checked);
  TempDir dir;
  ASSERT_TRUE(crash_child(dir.path(), "stage"));
  // The crash really left staged (logged) chunks behind.
  EXPECT_EQ(key_count(dir.path(), "c/"), 5u);
  EXPECT_EQ(key_count(dir.path(), "w/"), 1u);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->blob_size("sha256:crash"));
    EXPECT_FALSE(store->open_blob("sha256:crash"));
    EXPECT_EQ(store->stats().size_bytes, 0u);
  }
  EXPECT_EQ(key_count(dir.path(), "c/"), 0u);
  EXPECT_EQ(key_count(dir.path(), "w/"), 0u);
}

TEST(CacheCrash, UnflushedUnloggedStagingChunksAreLostAndTheirMarkerRemovedAtOpen) {
  TempDir dir;
  ASSERT_TRUE(crash_child(dir.path(), "stage-unlogged"));
  // Unlogged, never flushed: the chunks died with the process; the logged marker survived.
  EXPECT_EQ(key_count(dir.path(), "c/"), 0u);
  EXPECT_EQ(key_count(dir.path(), "w/"), 1u);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->blob_size("sha256:crash"));
    EXPECT_EQ(store->stats().size_bytes, 0u);
  }
  EXPECT_EQ(key_count(dir.path(), "w/"), 0u);
}

TEST(CacheCrash, FlushedUnloggedStagingChunksLeftByAKilledWriterAreRemovedAtOpen) {
  TempDir dir;
  ASSERT_TRUE(crash_child(dir.path(), "stage-flushed-unlogged"));
  // The crash really left staged chunks behind: 5 of the killed writer, 2 of the committed flusher.
  EXPECT_EQ(key_count(dir.path(), "c/"), 7u);
  EXPECT_EQ(key_count(dir.path(), "w/"), 1u);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->blob_size("sha256:crash"));
    EXPECT_FALSE(store->open_blob("sha256:crash"));
    EXPECT_EQ(store->blob_size("sha256:flusher"), 2 * test_chunk);
    EXPECT_EQ(store->stats().size_bytes, 2 * test_chunk);
  }
  EXPECT_EQ(key_count(dir.path(), "c/"), 2u);
  EXPECT_EQ(key_count(dir.path(), "w/"), 0u);
}

TEST(CacheCrash, BlobCommittedRightBeforeTheCrashSurvivesLoggedOrNot) {
  for (const char* mode : {"commit", "commit-unlogged"}) {
    TempDir dir;
    ASSERT_TRUE(crash_child(dir.path(), mode));
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_EQ(store->blob_size("sha256:crash"), staged_size) << mode;
    auto reader = store->open_blob("sha256:crash");
    ASSERT_TRUE(reader) << mode;
    std::string all;
    ASSERT_TRUE(read_blob(*reader, all));
    EXPECT_TRUE(all == staged_bytes()) << mode;
  }
}

TEST(CacheCrash, OnlyTheUncommittedWritersChunksAreRemoved) {
  TempDir dir;
  ASSERT_TRUE(crash_child(dir.path(), "commit-then-stage"));
  EXPECT_EQ(key_count(dir.path(), "c/"), 11u);  // 6 committed, 5 staged
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_EQ(store->blob_size("sha256:crash"), staged_size);
    EXPECT_FALSE(store->blob_size("sha256:other"));
    auto reader = store->open_blob("sha256:crash");
    ASSERT_TRUE(reader);
    std::string all;
    ASSERT_TRUE(read_blob(*reader, all));
    EXPECT_TRUE(all == staged_bytes());
  }
  EXPECT_EQ(key_count(dir.path(), "c/"), 6u);
  EXPECT_EQ(key_count(dir.path(), "w/"), 0u);
}

TEST(CacheCrash, BlobRemovedWhilePinnedLeavesNoChunksAfterACrash) {
  TempDir dir;
  ASSERT_TRUE(crash_child(dir.path(), "remove-pinned"));
  EXPECT_EQ(key_count(dir.path(), "c/"), 6u);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->blob_size("sha256:crash"));
  }
  EXPECT_EQ(key_count(dir.path(), "c/"), 0u);
  EXPECT_EQ(key_count(dir.path(), "w/"), 0u);
  EXPECT_EQ(key_count(dir.path(), "b/"), 0u);
}

}  // namespace
}  // namespace ocigate::cache::test
