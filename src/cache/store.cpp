#include "ocigate/cache/store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "codec.hpp"
#include "db_options.hpp"

namespace ocigate::cache {

namespace {

using codec::BlobMeta;

constexpr std::uint32_t max_chunk_size = 256u << 20;
// A touch is written back to the meta only when the stored value is this stale: LRU order across
// restarts is approximate, and hot blobs do not cost a write per read. close() writes the rest.
constexpr std::uint64_t persist_access_after_ms = 60'000;

Error db_error(const std::string& what, const rocksdb::Status& status) {
  return {Errc::storage_error, what + ": " + status.ToString()};
}

Error closed_error() { return {Errc::storage_error, "the cache is closed"}; }

std::uint64_t wall_ms() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

bool has_prefix(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::string_view(key.data(), prefix.size()) == prefix;
}

// Which chunks make up a blob: the writer that staged them, their size, and the blob size.
struct ChunkSpan {
  std::uint64_t writer_id = 0;
  std::uint32_t chunk_size = 0;
  std::uint64_t size = 0;
};

// The last chunk a reader fetched: sequential reads smaller than a chunk fetch it once.
struct ChunkCache {
  std::uint64_t index = UINT64_MAX;
  std::string data;
};

rocksdb::ReadOptions chunk_read_options(bool verify) {
  rocksdb::ReadOptions read;
  read.verify_checksums = verify;
  return read;
}

// Fetches chunk index of span into value (which may point into RocksDB's memory or at the
// caller's buffer) and checks its length: anything but the expected length means lost data.
Status fetch_chunk(rocksdb::DB& db, const rocksdb::ReadOptions& read, const ChunkSpan& span, std::uint64_t index,
                   rocksdb::PinnableSlice& value) {
  const std::uint64_t expected = std::min<std::uint64_t>(span.chunk_size, span.size - index * span.chunk_size);
  value.Reset();
  auto status = db.Get(read, db.DefaultColumnFamily(), codec::chunk_key(span.writer_id, index), &value);
  if (status.IsNotFound()) {
    return Error{Errc::storage_error, "chunk " + std::to_string(index) + " of a cached blob is missing"};
  }
  if (!status.ok()) return db_error("cannot read chunk " + std::to_string(index) + " of a cached blob", status);
  if (value.size() != expected) {
    return Error{Errc::storage_error, "chunk " + std::to_string(index) + " of a cached blob has " +
                                          std::to_string(value.size()) + " bytes, expected " +
                                          std::to_string(expected)};
  }
  return ok_status();
}

// Reads one whole chunk straight into out (RocksDB copies it there once).
Result<std::size_t> read_whole_chunk(rocksdb::DB& db, const rocksdb::ReadOptions& read, const ChunkSpan& span,
                                     std::uint64_t index, std::string& out) {
  rocksdb::PinnableSlice value(&out);
  if (auto fetched = fetch_chunk(db, read, span, index, value); !fetched) {
    out.clear();
    return fetched.error();
  }
  if (value.IsPinned()) out.assign(value.data(), value.size());
  return out.size();
}

// Reads up to max bytes at offset, across chunk boundaries; stops early only at span.size.
// A read of exactly one whole chunk (the common case: readers ask for chunk-aligned pieces) goes
// straight into out; other reads go through cache, which keeps the last chunk for the next read.
Result<std::size_t> read_chunks(rocksdb::DB& db, const rocksdb::ReadOptions& read, const ChunkSpan& span,
                                std::uint64_t offset, std::size_t max, std::string& out, ChunkCache* cache) {
  out.clear();
  if (offset >= span.size) return std::size_t{0};
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(max, span.size - offset));
  const std::uint64_t first = offset / span.chunk_size;
  const std::uint64_t first_length = std::min<std::uint64_t>(span.chunk_size, span.size - first * span.chunk_size);
  if (offset % span.chunk_size == 0 && want == first_length && !(cache && cache->index == first)) {
    return read_whole_chunk(db, read, span, first, out);
  }
  out.reserve(want);
  rocksdb::PinnableSlice fetched;
  while (out.size() < want) {
    const std::uint64_t position = offset + out.size();
    const std::uint64_t index = position / span.chunk_size;
    const std::uint64_t chunk_start = index * span.chunk_size;
    const std::uint64_t expected = std::min<std::uint64_t>(span.chunk_size, span.size - chunk_start);
    std::string_view data;
    if (cache && cache->index == index) {
      data = cache->data;
    } else {
      if (auto got = fetch_chunk(db, read, span, index, fetched); !got) return got.error();
      if (cache) {
        cache->data.assign(fetched.data(), fetched.size());
        cache->index = index;
        data = cache->data;
      } else {
        data = std::string_view(fetched.data(), fetched.size());
      }
    }
    const std::uint64_t within = position - chunk_start;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(want - out.size(), expected - within));
    out.append(data.substr(static_cast<std::size_t>(within), n));
  }
  return out.size();
}

