#pragma once
// The cache's index of committed blobs, in memory and in RocksDB. Internal to ocigate_cache.

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "blob_files.hpp"
#include "blob_key.hpp"
#include "codec.hpp"
#include "ocigate/cache/store.hpp"

namespace ocigate::cache {

inline constexpr std::uint32_t max_chunk_size = 256u << 20;
// A touch is written back to the meta only when the stored value is this stale: LRU order across
// restarts is approximate, and hot blobs do not cost a write per read. close() writes the rest.
inline constexpr std::uint64_t persist_access_after_ms = 60'000;
inline constexpr const char* blob_dir_name = "blobs";

Error db_error(const std::string& what, const rocksdb::Status& status);
Error closed_error();
bool has_prefix(const rocksdb::Slice& key, std::string_view prefix);
// The first key after every key that starts with prefix; empty when there is none.
std::string prefix_end(std::string prefix);

// A live blob in memory. Its digest is the map key (BlobKey); the LRU order is a list threaded
// through the entries themselves, so a blob costs one map node and nothing else.
struct Entry;
using Slot = std::pair<const BlobKey, Entry>;
struct Entry {
  codec::BlobMeta meta;
  std::uint64_t persisted_access = 0;
  std::uint32_t pins = 0;
  bool checked = true;    // false for a blob loaded at open until its file was seen whole
  Slot* older = nullptr;  // LRU neighbours
  Slot* newer = nullptr;
};

// The blob index (sizes, LRU order, pins, eviction, the commit protocol) and the database it
// lives in: state shared by the store and every reader and writer, so those may outlive close()
// and the Store.
// Lock order: db_mutex (shared for any use of db, exclusive to close) before index_mutex_.
// A thread never takes db_mutex twice, nor another lock while it holds reaper_mutex_.
class Index {
 public:
  // Starts the reaper thread, which deletes the files of blobs dropped from the index (hand_to_reaper).
  explicit Index(const Options& options)
      : options(options), blob_dir((std::filesystem::path(options.path) / blob_dir_name).string()) {
    reaper_ = std::thread([this] { reap_until_stopped(); });
  }
  ~Index() {
    stop_checking();
    stop_reaping();
  }
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  const Options options;
  const std::string blob_dir;
  mutable std::shared_mutex db_mutex;
  std::unique_ptr<rocksdb::DB> db;  // null once closed
  std::atomic<bool> closed{false};  // readers and writers fail once set

  Status load();
  // Checks the files of the blobs load() left unchecked, on a thread of its own, a batch at a time.
  void start_checking();
  void close();

  std::uint64_t allocate_writer_id() { return next_writer_id_.fetch_add(1); }
  std::string file_path(std::uint64_t writer_id) const { return blob_dir + "/" + codec::blob_file_path(writer_id); }
  // Creates a writer's new file (and its directory, should it be gone).
  FileHandle create_file(std::uint64_t writer_id);
  void report_lost(const std::string& digest, const std::string& why) {
    lost_files_.fetch_add(1, std::memory_order_relaxed);
    if (options.on_lost_file) options.on_lost_file(digest, why);
  }
  // Makes the name of a writer's new file durable.
  Status sync_dir(std::uint64_t writer_id);

  // Finds a live blob, pins it and opens its file; touch moves it to the most recently used end.
  // A blob whose file is gone is dropped from the index (and so fetched again).
  std::optional<OpenBlob> pin(const std::string& digest, bool touch, rocksdb::DB* db);
  // db may be null (closed): then only the count drops.
  void unpin(const BlobKey& key, std::uint64_t writer_id, rocksdb::DB* db);

  std::optional<std::uint64_t> blob_size(const std::string& digest, rocksdb::DB* db);
  Status remove_blob(const std::string& digest, rocksdb::DB& db);
  Status put_manifest(const std::string& digest, const ManifestEntry& entry, rocksdb::DB& db);
  Status remove_manifest(const std::string& digest, rocksdb::DB& db);
  std::vector<std::string> blob_digests() const;

  // Commit protocol: reserve (fails if the digest is committed or being committed), write, then
  // finish or cancel. The reservation returns the access tick for the new meta.
  std::optional<std::uint64_t> reserve_commit(const std::string& digest, rocksdb::DB* db);
  void cancel_commit(const std::string& digest);
  void finish_commit(const std::string& digest, const codec::BlobMeta& meta, rocksdb::DB& db);

