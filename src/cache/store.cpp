#include "ocigate/cache/store.hpp"

#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <tuple>
#include <utility>
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
constexpr const char* blob_dir_name = "blobs";

Error db_error(const std::string& what, const rocksdb::Status& status) {
  return {Errc::storage_error, what + ": " + status.ToString()};
}

Error errno_error(const std::string& what) {
  return {Errc::storage_error, what + ": " + std::strerror(errno)};
}

Error closed_error() { return {Errc::storage_error, "the cache is closed"}; }

std::uint64_t wall_ms() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

bool has_prefix(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::string_view(key.data(), prefix.size()) == prefix;
}

// The first key after every key that starts with prefix; empty when there is none.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

// Writes a batch of clean-up deletes found while opening; an empty one costs nothing.
Status write_cleanup(rocksdb::DB& db, rocksdb::WriteBatch& batch, const std::string& what) {
  if (batch.Count() == 0) return ok_status();
  auto status = db.Write(rocksdb::WriteOptions(), &batch);
  if (!status.ok()) return db_error(what, status);
  return ok_status();
}

// An open file descriptor, closed with its owner.
class FileHandle {
 public:
  FileHandle() = default;
  explicit FileHandle(int fd) : fd_(fd) {}
  ~FileHandle() { reset(); }
  FileHandle(FileHandle&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileHandle& operator=(FileHandle&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Status write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("cannot write blob file");
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return ok_status();
}

// Reads up to max bytes at offset of a blob file holding size bytes into out (replacing what it
// held; a reused buffer is not cleared first, so a full-size one costs no fill). A file shorter
// than size is lost data: an error, never a short read.
Result<std::size_t> read_file(int fd, std::uint64_t size, std::uint64_t offset, std::size_t max, std::string& out) {
  if (offset >= size) {
    out.clear();
    return std::size_t{0};
  }
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(max, size - offset));
  out.resize(want);
  std::size_t got = 0;
  while (got < want) {
    const ssize_t n = ::pread(fd, out.data() + got, want - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.clear();
      return errno_error("cannot read a cached blob");
    }
    if (n == 0) {
      out.clear();
      return Error{Errc::storage_error, "the file of a cached blob ends at byte " + std::to_string(offset + got) +
                                            ", expected " + std::to_string(size)};
    }
    got += static_cast<std::size_t>(n);
  }
  return want;
}

// A committed blob opened for reading: its file stays readable while open, even once removed.
struct OpenBlob {
  std::uint64_t writer_id = 0;
  std::uint64_t size = 0;
  FileHandle file;
};

struct Entry {
  std::string digest;
  BlobMeta meta;
  std::uint64_t persisted_access = 0;
  std::uint32_t pins = 0;
  std::list<std::uint64_t>::iterator lru_position;
};

// State shared by the store and every reader and writer, so those may outlive close() and the Store.
// Lock order: db_mutex (shared for any use of db, exclusive to close) before index_mutex_.
// A thread never takes db_mutex twice.
class Core {
 public:
  explicit Core(const Options& options)
      : options(options), blob_dir((std::filesystem::path(options.path) / blob_dir_name).string()) {}

  const Options options;
  const std::string blob_dir;
  mutable std::shared_mutex db_mutex;
  std::unique_ptr<rocksdb::DB> db;  // null once closed
  std::atomic<bool> closed{false};  // readers and writers fail once set

  Status load();
  void close();

  std::uint64_t allocate_writer_id() { return next_writer_id_.fetch_add(1); }
  std::string file_path(std::uint64_t writer_id) const { return blob_dir + "/" + codec::blob_file_name(writer_id); }
  void report_lost(const std::string& digest, const std::string& why) {
    lost_files_.fetch_add(1, std::memory_order_relaxed);
    if (options.on_lost_file) options.on_lost_file(digest, why);
  }
  // Makes the names of files created since the last call durable.
  Status sync_dir();

  // Finds a live blob, pins it and opens its file; touch moves it to the most recently used end.
  // A blob whose file is gone is dropped from the index (and so fetched again).
  std::optional<OpenBlob> pin(const std::string& digest, bool touch, rocksdb::DB* db);
  // db may be null (closed): then only the count drops.
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

  // Deletes the files of blobs dropped from the index, outside the index lock (a big file takes
  // a while to unlink). Readers that have one open keep reading it.
  void reap();

  Stats stats() const;