struct Entry {
  std::string digest;
  BlobMeta meta;
  std::uint64_t persisted_access = 0;
  std::uint32_t pins = 0;
  // False once removed while pinned: invisible, its chunks wait for the last reader.
  bool live = true;
  std::list<std::uint64_t>::iterator lru_position;  // valid only while live
};

// State shared by the store and every reader and writer, so those may outlive close() and the Store.
// Lock order: db_mutex (shared for any use of db, exclusive to close) before index_mutex_.
// A thread never takes db_mutex twice.
class Core {
 public:
  explicit Core(const Options& options) : options(options), chunk_reads(chunk_read_options(options.verify_reads)) {}

  const Options options;
  const rocksdb::ReadOptions chunk_reads;
  mutable std::shared_mutex db_mutex;
  std::unique_ptr<rocksdb::DB> db;  // null once closed

  Status load();
  void close();

  std::uint64_t allocate_writer_id() { return next_writer_id_.fetch_add(1); }

  // Finds a live blob and pins it; touch moves it to the most recently used end.
  std::optional<ChunkSpan> pin(const std::string& digest, bool touch, rocksdb::DB* db);
  // db may be null (closed): then only the count drops; open() later cleans what is left.
  void unpin(std::uint64_t writer_id, rocksdb::DB* db);

  std::optional<std::uint64_t> blob_size(const std::string& digest) const;
  Status remove_blob(const std::string& digest, rocksdb::DB& db);
  Status put_manifest(const std::string& digest, const ManifestEntry& entry, rocksdb::DB& db);
  Status remove_manifest(const std::string& digest, rocksdb::DB& db);
  std::vector<std::string> blob_digests() const;

  // Commit protocol: reserve (fails if the digest is committed or being committed), write, then
  // finish or cancel. The reservation returns the access tick for the new meta.
  std::optional<std::uint64_t> reserve_commit(const std::string& digest);
  void cancel_commit(const std::string& digest);
  void finish_commit(const std::string& digest, const BlobMeta& meta, rocksdb::DB& db);

  Stats stats() const;

 private:
  std::uint64_t tick_locked();
  void insert_locked(std::string digest, const BlobMeta& meta);
  void erase_locked(std::unordered_map<std::uint64_t, Entry>::iterator it);
  void evict_locked(rocksdb::DB& db, const std::string* keep);
  std::uint64_t size_locked() const { return blob_bytes_ + manifest_bytes_; }

  std::atomic<std::uint64_t> next_writer_id_{1};

  mutable std::mutex index_mutex_;
  std::unordered_map<std::uint64_t, Entry> by_id_;          // committed blobs, incl. removed but pinned
  std::unordered_map<std::string, std::uint64_t> by_digest_;  // live blobs
  std::list<std::uint64_t> lru_;                            // live blobs, least recently used first
  std::unordered_set<std::string> committing_;
  std::uint64_t last_tick_ = 0;
  std::uint64_t blob_bytes_ = 0;
  std::uint64_t manifest_bytes_ = 0;
  std::uint64_t evictions_ = 0;
  std::uint64_t evicted_bytes_ = 0;
};

// A shared hold on the database: close() waits until it is released.
class DbLease {
 public:
  explicit DbLease(const Core& core) : lock_(core.db_mutex), db_(core.db.get()) {}
  rocksdb::DB* get() const { return db_; }
  rocksdb::DB& operator*() const { return *db_; }
  rocksdb::DB* operator->() const { return db_; }
  explicit operator bool() const { return db_ != nullptr; }

 private:
  std::shared_lock<std::shared_mutex> lock_;
  rocksdb::DB* db_;
};