  // Hands the files of blobs dropped from the index to the reaper thread and returns: unlinking
  // those of a whole eviction pass takes seconds, which no commit or I/O thread should wait for.
  // Readers that have one open keep reading it.
  void hand_to_reaper();
  // Returns once every file dropped so far is deleted (for tests and benchmarks).
  void wait_files_deleted();

  Stats stats() const;

 private:
  using Map = std::unordered_map<BlobKey, Entry, BlobKeyHash>;
  // Writer ids of the live blobs at open, sorted: which files are owned.
  using LiveIds = std::vector<std::uint64_t>;

  std::uint64_t tick_locked();
  std::string digest_locked(const BlobKey& key) const;
  Slot* find_locked(const std::string& digest);
  Slot* add_locked(const std::string& digest, const codec::BlobMeta& meta);
  void forget_locked(Slot* slot);
  void insert_locked(const std::string& digest, const codec::BlobMeta& meta);
  void erase_locked(Slot* slot);
  void link_newest_locked(Slot* slot);
  void unlink_locked(Slot* slot);
  void evict_locked(rocksdb::DB& db, const BlobKey* keep);
  std::uint64_t size_locked() const { return blob_bytes_ + manifest_bytes_; }
  std::optional<std::string> file_problem(const codec::BlobMeta& meta) const;
  bool usable_locked(Slot* slot, const std::string& digest, rocksdb::DB* db);
  void mark_checked_locked(Entry& entry);
  void drop_lost_locked(Slot* slot, const std::string& digest, const std::string& why, rocksdb::DB* db);
  bool check_batch(std::string& from);
  void check_one(const std::string& digest, rocksdb::DB* db);
  void stop_checking();
  void reap_until_stopped();
  bool stopping() const;
  bool past_stop_grace() const;
  void start_stop_grace();
  void stop_reaping();
  Status load_metas(LiveIds& live_ids);
  void drop_duplicate_claims(std::vector<std::pair<std::uint64_t, Slot*>>& by_id, rocksdb::WriteBatch& cleanup);
  void order_lru_locked();
  Status make_file_dirs();
  Status move_flat_files();
  Status sync_file_dirs();
  Status drop_legacy_chunks();
  Status load_manifest_bytes();
  void remove_orphan_files(const LiveIds& live_ids, std::uint64_t& max_id);

  std::mutex checker_mutex_;
  std::thread checker_;
  std::atomic<bool> stop_checking_{false};

  // The reaper's queue: writer ids whose files are to be deleted, in the order handed over.
  std::mutex reaper_mutex_;
  std::condition_variable reaper_wake_;  // ids queued, or stopping
  std::condition_variable reaped_;       // the queue ran dry
  std::vector<std::uint64_t> to_reap_;
  bool reaping_ = false;  // the reaper holds ids it has not unlinked yet
  // Until when a stopped reaper goes on deleting, in steady_clock ticks (0: running).
  std::atomic<std::chrono::steady_clock::rep> stop_deadline_{0};
  std::thread reaper_;  // started in the constructor's body, once every member exists

  std::atomic<std::uint64_t> next_writer_id_{1};
  FileHandle dir_;  // blob_dir, for fsync

  mutable std::mutex index_mutex_;
  Map blobs_;                                                 // live blobs
  std::unordered_map<BlobKey, std::string, BlobKeyHash> names_;  // digests that are no canonical SHA-256
  Slot* oldest_ = nullptr;                                    // the LRU list's ends
  Slot* newest_ = nullptr;
  std::unordered_set<BlobKey, BlobKeyHash> committing_;
  std::vector<std::uint64_t> doomed_;  // dropped from the index, not yet handed to the reaper
  std::uint64_t last_tick_ = 0;
  std::uint64_t blob_bytes_ = 0;
  std::uint64_t manifest_bytes_ = 0;
  std::uint64_t unchecked_ = 0;  // entries with checked == false
  std::uint64_t evictions_ = 0;
  std::atomic<std::uint64_t> lost_files_{0};
  std::uint64_t evicted_bytes_ = 0;
};

// A shared hold on the database: close() waits until it is released.
class DbLease {
 public:
  explicit DbLease(const Index& index) : lock_(index.db_mutex), db_(index.db.get()) {}
  rocksdb::DB* get() const { return db_; }
  rocksdb::DB& operator*() const { return *db_; }
  rocksdb::DB* operator->() const { return db_; }
  explicit operator bool() const { return db_ != nullptr; }

 private:
  std::shared_lock<std::shared_mutex> lock_;
  rocksdb::DB* db_;
};

}  // namespace ocigate::cache
