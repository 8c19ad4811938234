#pragma once
// Shared fixtures for the cache tests (TempDir and pattern_bytes come from ../support.hpp).

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../../../src/cache/test_access.hpp"
#include "support.hpp"
#include "ocigate/cache/store.hpp"

namespace ocigate::cache::test {

inline constexpr std::uint32_t test_chunk = 64 * 1024;

using ::ocigate::test::pattern_bytes;
using ::ocigate::test::TempDir;

inline Options test_options(const std::string& path, std::uint64_t max_size = 1ull << 30) {
  Options options;
  options.path = path;
  options.max_size = max_size;
  options.chunk_size = test_chunk;
  return options;
}

inline std::unique_ptr<Store> open_store(const Options& options) {
  auto store = Store::open(options);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  if (!store.ok()) return nullptr;
  return std::move(*store);
}

// Appends bytes in pieces of `piece` bytes and commits.
inline ::testing::AssertionResult put_blob(Store& store, const std::string& digest, const std::string& bytes,
                                           std::size_t piece = 10007) {
  auto writer = store.begin_blob(digest);
  if (!writer) return ::testing::AssertionFailure() << "begin_blob: " << writer.error().message;
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    auto appended = (*writer)->append(std::string_view(bytes).substr(at, piece));
    if (!appended) return ::testing::AssertionFailure() << "append: " << appended.error().message;
  }
  auto committed = (*writer)->commit();
  if (!committed) return ::testing::AssertionFailure() << "commit: " << committed.error().message;
  return ::testing::AssertionSuccess();
}

// Reads a whole blob through a reader, in pieces of `piece` bytes; nullopt-like empty + failure flag.
inline ::testing::AssertionResult read_blob(BlobReader& reader, std::string& all, std::size_t piece = 100003) {
  all.clear();
  std::string out;
  for (;;) {
    auto n = reader.read(all.size(), piece, out);
    if (!n) return ::testing::AssertionFailure() << "read: " << n.error().message;
    if (*n != out.size()) return ::testing::AssertionFailure() << "read returned " << *n << " but gave " << out.size();
    if (*n == 0) break;
    all += out;
  }
  return ::testing::AssertionSuccess();
}

// Waits until the thread that checks the files of the blobs loaded at open is through them all.
inline ::testing::AssertionResult wait_checked(Store& store) {
  for (int i = 0; i < 10000; ++i) {
    if (store.stats().unchecked_blobs == 0) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return ::testing::AssertionFailure() << store.stats().unchecked_blobs << " blobs still unchecked after 10 s";
}

// Keys under a prefix in a closed store's database ("b/" metas, "m/" manifests, ...).
inline std::size_t key_count(const std::string& path, std::string_view prefix) {
  auto keys = test_access::keys_with_prefix(path, prefix);
  EXPECT_TRUE(keys.ok()) << (keys.ok() ? "" : keys.error().message);
  return keys.ok() ? keys->size() : 0;
}

inline std::filesystem::path blob_dir(const std::string& path) { return std::filesystem::path(path) / "blobs"; }

// Blob files in a store's directories, committed or not.
inline std::size_t blob_file_count(const std::string& path) {
  std::size_t count = 0;
  std::error_code ec;
  for (const auto& file : std::filesystem::recursive_directory_iterator(blob_dir(path), ec)) {
    count += file.is_regular_file();
  }
  return count;
}

// The one blob file of a store holding a single blob.
inline std::filesystem::path only_blob_file(const std::string& path) {
  std::error_code ec;
  for (const auto& file : std::filesystem::recursive_directory_iterator(blob_dir(path), ec)) {
    if (file.is_regular_file()) return file.path();
  }
  return {};
}

// Every blob file of a store, in writer order (by name: the directories go by the last digits), so
// the i-th blob a fresh store committed has the i-th file.
inline std::vector<std::filesystem::path> blob_files_in_writer_order(const std::string& path) {
  std::vector<std::filesystem::path> files;
  for (const auto& file : std::filesystem::recursive_directory_iterator(blob_dir(path))) {
    if (file.is_regular_file()) files.push_back(file.path());
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.filename() < b.filename(); });
  return files;
}

}  // namespace ocigate::cache::test
