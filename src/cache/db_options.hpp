#pragma once
// The RocksDB options of the cache database, shared by the store and the test-only access helpers.

#include <rocksdb/options.h>

namespace ocigate::cache {

rocksdb::Options cache_db_options();
// For the full scans at open: each block is read once, and keeping them would fill the block cache
// with every blob meta and manifest (tens of MiB of RSS in a big cache) that no request may ask for.
rocksdb::ReadOptions scan_options();

}  // namespace ocigate::cache
