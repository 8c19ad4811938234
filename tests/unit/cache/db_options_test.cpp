#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <cstdint>
#include <memory>
#include <string>

#include "../../../src/cache/db_options.hpp"
#include "helpers.hpp"

namespace ocigate::cache::test {
namespace {

std::uint64_t block_cache_usage(rocksdb::DB& db) {
  std::uint64_t usage = 0;
  EXPECT_TRUE(db.GetIntProperty("rocksdb.block-cache-usage", &usage));
  return usage;
}

std::uint64_t scan(rocksdb::DB& db, const rocksdb::ReadOptions& options) {
  std::uint64_t keys = 0;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(options));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++keys;
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return keys;
}

// The scans at open read every blob meta and manifest once: they leave the block cache (and so the
// RSS) as they found it; an ordinary read fills it with every block.
TEST(CacheDbOptions, TheScansAtOpenLeaveTheBlockCacheAsTheyFoundIt) {
  TempDir dir;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(cache_db_options(), dir.path(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "b/sha256:" + std::to_string(i), std::string(100, 'x')).ok());
  }
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());  // from table files, not the memtable
  const std::uint64_t opened = block_cache_usage(*db);  // what opening the table file keeps
  EXPECT_EQ(scan(*db, scan_options()), 5000u);
  EXPECT_EQ(block_cache_usage(*db), opened);
  EXPECT_EQ(scan(*db, rocksdb::ReadOptions()), 5000u);
  EXPECT_GT(block_cache_usage(*db), opened + 5000 * 100);
}

}  // namespace
}  // namespace ocigate::cache::test