Status Core::load() {
  struct Loaded {
    std::string digest;
    BlobMeta meta;
  };
  std::vector<Loaded> loaded;
  std::unordered_set<std::uint64_t> live_ids;
  std::uint64_t max_id = 0;
  std::uint64_t manifest_bytes = 0;
  rocksdb::WriteBatch cleanup;

  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(codec::meta_prefix)); it->Valid() && has_prefix(it->key(), codec::meta_prefix);
       it->Next()) {
    std::string digest = it->key().ToString().substr(codec::meta_prefix.size());
    auto meta = codec::decode_meta(std::string_view(it->value().data(), it->value().size()));
    if (!meta || digest.empty() || live_ids.contains(meta->writer_id)) {
      // Unreadable, or claiming another blob's chunks: only dropping the meta keeps the index sound.
      cleanup.Delete(it->key());
      continue;
    }
    live_ids.insert(meta->writer_id);
    max_id = std::max(max_id, meta->writer_id);
    loaded.push_back({std::move(digest), *meta});
  }
  if (!it->status().ok()) return db_error("cannot scan cached blobs", it->status());

  for (it->Seek(std::string(codec::marker_prefix)); it->Valid() && has_prefix(it->key(), codec::marker_prefix);
       it->Next()) {
    auto id = codec::parse_marker_key(std::string_view(it->key().data(), it->key().size()));
    cleanup.Delete(it->key());
    if (!id) continue;
    max_id = std::max(max_id, *id);
    // A marker whose chunks a meta owns cannot come from our writes; keep the blob, drop the marker.
    if (!live_ids.contains(*id)) cleanup.DeleteRange(codec::chunks_begin(*id), codec::chunks_end(*id));
  }
  if (!it->status().ok()) return db_error("cannot scan staging markers", it->status());

  for (it->Seek(std::string(codec::manifest_prefix));
       it->Valid() && has_prefix(it->key(), codec::manifest_prefix); it->Next()) {
    auto bytes = codec::manifest_bytes_size(std::string_view(it->value().data(), it->value().size()));
    if (!bytes) {
      cleanup.Delete(it->key());
      continue;
    }
    manifest_bytes += *bytes;
  }
  if (!it->status().ok()) return db_error("cannot scan cached manifests", it->status());
  it.reset();

  if (cleanup.Count() > 0) {
    auto status = db->Write(rocksdb::WriteOptions(), &cleanup);
    if (!status.ok()) return db_error("cannot remove orphaned staging chunks", status);
  }

  std::sort(loaded.begin(), loaded.end(), [](const Loaded& a, const Loaded& b) {
    return std::tie(a.meta.last_access, a.meta.writer_id) < std::tie(b.meta.last_access, b.meta.writer_id);
  });
  std::lock_guard lock(index_mutex_);
  for (auto& blob : loaded) {
    last_tick_ = std::max(last_tick_, blob.meta.last_access);
    insert_locked(std::move(blob.digest), blob.meta);
  }
  manifest_bytes_ = manifest_bytes;
  next_writer_id_ = max_id + 1;
  return ok_status();
}

void Core::close() {
  std::unique_lock db_lock(db_mutex);
  if (!db) return;
  {
    std::lock_guard lock(index_mutex_);
    rocksdb::WriteBatch touched;
    for (auto& [id, entry] : by_id_) {
      if (entry.live && entry.meta.last_access != entry.persisted_access) {
        touched.Put(codec::meta_key(entry.digest), codec::encode_meta(entry.meta));
      }
    }
    // Best effort: losing these only makes the LRU order after a restart less exact.
    if (touched.Count() > 0) (void)db->Write(rocksdb::WriteOptions(), &touched);
  }
  // Flushing keeps the next open from replaying a large WAL; failures leave the WAL to replay.
  (void)db->Flush(rocksdb::FlushOptions());
  (void)db->SyncWAL();
  (void)db->Close();
  db.reset();
}

std::uint64_t Core::tick_locked() {
  last_tick_ = std::max(wall_ms(), last_tick_ + 1);
  return last_tick_;
}

void Core::insert_locked(std::string digest, const BlobMeta& meta) {
  const std::uint64_t id = meta.writer_id;
  Entry entry;
  entry.meta = meta;
  entry.persisted_access = meta.last_access;
  entry.lru_position = lru_.insert(lru_.end(), id);
  by_digest_[digest] = id;
  entry.digest = std::move(digest);
  blob_bytes_ += meta.size;
  by_id_[id] = std::move(entry);
}

void Core::erase_locked(std::unordered_map<std::uint64_t, Entry>::iterator it) {
  Entry& entry = it->second;
  if (entry.live) {
    lru_.erase(entry.lru_position);
    by_digest_.erase(entry.digest);
    blob_bytes_ -= entry.meta.size;
  }
  by_id_.erase(it);
}

std::optional<ChunkSpan> Core::pin(const std::string& digest, bool touch, rocksdb::DB* db) {
  std::lock_guard lock(index_mutex_);
  auto found = by_digest_.find(digest);
  if (found == by_digest_.end()) return std::nullopt;
  Entry& entry = by_id_.at(found->second);
  ++entry.pins;
  if (touch) {
    entry.meta.last_access = tick_locked();
    lru_.splice(lru_.end(), lru_, entry.lru_position);
    if (db && entry.meta.last_access - entry.persisted_access >= persist_access_after_ms) {
      // Under the index lock, so an eviction cannot delete the meta between our check and this write.
      auto status = db->Put(rocksdb::WriteOptions(), codec::meta_key(digest), codec::encode_meta(entry.meta));
      if (status.ok()) entry.persisted_access = entry.meta.last_access;
    }
  }
  return ChunkSpan{entry.meta.writer_id, entry.meta.chunk_size, entry.meta.size};
}