 private:
  std::uint64_t tick_locked();
  void insert_locked(std::string digest, const BlobMeta& meta);
  void erase_locked(std::unordered_map<std::uint64_t, Entry>::iterator it);
  void evict_locked(rocksdb::DB& db, const std::string* keep);
  std::uint64_t size_locked() const { return blob_bytes_ + manifest_bytes_; }
  Status load_metas(std::unordered_set<std::uint64_t>& live_ids, std::uint64_t& max_id);
  Status drop_legacy_chunks();
  Status load_manifest_bytes();
  void remove_orphan_files(const std::unordered_set<std::uint64_t>& live_ids, std::uint64_t& max_id);

  std::atomic<std::uint64_t> next_writer_id_{1};
  FileHandle dir_;  // blob_dir, for fsync

  mutable std::mutex index_mutex_;
  std::unordered_map<std::uint64_t, Entry> by_id_;            // live blobs
  std::unordered_map<std::string, std::uint64_t> by_digest_;  // live blobs
  std::list<std::uint64_t> lru_;                              // least recently used first
  std::unordered_set<std::string> committing_;
  std::vector<std::uint64_t> doomed_;  // dropped from the index, files not yet deleted
  std::uint64_t last_tick_ = 0;
  std::uint64_t blob_bytes_ = 0;
  std::uint64_t manifest_bytes_ = 0;
  std::uint64_t evictions_ = 0;
  std::atomic<std::uint64_t> lost_files_{0};
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
  dir_ = FileHandle(::open(blob_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_) return errno_error("cannot open blob directory " + blob_dir);
  std::unordered_set<std::uint64_t> live_ids;
  std::uint64_t max_id = 0;
  if (auto loaded = load_metas(live_ids, max_id); !loaded) return loaded;
  if (auto dropped = drop_legacy_chunks(); !dropped) return dropped;
  if (auto sized = load_manifest_bytes(); !sized) return sized;
  remove_orphan_files(live_ids, max_id);
  next_writer_id_ = max_id + 1;
  return ok_status();
}

// Loads every blob meta whose file is there whole into the index; drops the others.
Status Core::load_metas(std::unordered_set<std::uint64_t>& live_ids, std::uint64_t& max_id) {
  struct Loaded {
    std::string digest;
    BlobMeta meta;
  };
  std::vector<Loaded> loaded;
  rocksdb::WriteBatch cleanup;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(codec::meta_prefix)); it->Valid() && has_prefix(it->key(), codec::meta_prefix);
       it->Next()) {
    std::string digest = it->key().ToString().substr(codec::meta_prefix.size());
    auto meta = codec::decode_meta(std::string_view(it->value().data(), it->value().size()));
    struct stat file {};
    // Unreadable (or an older format), claiming another blob's file, or its file lost or cut short
    // by a crash: dropping the meta keeps the index sound, and the blob is fetched again.
    if (!meta || digest.empty() || live_ids.contains(meta->writer_id)) {
      cleanup.Delete(it->key());
      continue;
    }
    const bool present = ::stat(file_path(meta->writer_id).c_str(), &file) == 0;
    if (!present || static_cast<std::uint64_t>(file.st_size) != meta->size) {
      report_lost(digest, present ? "its file has " + std::to_string(file.st_size) + " of " +
                                        std::to_string(meta->size) + " bytes"
                                  : "its file is missing");
      cleanup.Delete(it->key());
      continue;
    }
    live_ids.insert(meta->writer_id);
    max_id = std::max(max_id, meta->writer_id);
    loaded.push_back({std::move(digest), *meta});
  }
  if (!it->status().ok()) return db_error("cannot scan cached blobs", it->status());
  it.reset();
  if (auto written = write_cleanup(*db, cleanup, "cannot drop unusable blob entries"); !written) return written;
  std::sort(loaded.begin(), loaded.end(), [](const Loaded& a, const Loaded& b) {
    return std::tie(a.meta.last_access, a.meta.writer_id) < std::tie(b.meta.last_access, b.meta.writer_id);
  });
  std::lock_guard lock(index_mutex_);
  for (auto& blob : loaded) {
    last_tick_ = std::max(last_tick_, blob.meta.last_access);
    insert_locked(std::move(blob.digest), blob.meta);
  }
  return ok_status();
}

