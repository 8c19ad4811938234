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

// Child side. Exit codes: 0 = reached the crash point, anything else = setup failed.
[[noreturn]] void run_child(const std::string& path, const std::string& mode) {
  auto opened = Store::open(test_options(path));
  if (!opened) _exit(10);
  Store* store = opened->release();  // never destroyed: the process dies holding it
  if (mode == "stage" || mode == "commit" || mode == "commit-then-stage") {
    auto writer = store->begin_blob("sha256:crash");
    if (!writer) _exit(11);
    if (!(*writer)->append(staged_bytes())) _exit(12);
    if (mode.starts_with("commit") && !(*writer)->commit()) _exit(13);
    if (mode == "commit-then-stage") {
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

TEST(CacheCrash, TheFileOfAKilledWriterIsRemovedAtOpen) {
  ASSERT_TRUE(child_checked);
  TempDir dir;
  ASSERT_TRUE(crash_child(dir.path(), "stage"));
  // The crash really left the staged file behind.
  EXPECT_EQ(blob_file_count(dir.path()), 1u);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->blob_size("sha256:crash"));
    EXPECT_FALSE(store->open_blob("sha256:crash"));
    EXPECT_EQ(store->stats().size_bytes, 0u);
    EXPECT_EQ(blob_file_count(dir.path()), 0u);
  }
  EXPECT_EQ(key_count(dir.path(), "b/"), 0u);
}

TEST(CacheCrash, BlobCommittedRightBeforeTheCrashSurvives) {
  TempDir dir;
  ASSERT_TRUE(crash_child(dir.path(), "commit"));
  auto store = open_store(test_options(dir.path()));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->blob_size("sha256:crash"), staged_size);
  auto reader = store->open_blob("sha256:crash");
  ASSERT_TRUE(reader);
  std::string all;
  ASSERT_TRUE(read_blob(*reader, all));
  EXPECT_TRUE(all == staged_bytes());
}

TEST(CacheCrash, OnlyTheUncommittedWritersFileIsRemoved) {
  TempDir dir;
  ASSERT_TRUE(crash_child(dir.path(), "commit-then-stage"));
  EXPECT_EQ(blob_file_count(dir.path()), 2u);
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_EQ(blob_file_count(dir.path()), 1u);
    EXPECT_EQ(store->blob_size("sha256:crash"), staged_size);
    EXPECT_FALSE(store->blob_size("sha256:other"));
    auto reader = store->open_blob("sha256:crash");
    ASSERT_TRUE(reader);
    std::string all;
    ASSERT_TRUE(read_blob(*reader, all));
    EXPECT_TRUE(all == staged_bytes());
    // A new writer after the restart never reuses a file name.
    ASSERT_TRUE(put_blob(*store, "sha256:next", pattern_bytes(1000, 3)));
    EXPECT_EQ(blob_file_count(dir.path()), 2u);
  }
}

TEST(CacheCrash, BlobRemovedWhilePinnedLeavesNothingAfterACrash) {
  TempDir dir;
  ASSERT_TRUE(crash_child(dir.path(), "remove-pinned"));
  {
    auto store = open_store(test_options(dir.path()));
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->blob_size("sha256:crash"));
  }
  EXPECT_EQ(blob_file_count(dir.path()), 0u);
  EXPECT_EQ(key_count(dir.path(), "b/"), 0u);
}

}  // namespace
}  // namespace ocigate::cache::test