void Core::unpin(std::uint64_t writer_id, rocksdb::DB* db) {
  std::lock_guard lock(index_mutex_);
  auto it = by_id_.find(writer_id);
  if (it == by_id_.end()) return;
  Entry& entry = it->second;
  if (entry.pins > 0) --entry.pins;
  if (entry.pins > 0) return;
  if (!entry.live) {
    if (db) {
      rocksdb::WriteBatch batch;
      batch.DeleteRange(codec::chunks_begin(writer_id), codec::chunks_end(writer_id));
      batch.Delete(codec::marker_key(writer_id));
      // On failure the marker written by remove_blob stays, and the next open() deletes the chunks.
      (void)db->Write(rocksdb::WriteOptions(), &batch);
    }
    by_id_.erase(it);
    return;
  }
  // A blob kept only because it was pinned (or just committed) may go now.
  if (db) evict_locked(*db, nullptr);
}

std::optional<std::uint64_t> Core::blob_size(const std::string& digest) const {
  std::lock_guard lock(index_mutex_);
  auto found = by_digest_.find(digest);
  if (found == by_digest_.end()) return std::nullopt;
  return by_id_.at(found->second).meta.size;
}

Status Core::remove_blob(const std::string& digest, rocksdb::DB& db) {
  std::lock_guard lock(index_mutex_);
  auto found = by_digest_.find(digest);
  if (found == by_digest_.end()) return ok_status();
  const std::uint64_t id = found->second;
  auto it = by_id_.find(id);
  rocksdb::WriteBatch batch;
  batch.Delete(codec::meta_key(digest));
  if (it->second.pins == 0) {
    batch.DeleteRange(codec::chunks_begin(id), codec::chunks_end(id));
  } else {
    // Readers still use the chunks: the marker makes them orphans if we crash before the last unpin.
    batch.Put(codec::marker_key(id), "");
  }
  auto status = db.Write(rocksdb::WriteOptions(), &batch);
  if (!status.ok()) return db_error("cannot remove blob " + digest, status);
  if (it->second.pins == 0) {
    erase_locked(it);
  } else {
    Entry& entry = it->second;
    lru_.erase(entry.lru_position);
    by_digest_.erase(entry.digest);
    blob_bytes_ -= entry.meta.size;
    entry.live = false;
  }
  return ok_status();
}

Status Core::put_manifest(const std::string& digest, const ManifestEntry& entry, rocksdb::DB& db) {
  const std::string key = codec::manifest_key(digest);
  // Serialized with other manifest writes so the size accounting sees each replacement once.
  std::lock_guard lock(index_mutex_);
  rocksdb::PinnableSlice old;
  auto status = db.Get(rocksdb::ReadOptions(), db.DefaultColumnFamily(), key, &old);
  if (!status.ok() && !status.IsNotFound()) return db_error("cannot read manifest " + digest, status);
  std::uint64_t old_bytes = 0;
  if (status.ok()) old_bytes = codec::manifest_bytes_size(std::string_view(old.data(), old.size())).value_or(0);
  status = db.Put(rocksdb::WriteOptions(), key, codec::encode_manifest(entry));
  if (!status.ok()) return db_error("cannot store manifest " + digest, status);
  manifest_bytes_ = manifest_bytes_ - std::min(manifest_bytes_, old_bytes) + entry.bytes.size();
  evict_locked(db, nullptr);
  return ok_status();
}

Status Core::remove_manifest(const std::string& digest, rocksdb::DB& db) {
  const std::string key = codec::manifest_key(digest);
  std::lock_guard lock(index_mutex_);
  rocksdb::PinnableSlice old;
  auto status = db.Get(rocksdb::ReadOptions(), db.DefaultColumnFamily(), key, &old);
  if (status.IsNotFound()) return ok_status();
  if (!status.ok()) return db_error("cannot read manifest " + digest, status);
  const std::uint64_t old_bytes =
      codec::manifest_bytes_size(std::string_view(old.data(), old.size())).value_or(0);
  status = db.Delete(rocksdb::WriteOptions(), key);
  if (!status.ok()) return db_error("cannot remove manifest " + digest, status);
  manifest_bytes_ -= std::min(manifest_bytes_, old_bytes);
  return ok_status();
}

std::vector<std::string> Core::blob_digests() const {
  std::lock_guard lock(index_mutex_);
  std::vector<std::string> digests;
  digests.reserve(by_digest_.size());
  for (const auto& [digest, id] : by_digest_) digests.push_back(digest);
  std::sort(digests.begin(), digests.end());
  return digests;
}

std::optional<std::uint64_t> Core::reserve_commit(const std::string& digest) {
  std::lock_guard lock(index_mutex_);
  if (by_digest_.contains(digest) || committing_.contains(digest)) return std::nullopt;
  committing_.insert(digest);
  return tick_locked();
}

void Core::cancel_commit(const std::string& digest) {
  std::lock_guard lock(index_mutex_);
  committing_.erase(digest);
}

void Core::finish_commit(const std::string& digest, const BlobMeta& meta, rocksdb::DB& db) {
  std::lock_guard lock(index_mutex_);
  committing_.erase(digest);
  insert_locked(digest, meta);
  evict_locked(db, &digest);
}

