#include "db_options.hpp"

namespace ocigate::cache {

rocksdb::Options cache_db_options() {
  rocksdb::Options options;
  options.create_if_missing = true;
  // Chunks live in blob files so compaction moves only small blob references, not layer bytes.
  // Layer data is already compressed, so blob compression would only burn CPU.
  options.enable_blob_files = true;
  options.min_blob_size = 64 * 1024;
  options.blob_compression_type = rocksdb::kNoCompression;
  // Evicted chunks are dropped by DeleteRange; garbage collection lets compaction reclaim blob files
  // that only partly hold dead chunks.
  options.enable_blob_garbage_collection = true;
  options.write_buffer_size = 16 << 20;  // memtables hold chunks until flushed: this bounds RSS
  options.max_write_buffer_number = 2;
  options.keep_log_file_num = 4;
  options.max_log_file_size = 16 << 20;
  return options;
}

}  // namespace ocigate::cache