// Blobs of earlier versions lived in the database as chunks: two range deletes drop them all.
Status Core::drop_legacy_chunks() {
  rocksdb::WriteBatch batch;
  for (std::string_view prefix : {codec::legacy_chunk_prefix, codec::legacy_marker_prefix}) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    it->Seek(std::string(prefix));
    if (!it->status().ok()) return db_error("cannot scan for old blob chunks", it->status());
    if (!it->Valid() || !has_prefix(it->key(), prefix)) continue;
    batch.DeleteRange(std::string(prefix), prefix_end(std::string(prefix)));
  }
  return write_cleanup(*db, batch, "cannot drop old blob chunks");
}

Status Core::load_manifest_bytes() {
  std::uint64_t manifest_bytes = 0;
  rocksdb::WriteBatch cleanup;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
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
  if (auto written = write_cleanup(*db, cleanup, "cannot drop unreadable manifests"); !written) return written;
  std::lock_guard lock(index_mutex_);
  manifest_bytes_ = manifest_bytes;
  return ok_status();
}

// Files no meta owns: a writer killed before its commit, or a removal cut short by a crash.
void Core::remove_orphan_files(const std::unordered_set<std::uint64_t>& live_ids, std::uint64_t& max_id) {
  std::error_code ec;
  for (const auto& file : std::filesystem::directory_iterator(blob_dir, ec)) {
    auto id = codec::parse_blob_file_name(file.path().filename().string());
    if (!id) continue;  // not ours
    max_id = std::max(max_id, *id);
    if (!live_ids.contains(*id)) std::filesystem::remove(file.path(), ec);
  }
}