// Evicts unpinned live blobs, least recently used first, until the size fits (or nothing else can
// go). `keep` is the blob just committed: it survives its own commit even if it alone is too big,
// and becomes evictable on the next pass (any commit, manifest write or last unpin).
void Core::evict_locked(rocksdb::DB& db, const std::string* keep) {
  const std::uint64_t size = size_locked();
  if (size <= options.max_size) return;
  rocksdb::WriteBatch batch;
  std::vector<std::uint64_t> victims;
  std::uint64_t freed = 0;
  for (std::uint64_t id : lru_) {
    if (size - freed <= options.max_size) break;
    const Entry& entry = by_id_.at(id);
    if (entry.pins > 0 || (keep && entry.digest == *keep)) continue;
    batch.Delete(codec::meta_key(entry.digest));
    batch.DeleteRange(codec::chunks_begin(id), codec::chunks_end(id));
    victims.push_back(id);
    freed += entry.meta.size;
  }
  if (victims.empty()) return;
  // On failure nothing changes in memory either, and the next pass tries again.
  if (!db.Write(rocksdb::WriteOptions(), &batch).ok()) return;
  for (std::uint64_t id : victims) {
    auto it = by_id_.find(id);
    ++evictions_;
    evicted_bytes_ += it->second.meta.size;
    erase_locked(it);
  }
}

Stats Core::stats() const {
  std::lock_guard lock(index_mutex_);
  Stats stats;
  stats.size_bytes = size_locked();
  stats.blob_count = by_digest_.size();
  stats.evictions = evictions_;
  stats.evicted_bytes = evicted_bytes_;
  return stats;
}

class Reader final : public BlobReader {
 public:
  Reader(std::shared_ptr<Core> core, ChunkSpan span) : core_(std::move(core)), span_(span) {}
  ~Reader() override {
    DbLease db(*core_);
    core_->unpin(span_.writer_id, db.get());
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  std::uint64_t size() const override { return span_.size; }
  std::uint32_t chunk_size() const override { return span_.chunk_size; }

  Result<std::size_t> read(std::uint64_t offset, std::size_t max, std::string& out) override {
    std::lock_guard lock(mutex_);
    DbLease db(*core_);
    if (!db) {
      out.clear();
      return closed_error();
    }
    return read_chunks(*db, core_->chunk_reads, span_, offset, max, out, &cache_);
  }

 private:
  std::shared_ptr<Core> core_;
  const ChunkSpan span_;  // pinned while this reader lives
  std::mutex mutex_;  // guards cache_
  ChunkCache cache_;
};

class Writer final : public BlobWriter {
 public:
  Writer(std::shared_ptr<Core> core, std::string digest, std::uint64_t writer_id)
      : core_(std::move(core)), digest_(std::move(digest)), id_(writer_id), chunk_size_(core_->options.chunk_size) {}
  ~Writer() override;
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Status append(std::string_view bytes) override;
  std::uint64_t appended() const override { return appended_.load(std::memory_order_acquire); }
  std::uint64_t staged() const override { return staged_.load(std::memory_order_acquire); }
  std::uint32_t chunk_size() const override { return chunk_size_; }
  Result<std::size_t> read_staged(std::uint64_t offset, std::size_t max, std::string& out) override;
  Status commit() override;

 private:
  enum class State { open, committed, failed };

  Status put_chunk(rocksdb::DB& db, std::string_view data);
  Status flush_staged(rocksdb::DB& db);
  Result<std::size_t> read_committed(rocksdb::DB& db, std::uint64_t offset, std::size_t max, std::string& out);
  void drop_staging(rocksdb::DB& db);

