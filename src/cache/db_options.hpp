#pragma once
// The RocksDB options of the cache database, shared by the store and the test-only access helpers.

#include <rocksdb/options.h>

namespace ocigate::cache {

rocksdb::Options cache_db_options();

}  // namespace ocigate::cache