void Core::close() {
  std::unique_lock db_lock(db_mutex);
  if (!db) return;
  {
    std::lock_guard lock(index_mutex_);
    rocksdb::WriteBatch touched;
    for (auto& [id, entry] : by_id_) {
      if (entry.meta.last_access != entry.persisted_access) {
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
  closed = true;
  db_lock.unlock();
  reap();
}

Status Core::sync_dir() {
  if (::fsync(dir_.get()) != 0) return errno_error("cannot sync blob directory " + blob_dir);
  return ok_status();
}

void Core::reap() {
  std::vector<std::uint64_t> doomed;
  {
    std::lock_guard lock(index_mutex_);
    doomed.swap(doomed_);
  }
  // A failed unlink leaves an orphan that the next open() deletes.
  for (std::uint64_t id : doomed) (void)::unlink(file_path(id).c_str());
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

// Drops a blob from the index; its file is deleted by the next reap().
void Core::erase_locked(std::unordered_map<std::uint64_t, Entry>::iterator it) {
  Entry& entry = it->second;
  lru_.erase(entry.lru_position);
  by_digest_.erase(entry.digest);
  blob_bytes_ -= entry.meta.size;
  doomed_.push_back(it->first);
  by_id_.erase(it);
}

std::optional<OpenBlob> Core::pin(const std::string& digest, bool touch, rocksdb::DB* db) {
  std::lock_guard lock(index_mutex_);
  auto found = by_digest_.find(digest);
  if (found == by_digest_.end()) return std::nullopt;
  auto it = by_id_.find(found->second);
  Entry& entry = it->second;
  // Opened under the index lock, so no eviction can delete the file in between.
  FileHandle file(::open(file_path(entry.meta.writer_id).c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) {
    // Lost from under us (deleted by hand, a broken disk): forget it, so it is fetched again.
    report_lost(digest, std::string("its file cannot be opened: ") + std::strerror(errno));
    if (db && db->Delete(rocksdb::WriteOptions(), codec::meta_key(digest)).ok()) erase_locked(it);
    return std::nullopt;
  }
  (void)::posix_fadvise(file.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
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
  return OpenBlob{entry.meta.writer_id, entry.meta.size, std::move(file)};
}

void Core::unpin(std::uint64_t writer_id, rocksdb::DB* db) {
  {
    std::lock_guard lock(index_mutex_);
    auto it = by_id_.find(writer_id);
    if (it == by_id_.end()) return;  // removed meanwhile
    Entry& entry = it->second;
    if (entry.pins > 0) --entry.pins;
    if (entry.pins > 0) return;
    // A blob kept only because it was pinned (or just committed) may go now.
    if (db) evict_locked(*db, nullptr);
  }
  reap();
}

std::optional<std::uint64_t> Core::blob_size(const std::string& digest) const {
  std::lock_guard lock(index_mutex_);
  auto found = by_digest_.find(digest);
  if (found == by_digest_.end()) return std::nullopt;
  return by_id_.at(found->second).meta.size;
}

// Removal does not wait for readers: they hold the file open and finish reading it.
Status Core::remove_blob(const std::string& digest, rocksdb::DB& db) {
  {
    std::lock_guard lock(index_mutex_);
    auto found = by_digest_.find(digest);
    if (found == by_digest_.end()) return ok_status();
    auto status = db.Delete(rocksdb::WriteOptions(), codec::meta_key(digest));
    if (!status.ok()) return db_error("cannot remove blob " + digest, status);
    erase_locked(by_id_.find(found->second));
  }
  reap();
  return ok_status();
}

Status Core::put_manifest(const std::string& digest, const ManifestEntry& entry, rocksdb::DB& db) {
  const std::string key = codec::manifest_key(digest);
  {
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
  }
  reap();
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
  {
    std::lock_guard lock(index_mutex_);
    committing_.erase(digest);
    insert_locked(digest, meta);
    evict_locked(db, &digest);
  }
  reap();
}

// Evicts unpinned blobs, least recently used first, until the size fits (or nothing else can
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
  stats.lost_files = lost_files_.load(std::memory_order_relaxed);
  stats.evicted_bytes = evicted_bytes_;
  return stats;
}

class Reader final : public BlobReader {
 public:
  Reader(std::shared_ptr<Core> core, OpenBlob blob) : core_(std::move(core)), blob_(std::move(blob)) {}
  ~Reader() override {
    DbLease db(*core_);
    core_->unpin(blob_.writer_id, db.get());
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  std::uint64_t size() const override { return blob_.size; }
  std::uint32_t chunk_size() const override { return core_->options.chunk_size; }

  Result<std::size_t> read(std::uint64_t offset, std::size_t max, std::string& out) override {
    if (core_->closed.load(std::memory_order_relaxed)) {
      out.clear();
      return closed_error();
    }
    return read_file(blob_.file.get(), blob_.size, offset, max, out);
  }
  int file_descriptor() const override { return blob_.file.get(); }

 private:
  std::shared_ptr<Core> core_;
  const OpenBlob blob_;  // pinned while this reader lives
};

class Writer final : public BlobWriter {
 public:
  Writer(std::shared_ptr<Core> core, std::string digest, std::uint64_t writer_id, FileHandle file)
      : core_(std::move(core)), digest_(std::move(digest)), id_(writer_id), file_(std::move(file)) {}
  ~Writer() override;
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Status append(std::string_view bytes) override;
  std::uint64_t appended() const override { return appended_.load(std::memory_order_acquire); }
  std::uint64_t staged() const override { return appended(); }
  std::uint32_t chunk_size() const override { return core_->options.chunk_size; }
  Result<std::size_t> read_staged(std::uint64_t offset, std::size_t max, std::string& out) override;
  int file_descriptor() const override { return file_.get(); }
  Status commit() override;

 private:
  enum class State { open, committed, failed };

  Status fail(Error error) {
    state_ = State::failed;
    return error;
  }
  Status publish(rocksdb::DB& db, std::uint64_t size, std::uint64_t tick);

  std::shared_ptr<Core> core_;
  const std::string digest_;
  const std::uint64_t id_;
  const FileHandle file_;
  bool owns_file_ = true;  // false once the index owns it
  std::atomic<std::uint64_t> appended_{0};
  std::atomic<State> state_{State::open};
};

Writer::~Writer() {
  if (owns_file_) (void)::unlink(core_->file_path(id_).c_str());  // a failed unlink leaves an orphan for open()
}

Status Writer::append(std::string_view bytes) {
  if (state_.load() != State::open) {
    return Error{Errc::internal, "append to a blob writer that was committed or failed"};
  }
  if (core_->closed.load(std::memory_order_relaxed)) return fail(closed_error());
  if (auto written = write_all(file_.get(), bytes); !written) {
    return fail({Errc::storage_error, written.error().message + " of blob " + digest_});
  }
  // Only now may read_staged see these bytes.
  appended_.fetch_add(bytes.size(), std::memory_order_release);
  return ok_status();
}

Result<std::size_t> Writer::read_staged(std::uint64_t offset, std::size_t max, std::string& out) {
  // The file stays open (and readable) whatever happens to it: a racing writer of the same digest
  // may have won the commit and this one's file was unlinked; its bytes are the same.
  if (core_->closed.load(std::memory_order_relaxed)) {
    out.clear();
    return closed_error();
  }
  return read_file(file_.get(), appended(), offset, max, out);
}

Status Writer::commit() {
  const State state = state_.load();
  if (state == State::committed) return Error{Errc::internal, "blob writer for " + digest_ + " committed twice"};
  if (state == State::failed) return Error{Errc::storage_error, "blob writer for " + digest_ + " failed earlier"};
  DbLease db(*core_);
  if (!db) return fail(closed_error());
  const std::uint64_t size = appended_.load();
  auto tick = core_->reserve_commit(digest_);
  if (tick) {
    if (auto published = publish(*db, size, *tick); !published) {
      core_->cancel_commit(digest_);
      return fail(published.error());
    }
  }
  if (!tick && owns_file_) {
    // Another writer committed (or is committing) the same digest: its bytes are ours. This file
    // goes; it stays readable through file_ for read_staged.
    (void)::unlink(core_->file_path(id_).c_str());
    owns_file_ = false;
  }
  state_.store(State::committed, std::memory_order_release);
  return ok_status();
}

// Makes the file durable, then logs its meta with a synced write: a commit that returned survives
// a crash right after, and a crash before leaves at most an orphan file.
Status Writer::publish(rocksdb::DB& db, std::uint64_t size, std::uint64_t tick) {
  if (::fdatasync(file_.get()) != 0) return errno_error("cannot sync the file of blob " + digest_);
  if (auto synced = core_->sync_dir(); !synced) return synced;
  BlobMeta meta{size, id_, tick};
  rocksdb::WriteOptions durable;
  durable.sync = true;
  auto status = db.Put(durable, codec::meta_key(digest_), codec::encode_meta(meta));
  if (!status.ok()) return db_error("cannot commit blob " + digest_, status);
  owns_file_ = false;
  core_->finish_commit(digest_, meta, db);
  return ok_status();
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
  return std::make_unique<Reader>(core_, std::move(*pinned));
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
  return std::make_unique<Reader>(core_, std::move(*pinned));
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
  FileHandle file(::open(core_->file_path(id).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!file) return errno_error("cannot create a file for blob " + digest + " in " + core_->blob_dir);
  return std::unique_ptr<BlobWriter>(std::make_unique<Writer>(core_, digest, id, std::move(file)));
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

// RocksDB starts a pool's threads at its first job. A thread inherits the CPU mask of the thread
// that starts it, and the server pins its I/O threads (server.pin_threads): start them now, from
// the opening thread, so flushes and compactions may run on any CPU.
void start_background_threads(rocksdb::DB& db) {
  for (auto priority : {rocksdb::Env::Priority::LOW, rocksdb::Env::Priority::HIGH}) {
    db.GetEnv()->Schedule([](void*) {}, nullptr, priority);
  }
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const Options& options) {
  if (options.path.empty()) return Error{Errc::config_invalid, "cache path is empty"};
  if (options.chunk_size == 0 || options.chunk_size > max_chunk_size) {
    return Error{Errc::config_invalid, "cache chunk size must be between 1 byte and " +
                                           std::to_string(max_chunk_size) + " bytes"};
  }
  std::error_code ec;
  const auto blob_dir = std::filesystem::path(options.path) / blob_dir_name;
  std::filesystem::create_directories(blob_dir, ec);
  if (ec) return Error{Errc::storage_error, "cannot create cache directory " + blob_dir.string() + ": " + ec.message()};

  rocksdb::DB* raw = nullptr;
  auto status = rocksdb::DB::Open(cache_db_options(), options.path, &raw);
  if (!status.ok()) {
    std::string hint = status.ToString().find("lock") != std::string::npos
                           ? " (is another process using this cache directory?)"
                           : "";
    return Error{Errc::storage_error, "cannot open cache database at " + options.path + ": " + status.ToString() + hint};
  }
  start_background_threads(*raw);
  auto core = std::make_shared<Core>(options);
  core->db.reset(raw);
  if (auto loaded = core->load(); !loaded) {
    core->close();
    return Error{loaded.error().code, "cannot load cache at " + options.path + ": " + loaded.error().message};
  }
  return std::unique_ptr<Store>(std::make_unique<StoreImpl>(std::move(core)));
}

}  // namespace ocigate::cache