  std::shared_ptr<Core> core_;
  const std::string digest_;
  const std::uint64_t id_;
  const std::uint32_t chunk_size_;
  std::string buffer_;  // the partial chunk not yet written
  std::uint64_t next_chunk_ = 0;
  bool unlogged_ = false;  // some staged chunk skipped the write-ahead log
  std::atomic<std::uint64_t> appended_{0};
  std::atomic<std::uint64_t> staged_{0};
  std::atomic<State> state_{State::open};
};

Writer::~Writer() {
  if (state_.load() == State::committed) return;
  DbLease db(*core_);
  // Closed: the staging marker stays and the next open() deletes the chunks.
  if (db) drop_staging(*db);
}

void Writer::drop_staging(rocksdb::DB& db) {
  rocksdb::WriteBatch batch;
  batch.DeleteRange(codec::chunks_begin(id_), codec::chunks_end(id_));
  batch.Delete(codec::marker_key(id_));
  // On failure the marker stays, and the next open() deletes the chunks.
  (void)db.Write(rocksdb::WriteOptions(), &batch);
}

Status Writer::put_chunk(rocksdb::DB& db, std::string_view data) {
  // The first chunks of a blob go through the write-ahead log, so a small blob commits with one
  // synced log write. Past options.logged_chunk_bytes chunks skip the log (which would write and
  // checksum every byte once more); commit() then flushes them before logging the meta.
  rocksdb::WriteOptions options;
  options.disableWAL = static_cast<std::uint64_t>(next_chunk_) * chunk_size_ >= core_->options.logged_chunk_bytes;
  unlogged_ = unlogged_ || options.disableWAL;
  auto status = db.Put(options, codec::chunk_key(id_, next_chunk_), rocksdb::Slice(data.data(), data.size()));
  if (!status.ok()) {
    state_ = State::failed;
    return db_error("cannot stage chunk " + std::to_string(next_chunk_) + " of blob " + digest_, status);
  }
  ++next_chunk_;
  // Only now may read_staged see these bytes.
  staged_.fetch_add(chunk_size_, std::memory_order_release);
  return ok_status();
}

Status Writer::append(std::string_view bytes) {
  if (state_.load() != State::open) {
    return Error{Errc::internal, "append to a blob writer that was committed or failed"};
  }
  DbLease db(*core_);
  if (!db) {
    state_ = State::failed;
    return closed_error();
  }
  appended_.fetch_add(bytes.size(), std::memory_order_release);
  while (!bytes.empty()) {
    if (buffer_.empty() && bytes.size() >= chunk_size_) {
      // A whole chunk straight from the caller's bytes, without copying it into the buffer.
      if (auto put = put_chunk(*db, bytes.substr(0, chunk_size_)); !put) return put;
      bytes.remove_prefix(chunk_size_);
      continue;
    }
    if (buffer_.capacity() < chunk_size_) buffer_.reserve(chunk_size_);
    const std::size_t take = std::min<std::size_t>(chunk_size_ - buffer_.size(), bytes.size());
    buffer_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (buffer_.size() == chunk_size_) {
      if (auto put = put_chunk(*db, buffer_); !put) return put;
      buffer_.clear();
    }
  }
  return ok_status();
}

Status Writer::commit() {
  const State state = state_.load();
  if (state == State::committed) return Error{Errc::internal, "blob writer for " + digest_ + " committed twice"};
  if (state == State::failed) return Error{Errc::storage_error, "blob writer for " + digest_ + " failed earlier"};
  DbLease db(*core_);
  if (!db) {
    state_ = State::failed;
    return closed_error();
  }
  const std::uint64_t size = appended_.load();
  auto tick = core_->reserve_commit(digest_);
  if (!tick) {
    // Another writer committed (or is committing) the same digest: its bytes are ours.
    drop_staging(*db);
  } else if (auto flushed = flush_staged(*db); !flushed) {
    core_->cancel_commit(digest_);
    state_ = State::failed;
    return flushed;
  } else {
    BlobMeta meta{size, chunk_size_, id_, *tick};
    rocksdb::WriteBatch batch;
    if (!buffer_.empty()) batch.Put(codec::chunk_key(id_, next_chunk_), buffer_);
    batch.Put(codec::meta_key(digest_), codec::encode_meta(meta));
    batch.Delete(codec::marker_key(id_));
    rocksdb::WriteOptions durable;
    durable.sync = true;  // a commit that returned survives a crash right after
    auto status = db->Write(durable, &batch);
    if (!status.ok()) {
      core_->cancel_commit(digest_);
      state_ = State::failed;
      return db_error("cannot commit blob " + digest_, status);
    }
    core_->finish_commit(digest_, meta, *db);
  }
  buffer_.clear();
  buffer_.shrink_to_fit();
  staged_.store(size, std::memory_order_release);
  state_.store(State::committed, std::memory_order_release);
  return ok_status();
}

Status Writer::flush_staged(rocksdb::DB& db) {
  if (!unlogged_) return ok_status();  // every chunk is in the log already
  auto status = db.Flush(rocksdb::FlushOptions());
  if (!status.ok()) return db_error("cannot flush the chunks of blob " + digest_, status);
  return ok_status();
}

Result<std::size_t> Writer::read_committed(rocksdb::DB& db, std::uint64_t offset, std::size_t max,
                                           std::string& out) {
  auto pinned = core_->pin(digest_, false, &db);
  if (!pinned) {
    out.clear();
    return Error{Errc::storage_error, "blob " + digest_ + " left the cache after its commit"};
  }
  auto read = read_chunks(db, core_->chunk_reads, *pinned, offset, max, out, nullptr);
  core_->unpin(pinned->writer_id, &db);
  return read;
}

Result<std::size_t> Writer::read_staged(std::uint64_t offset, std::size_t max, std::string& out) {
  DbLease db(*core_);
  if (!db) {
    out.clear();
    return closed_error();
  }
  // After commit the bytes are read through the index: a racing writer of the same digest may
  // have committed them, and this writer's own chunks were dropped.
  if (state_.load(std::memory_order_acquire) == State::committed) return read_committed(*db, offset, max, out);
  const std::uint64_t staged = staged_.load(std::memory_order_acquire);
  auto read = read_chunks(*db, core_->chunk_reads, {id_, chunk_size_, staged}, offset, max, out, nullptr);
  if (!read && state_.load(std::memory_order_acquire) == State::committed) {
    return read_committed(*db, offset, max, out);
  }
  return read;
}

class StoreImpl final : public Store {
 public:
  explicit StoreImpl(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  ~StoreImpl() override { core_->close(); }
  StoreImpl(const StoreImpl&) = delete;
  StoreImpl& operator=(const StoreImpl&) = delete;

  std::optional<ManifestEntry> get_manifest(const std::string& digest) override;
  Status put_manifest(const std::string& digest, const ManifestEntry& entry) override;
  std::optional<TagEntry> get_tag(const std::string& repo_key, const std::string& tag) override;
  Status put_tag(const std::string& repo_key, const std::string& tag, const TagEntry& entry) override;
  std::optional<std::uint64_t> blob_size(const std::string& digest) override;
  std::unique_ptr<BlobReader> open_blob(const std::string& digest) override;
  Result<std::unique_ptr<BlobWriter>> begin_blob(const std::string& digest) override;
  Status remove_blob(const std::string& digest) override;
  std::optional<std::string> get_record(std::string_view space, std::string_view key) override;
  Status put_record(std::string_view space, std::string_view key, std::string_view value) override;
  Status remove_record(std::string_view space, std::string_view key) override;
  Status remove_records_outside(std::string_view space, std::string_view keep) override;
  Result<std::vector<std::string>> blob_digests() override;
  Result<std::vector<std::string>> manifest_digests() override;
  std::unique_ptr<BlobReader> inspect_blob(const std::string& digest) override;
  Status remove_manifest(const std::string& digest) override;
  Stats stats() const override { return core_->stats(); }
  void close() override { core_->close(); }

 private:
  std::optional<std::string> get_value(const std::string& key);

  std::shared_ptr<Core> core_;
};

// Keys that embed a NUL separator would be ambiguous if a part contained NUL itself.
bool has_nul(std::string_view part) { return part.find('\0') != std::string_view::npos; }

std::optional<std::string> StoreImpl::get_value(const std::string& key) {
  DbLease db(*core_);
  if (!db) return std::nullopt;
  std::string value;
  if (!db->Get(rocksdb::ReadOptions(), key, &value).ok()) return std::nullopt;
  return value;
}

std::optional<ManifestEntry> StoreImpl::get_manifest(const std::string& digest) {
  auto value = get_value(codec::manifest_key(digest));
  if (!value) return std::nullopt;
  return codec::decode_manifest(*value);
}

Status StoreImpl::put_manifest(const std::string& digest, const ManifestEntry& entry) {
  if (digest.empty()) return Error{Errc::digest_invalid, "cannot cache a manifest without a digest"};
  DbLease db(*core_);
  if (!db) return closed_error();
  return core_->put_manifest(digest, entry, *db);
}

std::optional<TagEntry> StoreImpl::get_tag(const std::string& repo_key, const std::string& tag) {
  if (has_nul(repo_key)) return std::nullopt;
  auto value = get_value(codec::tag_key(repo_key, tag));
  if (!value) return std::nullopt;
  return codec::decode_tag(*value);
}

Status StoreImpl::put_tag(const std::string& repo_key, const std::string& tag, const TagEntry& entry) {
  if (has_nul(repo_key)) return Error{Errc::name_invalid, "repository key contains a NUL byte"};
  DbLease db(*core_);
  if (!db) return closed_error();
  auto status = db->Put(rocksdb::WriteOptions(), codec::tag_key(repo_key, tag), codec::encode_tag(entry));
  if (!status.ok()) return db_error("cannot store tag " + repo_key + ":" + tag, status);
  return ok_status();
}

std::optional<std::uint64_t> StoreImpl::blob_size(const std::string& digest) {
  DbLease db(*core_);
  if (!db) return std::nullopt;
  return core_->blob_size(digest);
}

std::unique_ptr<BlobReader> StoreImpl::open_blob(const std::string& digest) {
  DbLease db(*core_);
  if (!db) return nullptr;
  auto pinned = core_->pin(digest, true, db.get());
  if (!pinned) return nullptr;
  return std::make_unique<Reader>(core_, *pinned);
}

Result<std::vector<std::string>> StoreImpl::blob_digests() {
  DbLease db(*core_);
  if (!db) return closed_error();
  return core_->blob_digests();
}

Result<std::vector<std::string>> StoreImpl::manifest_digests() {
  DbLease db(*core_);
  if (!db) return closed_error();
  std::vector<std::string> digests;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(codec::manifest_prefix));
       it->Valid() && has_prefix(it->key(), codec::manifest_prefix); it->Next()) {
    digests.push_back(it->key().ToString().substr(codec::manifest_prefix.size()));
  }
  if (!it->status().ok()) return db_error("cannot scan cached manifests", it->status());
  return digests;
}

