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
  // Evicted chunks are dropped by DeleteRange, and a blob file is deleted once none of its chunks
  // is live. Each flush writes its own blob files (at most one memtable, 16 MiB, of chunks), so
  // files die with the few blobs they hold. Garbage collection would instead rewrite live chunks
  // of old files during every compaction: measured, it cost as much CPU as the cold fill itself.
  options.enable_blob_garbage_collection = false;
  options.write_buffer_size = 16 << 20;  // memtables hold chunks until flushed: this bounds RSS
  options.max_write_buffer_number = 2;
  options.keep_log_file_num = 4;
  options.max_log_file_size = 16 << 20;
  return options;
}

}  // namespace ocigate::cache
