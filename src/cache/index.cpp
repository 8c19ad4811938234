#include "index.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <tuple>
#include <utility>

namespace ocigate::cache {

using codec::BlobMeta;

Error db_error(const std::string& what, const rocksdb::Status& status) {
  return {Errc::storage_error, what + ": " + status.ToString()};
}

Error closed_error() { return {Errc::storage_error, "the cache is closed"}; }

bool has_prefix(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::string_view(key.data(), prefix.size()) == prefix;
}

// The first key after every key that starts with prefix; empty when there is none.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

namespace {

std::uint64_t wall_ms() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

// Writes a batch of clean-up deletes found while opening; an empty one costs nothing.
Status write_cleanup(rocksdb::DB& db, rocksdb::WriteBatch& batch, const std::string& what) {
  if (batch.Count() == 0) return ok_status();
  auto status = db.Write(rocksdb::WriteOptions(), &batch);
  if (!status.ok()) return db_error(what, status);
  return ok_status();
}

}  // namespace

Status Index::load() {
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
Status Index::load_metas(std::unordered_set<std::uint64_t>& live_ids, std::uint64_t& max_id) {
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
Status Index::drop_legacy_chunks() {
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

Status Index::load_manifest_bytes() {
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
void Index::remove_orphan_files(const std::unordered_set<std::uint64_t>& live_ids, std::uint64_t& max_id) {
  std::error_code ec;
  for (const auto& file : std::filesystem::directory_iterator(blob_dir, ec)) {
    auto id = codec::parse_blob_file_name(file.path().filename().string());
    if (!id) continue;  // not ours
    max_id = std::max(max_id, *id);
    if (!live_ids.contains(*id)) std::filesystem::remove(file.path(), ec);
  }
}

void Index::close() {
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

Status Index::sync_dir() {
  if (::fsync(dir_.get()) != 0) return errno_error("cannot sync blob directory " + blob_dir);
  return ok_status();
}

void Index::reap() {
  std::vector<std::uint64_t> doomed;
  {
    std::lock_guard lock(index_mutex_);
    doomed.swap(doomed_);
  }
  // A failed unlink leaves an orphan that the next open() deletes.
  for (std::uint64_t id : doomed) (void)::unlink(file_path(id).c_str());
}

std::uint64_t Index::tick_locked() {
  last_tick_ = std::max(wall_ms(), last_tick_ + 1);
  return last_tick_;
}

void Index::insert_locked(std::string digest, const BlobMeta& meta) {
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
void Index::erase_locked(std::unordered_map<std::uint64_t, Entry>::iterator it) {
  Entry& entry = it->second;
  lru_.erase(entry.lru_position);
  by_digest_.erase(entry.digest);
  blob_bytes_ -= entry.meta.size;
  doomed_.push_back(it->first);
  by_id_.erase(it);
}

std::optional<OpenBlob> Index::pin(const std::string& digest, bool touch, rocksdb::DB* db) {
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

void Index::unpin(std::uint64_t writer_id, rocksdb::DB* db) {
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

std::optional<std::uint64_t> Index::blob_size(const std::string& digest) const {
  std::lock_guard lock(index_mutex_);
  auto found = by_digest_.find(digest);
  if (found == by_digest_.end()) return std::nullopt;
  return by_id_.at(found->second).meta.size;
}

// Removal does not wait for readers: they hold the file open and finish reading it.
Status Index::remove_blob(const std::string& digest, rocksdb::DB& db) {
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

Status Index::put_manifest(const std::string& digest, const ManifestEntry& entry, rocksdb::DB& db) {
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

Status Index::remove_manifest(const std::string& digest, rocksdb::DB& db) {
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

std::vector<std::string> Index::blob_digests() const {
  std::lock_guard lock(index_mutex_);
  std::vector<std::string> digests;
  digests.reserve(by_digest_.size());
  for (const auto& [digest, id] : by_digest_) digests.push_back(digest);
  std::sort(digests.begin(), digests.end());
  return digests;
}

std::optional<std::uint64_t> Index::reserve_commit(const std::string& digest) {
  std::lock_guard lock(index_mutex_);
  if (by_digest_.contains(digest) || committing_.contains(digest)) return std::nullopt;
  committing_.insert(digest);
  return tick_locked();
}

void Index::cancel_commit(const std::string& digest) {
  std::lock_guard lock(index_mutex_);
  committing_.erase(digest);
}

void Index::finish_commit(const std::string& digest, const BlobMeta& meta, rocksdb::DB& db) {
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
void Index::evict_locked(rocksdb::DB& db, const std::string* keep) {
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

Stats Index::stats() const {
  std::lock_guard lock(index_mutex_);
  Stats stats;
  stats.size_bytes = size_locked();
  stats.blob_count = by_digest_.size();
  stats.evictions = evictions_;
  stats.lost_files = lost_files_.load(std::memory_order_relaxed);
  stats.evicted_bytes = evicted_bytes_;
  return stats;
}

}  // namespace ocigate::cache