std::unique_ptr<BlobReader> StoreImpl::inspect_blob(const std::string& digest) {
  DbLease db(*core_);
  if (!db) return nullptr;
  auto pinned = core_->pin(digest, false, db.get());
  if (!pinned) return nullptr;
  return std::make_unique<Reader>(core_, *pinned);
}

Status StoreImpl::remove_manifest(const std::string& digest) {
  DbLease db(*core_);
  if (!db) return closed_error();
  return core_->remove_manifest(digest, *db);
}

Result<std::unique_ptr<BlobWriter>> StoreImpl::begin_blob(const std::string& digest) {
  if (digest.empty()) return Error{Errc::digest_invalid, "cannot cache a blob without a digest"};
  DbLease db(*core_);
  if (!db) return closed_error();
  const std::uint64_t id = core_->allocate_writer_id();
  // Written before any chunk, so a crash can never leave chunks that open() would not find.
  auto status = db->Put(rocksdb::WriteOptions(), codec::marker_key(id), "");
  if (!status.ok()) return db_error("cannot start staging blob " + digest, status);
  return std::unique_ptr<BlobWriter>(std::make_unique<Writer>(core_, digest, id));
}

Status StoreImpl::remove_blob(const std::string& digest) {
  DbLease db(*core_);
  if (!db) return closed_error();
  return core_->remove_blob(digest, *db);
}

