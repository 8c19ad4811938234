#include "db_options.hpp"

namespace ocigate::cache {

rocksdb::Options cache_db_options() {
  rocksdb::Options options;
  options.create_if_missing = true;
  // The database holds small values only (blob index entries, manifests up to 4 MiB, tags,
  // records): blob bodies are plain files beside it. Blob files of caches written by earlier builds
  // stay readable until their chunks are dropped at open.
  options.enable_blob_files = false;
  options.write_buffer_size = 16 << 20;
  options.max_write_buffer_number = 2;
  options.keep_log_file_num = 4;
  options.max_log_file_size = 16 << 20;
  return options;
}

rocksdb::ReadOptions scan_options() {
  rocksdb::ReadOptions options;
  options.fill_cache = false;
  options.readahead_size = 2 << 20;
  return options;
}

}  // namespace ocigate::cache