std::optional<std::string> StoreImpl::get_record(std::string_view space, std::string_view key) {
  if (has_nul(space)) return std::nullopt;
  return get_value(codec::record_key(space, key));
}

Status StoreImpl::put_record(std::string_view space, std::string_view key, std::string_view value) {
  if (has_nul(space)) return Error{Errc::internal, "record space contains a NUL byte"};
  DbLease db(*core_);
  if (!db) return closed_error();
  auto status = db->Put(rocksdb::WriteOptions(), codec::record_key(space, key),
                        rocksdb::Slice(value.data(), value.size()));
  if (!status.ok()) return db_error("cannot store record in " + std::string(space), status);
  return ok_status();
}

// The first key after every key that starts with prefix; empty when there is none.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

Status StoreImpl::remove_records_outside(std::string_view space, std::string_view keep) {
  if (has_nul(space)) return Error{Errc::internal, "record space contains a NUL byte"};
  if (keep.empty()) return ok_status();
  DbLease db(*core_);
  if (!db) return closed_error();
  const std::string space_begin = codec::record_key(space, "");
  const std::string space_end = prefix_end(space_begin);
  const std::string keep_begin = codec::record_key(space, keep);
  const std::string keep_end = prefix_end(keep_begin);
  rocksdb::WriteBatch batch;
  batch.DeleteRange(space_begin, keep_begin);
  if (keep_end < space_end) batch.DeleteRange(keep_end, space_end);
  auto status = db->Write(rocksdb::WriteOptions(), &batch);
  if (!status.ok()) return db_error("cannot remove stale records from " + std::string(space), status);
  return ok_status();
}

Status StoreImpl::remove_record(std::string_view space, std::string_view key) {
  if (has_nul(space)) return Error{Errc::internal, "record space contains a NUL byte"};
  DbLease db(*core_);
  if (!db) return closed_error();
  auto status = db->Delete(rocksdb::WriteOptions(), codec::record_key(space, key));
  if (!status.ok()) return db_error("cannot remove record from " + std::string(space), status);
  return ok_status();
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const Options& options) {
  if (options.path.empty()) return Error{Errc::config_invalid, "cache path is empty"};
  if (options.chunk_size == 0 || options.chunk_size > max_chunk_size) {
    return Error{Errc::config_invalid, "cache chunk size must be between 1 byte and " +
                                           std::to_string(max_chunk_size) + " bytes"};
  }
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) return Error{Errc::storage_error, "cannot create cache directory " + options.path + ": " + ec.message()};

  rocksdb::DB* raw = nullptr;
  auto status = rocksdb::DB::Open(cache_db_options(), options.path, &raw);
  if (!status.ok()) {
    std::string hint = status.ToString().find("lock") != std::string::npos
                           ? " (is another process using this cache directory?)"
                           : "";
    return Error{Errc::storage_error, "cannot open cache database at " + options.path + ": " + status.ToString() + hint};
  }
  auto core = std::make_shared<Core>(options);
  core->db.reset(raw);
  if (auto loaded = core->load(); !loaded) {
    core->close();
    return Error{loaded.error().code, "cannot load cache at " + options.path + ": " + loaded.error().message};
  }
  return std::unique_ptr<Store>(std::make_unique<StoreImpl>(std::move(core)));
}

}  // namespace ocigate::cache
