#include "index.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <tuple>
#include <utility>

#include "db_options.hpp"

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
  if (auto made = make_file_dirs(); !made) return made;
  if (auto moved = move_flat_files(); !moved) return moved;
  LiveIds live_ids;
  if (auto loaded = load_metas(live_ids); !loaded) return loaded;
  if (auto dropped = drop_legacy_chunks(); !dropped) return dropped;
  if (auto sized = load_manifest_bytes(); !sized) return sized;
  std::uint64_t max_id = live_ids.empty() ? 0 : live_ids.back();
  remove_orphan_files(live_ids, max_id);
  next_writer_id_ = max_id + 1;
  return ok_status();
}

// Why a blob's file cannot serve its meta (missing, or cut short by a crash); nullopt if it can.
std::optional<std::string> Index::file_problem(const BlobMeta& meta) const {
  struct stat file {};
  if (::stat(file_path(meta.writer_id).c_str(), &file) != 0) return "its file is missing";
  if (static_cast<std::uint64_t>(file.st_size) == meta.size) return std::nullopt;
  return "its file has " + std::to_string(file.st_size) + " of " + std::to_string(meta.size) + " bytes";
}

// Loads every readable blob meta into the index, unchecked; drops the others.
Status Index::load_metas(LiveIds& live_ids) {
  rocksdb::WriteBatch cleanup;
  std::vector<std::pair<std::uint64_t, Slot*>> by_id;
  std::lock_guard lock(index_mutex_);  // nothing else runs yet; held for the helpers' sake
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(scan_options()));
  for (it->Seek(std::string(codec::meta_prefix)); it->Valid() && has_prefix(it->key(), codec::meta_prefix);
       it->Next()) {
    const std::string digest = it->key().ToString().substr(codec::meta_prefix.size());
    auto meta = codec::decode_meta(std::string_view(it->value().data(), it->value().size()));
    // Unreadable (or an older format): dropping the meta keeps the index sound, and the blob is
    // fetched again. Whether its file is there whole is checked later (check_batch, usable_locked).
    if (!meta || digest.empty()) {
      cleanup.Delete(it->key());
      continue;
    }
    Slot* slot = add_locked(digest, *meta);
    slot->second.checked = false;
    ++unchecked_;
    by_id.emplace_back(meta->writer_id, slot);
  }
  if (!it->status().ok()) return db_error("cannot scan cached blobs", it->status());
  it.reset();
  drop_duplicate_claims(by_id, cleanup);
  if (auto written = write_cleanup(*db, cleanup, "cannot drop unusable blob entries"); !written) return written;
  live_ids.reserve(by_id.size());
  for (const auto& [id, slot] : by_id) live_ids.push_back(id);
  order_lru_locked();
  return ok_status();
}

// A meta claiming another blob's file (the first in key order owns it) is dropped, its file kept.
// Leaves by_id sorted by writer id, one entry per id.
void Index::drop_duplicate_claims(std::vector<std::pair<std::uint64_t, Slot*>>& by_id, rocksdb::WriteBatch& cleanup) {
  std::stable_sort(by_id.begin(), by_id.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  auto claimed = [](const auto& a, const auto& b) { return a.first == b.first; };
  for (auto it = std::adjacent_find(by_id.begin(), by_id.end(), claimed); it != by_id.end();
       it = std::adjacent_find(it, by_id.end(), claimed)) {  // from it again: a third may claim it too
    cleanup.Delete(codec::meta_key(digest_locked((it + 1)->second->first)));
    forget_locked((it + 1)->second);
    by_id.erase(it + 1);
  }
}

// Links the loaded blobs least recently used first.
void Index::order_lru_locked() {
  std::vector<Slot*> order;
  order.reserve(blobs_.size());
  for (auto& slot : blobs_) order.push_back(&slot);
  std::sort(order.begin(), order.end(), [](const Slot* a, const Slot* b) {
    return std::tie(a->second.meta.last_access, a->second.meta.writer_id) <
           std::tie(b->second.meta.last_access, b->second.meta.writer_id);
  });
  for (Slot* slot : order) {
    last_tick_ = std::max(last_tick_, slot->second.meta.last_access);
    link_newest_locked(slot);
  }
}

void Index::start_checking() {
  std::lock_guard lock(checker_mutex_);
  if (!checker_.joinable()) {
    checker_ = std::thread([this] {
      std::string from(codec::meta_prefix);
      while (!stop_checking_.load() && check_batch(from)) {
      }
    });
  }
}

void Index::stop_checking() {
  stop_checking_ = true;
  std::lock_guard lock(checker_mutex_);
  if (checker_.joinable()) checker_.join();
}

// Unlinks the queued files a batch at a time, outside every lock. Stopped, it goes on emptying the
// queue for up to options.close_delete_grace: those files are out of the index already. What is
// left then stays as orphans for the next open() to delete, so that a stop right after a mass
// eviction (a 10% pass at 1M blobs unlinks for 20-30 s) does not hold up the process's exit. A
// failed unlink leaves such an orphan too, so this never hangs on a file it cannot delete.
void Index::reap_until_stopped() {
  std::unique_lock lock(reaper_mutex_);
  for (;;) {
    reaper_wake_.wait(lock, [this] { return stopping() || !to_reap_.empty(); });
    if (to_reap_.empty()) return;  // stopped, and nothing left
    std::vector<std::uint64_t> batch;
    batch.swap(to_reap_);
    reaping_ = true;
    lock.unlock();
    if (options.before_deleting_files) options.before_deleting_files();
    bool out_of_time = false;
    for (std::uint64_t id : batch) {
      if ((out_of_time = past_stop_grace())) break;
      (void)::unlink(file_path(id).c_str());
    }
    lock.lock();
    reaping_ = false;
    if (out_of_time) to_reap_.clear();  // left to the next open; the wait above then ends the loop
    if (to_reap_.empty()) reaped_.notify_all();
  }
}

bool Index::stopping() const { return stop_deadline_.load(std::memory_order_acquire) != 0; }

bool Index::past_stop_grace() const {
  return stopping() && std::chrono::steady_clock::now().time_since_epoch().count() >= stop_deadline_.load();
}

// Starts the grace the reaper has left; it ends the reaper's loop once the queue is empty.
void Index::start_stop_grace() {
  {
    std::lock_guard lock(reaper_mutex_);
    if (!stopping()) {
      const auto deadline = std::chrono::steady_clock::now() + options.close_delete_grace;
      stop_deadline_.store(deadline.time_since_epoch().count(), std::memory_order_release);
    }
  }
  reaper_wake_.notify_one();
}

void Index::stop_reaping() {
  start_stop_grace();
  if (reaper_.joinable()) reaper_.join();
}

// Checks the blobs of up to 1,024 metas from key `from` on, and moves `from` past them; false once
// every meta was seen (or the cache is closed). The files are stat'ed outside the index lock.
bool Index::check_batch(std::string& from) {
  DbLease db(*this);
  if (!db) return false;
  std::vector<std::string> digests;
  bool more = false;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(scan_options()));
    for (it->Seek(from); it->Valid() && has_prefix(it->key(), codec::meta_prefix); it->Next()) {
      if (digests.size() == 1024) {
        from = it->key().ToString();
        more = true;
        break;
      }
      digests.push_back(it->key().ToString().substr(codec::meta_prefix.size()));
    }
  }
  for (const auto& digest : digests) {
    if (stop_checking_.load()) return false;
    check_one(digest, db.get());
  }
  hand_to_reaper();
  return more;
}

void Index::check_one(const std::string& digest, rocksdb::DB* db) {
  BlobMeta meta;
  {
    std::lock_guard lock(index_mutex_);
    Slot* slot = find_locked(digest);
    if (!slot || slot->second.checked) return;
    meta = slot->second.meta;
  }
  auto problem = file_problem(meta);  // a cold stat may wait for the disk: not under the lock
  std::lock_guard lock(index_mutex_);
  Slot* slot = find_locked(digest);
  if (!slot || slot->second.checked || slot->second.meta.writer_id != meta.writer_id) return;
  if (problem) {
    drop_lost_locked(slot, digest, *problem, db);
  } else {
    mark_checked_locked(slot->second);
  }
}

// Whether a blob's file can serve it: checked the first time (a stat under the lock), and the blob
// dropped if not.
bool Index::usable_locked(Slot* slot, const std::string& digest, rocksdb::DB* db) {
  if (slot->second.checked) return true;
  if (auto problem = file_problem(slot->second.meta)) {
    drop_lost_locked(slot, digest, *problem, db);
    return false;
  }
  mark_checked_locked(slot->second);
  return true;
}

void Index::mark_checked_locked(Entry& entry) {
  entry.checked = true;
  --unchecked_;
}

// Forgets a blob whose file is gone or short, so it is fetched again. db may be null (closed):
// then the entry stays, and is not served.
void Index::drop_lost_locked(Slot* slot, const std::string& digest, const std::string& why, rocksdb::DB* db) {
  report_lost(digest, why);
  if (db && db->Delete(rocksdb::WriteOptions(), codec::meta_key(digest)).ok()) erase_locked(slot);
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
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(scan_options()));
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

// The 256 directories blob files fan out to (codec.hpp).
Status Index::make_file_dirs() {
  bool made = false;
  for (unsigned i = 0; i < 256; ++i) {
    const std::string dir = blob_dir + "/" + codec::blob_file_dir(i);
    if (::mkdir(dir.c_str(), 0700) == 0) {
      made = true;
    } else if (errno != EEXIST) {
      return errno_error("cannot create blob directory " + dir);
    }
  }
  if (made && ::fsync(dir_.get()) != 0) return errno_error("cannot sync blob directory " + blob_dir);
  return ok_status();
}

// Blob files of earlier versions lie in blobs/ itself: each moves to its directory. A crash midway
// leaves some in each place, and the next open moves the rest.
Status Index::move_flat_files() {
  bool moved = false;
  std::error_code ec;
  for (const auto& file : std::filesystem::directory_iterator(blob_dir, ec)) {
    const std::string name = file.path().filename().string();
    auto id = codec::parse_blob_file_name(name);
    if (!id) continue;  // a fan-out directory, or not ours
    if (::rename(file.path().c_str(), file_path(*id).c_str()) != 0) return errno_error("cannot move blob file " + name);
    moved = true;
  }
  if (ec) return {Errc::storage_error, "cannot list blob directory " + blob_dir + ": " + ec.message()};
  if (!moved) return ok_status();
  if (auto synced = sync_file_dirs(); !synced) return synced;
  if (::fsync(dir_.get()) != 0) return errno_error("cannot sync blob directory " + blob_dir);
  return ok_status();
}

Status Index::sync_file_dirs() {
  for (unsigned i = 0; i < 256; ++i) {
    if (auto synced = sync_dir(i); !synced) return synced;
  }
  return ok_status();
}

// Files no meta owns: a writer killed before its commit, or a removal cut short by a crash.
void Index::remove_orphan_files(const LiveIds& live_ids, std::uint64_t& max_id) {
  std::error_code ec;
  for (unsigned i = 0; i < 256; ++i) {
    for (const auto& file : std::filesystem::directory_iterator(blob_dir + "/" + codec::blob_file_dir(i), ec)) {
      auto id = codec::parse_blob_file_name(file.path().filename().string());
      if (!id) continue;  // not ours
      max_id = std::max(max_id, *id);
      if (!std::binary_search(live_ids.begin(), live_ids.end(), *id)) std::filesystem::remove(file.path(), ec);
    }
  }
}

void Index::close() {
  stop_checking();  // before the lock: the checker holds a lease while it works
  std::unique_lock db_lock(db_mutex);
  if (!db) return;
  {
    std::lock_guard lock(index_mutex_);
    rocksdb::WriteBatch touched;
    for (const auto& [key, entry] : blobs_) {
      if (entry.meta.last_access != entry.persisted_access) {
        touched.Put(codec::meta_key(digest_locked(key)), codec::encode_meta(entry.meta));
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
  // The last files are queued and the grace starts before the lock is released: a caller that
  // then finds the store closed finds the reaper already stopping, never still at full pace.
  hand_to_reaper();
  start_stop_grace();
  db_lock.unlock();
  stop_reaping();
}

FileHandle Index::create_file(std::uint64_t writer_id) {
  const std::string path = file_path(writer_id);
  constexpr int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
  FileHandle file(::open(path.c_str(), flags, 0600));
  if (file || errno != ENOENT) return file;
  // Its directory went (removed by hand): made again, and its name made durable before any commit.
  const std::string dir = blob_dir + "/" + codec::blob_file_dir(writer_id);
  if ((::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) || ::fsync(dir_.get()) != 0) return file;
  return FileHandle(::open(path.c_str(), flags, 0600));
}

Status Index::sync_dir(std::uint64_t writer_id) {
  const std::string dir = blob_dir + "/" + codec::blob_file_dir(writer_id);
  FileHandle handle(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!handle || ::fsync(handle.get()) != 0) return errno_error("cannot sync blob directory " + dir);
  return ok_status();
}

void Index::hand_to_reaper() {
  std::vector<std::uint64_t> doomed;
  {
    std::lock_guard lock(index_mutex_);
    doomed.swap(doomed_);
  }
  if (doomed.empty()) return;
  {
    std::lock_guard lock(reaper_mutex_);
    to_reap_.insert(to_reap_.end(), doomed.begin(), doomed.end());
  }
  reaper_wake_.notify_one();
}

void Index::wait_files_deleted() {
  hand_to_reaper();
  std::unique_lock lock(reaper_mutex_);
  reaped_.wait(lock, [this] { return to_reap_.empty() && !reaping_; });
}

std::uint64_t Index::tick_locked() {
  last_tick_ = std::max(wall_ms(), last_tick_ + 1);
  return last_tick_;
}

std::string Index::digest_locked(const BlobKey& key) const {
  auto named = names_.find(key);
  return named == names_.end() ? sha256_digest_of(key) : named->second;
}

Slot* Index::find_locked(const std::string& digest) {
  auto it = blobs_.find(blob_key(digest));
  return it == blobs_.end() ? nullptr : &*it;
}

// Into the map only (not the LRU list); the caller made sure the digest is not there yet.
Slot* Index::add_locked(const std::string& digest, const BlobMeta& meta) {
  const BlobKey key = blob_key(digest);
  if (!is_sha256_digest(digest)) names_[key] = digest;
  auto [it, inserted] = blobs_.try_emplace(key);
  it->second.meta = meta;
  it->second.persisted_access = meta.last_access;
  blob_bytes_ += meta.size;
  return &*it;
}

// Out of the map only; the slot must be off the LRU list.
void Index::forget_locked(Slot* slot) {
  const BlobKey key = slot->first;
  if (!slot->second.checked) --unchecked_;
  blob_bytes_ -= slot->second.meta.size;
  names_.erase(key);
  blobs_.erase(key);
}

void Index::insert_locked(const std::string& digest, const BlobMeta& meta) { link_newest_locked(add_locked(digest, meta)); }

// Drops a blob from the index; the reaper deletes its file once it is handed over. Crash safety:
// every caller has removed the blob's meta from RocksDB before, so a file is unlinked only once no
// entry owns it, and as writer ids are never reused, the reaper never unlinks a live blob's file.
void Index::erase_locked(Slot* slot) {
  unlink_locked(slot);
  doomed_.push_back(slot->second.meta.writer_id);
  forget_locked(slot);
}

void Index::link_newest_locked(Slot* slot) {
  slot->second.older = newest_;
  slot->second.newer = nullptr;
  if (newest_) {
    newest_->second.newer = slot;
  } else {
    oldest_ = slot;
  }
  newest_ = slot;
}

void Index::unlink_locked(Slot* slot) {
  Entry& entry = slot->second;
  if (entry.older) {
    entry.older->second.newer = entry.newer;
  } else {
    oldest_ = entry.newer;
  }
  if (entry.newer) {
    entry.newer->second.older = entry.older;
  } else {
    newest_ = entry.older;
  }
  entry.older = entry.newer = nullptr;
}

std::optional<OpenBlob> Index::pin(const std::string& digest, bool touch, rocksdb::DB* db) {
  std::lock_guard lock(index_mutex_);
  Slot* slot = find_locked(digest);
  if (!slot || !usable_locked(slot, digest, db)) return std::nullopt;
  Entry& entry = slot->second;
  // Opened under the index lock, so no eviction can delete the file in between.
  FileHandle file(::open(file_path(entry.meta.writer_id).c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) {
    // Lost from under us (deleted by hand, a broken disk): forget it, so it is fetched again.
    drop_lost_locked(slot, digest, std::string("its file cannot be opened: ") + std::strerror(errno), db);
    return std::nullopt;
  }
  (void)::posix_fadvise(file.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  ++entry.pins;
  if (touch) {
    entry.meta.last_access = tick_locked();
    unlink_locked(slot);
    link_newest_locked(slot);
    if (db && entry.meta.last_access - entry.persisted_access >= persist_access_after_ms) {
      // Under the index lock, so an eviction cannot delete the meta between our check and this write.
      auto status = db->Put(rocksdb::WriteOptions(), codec::meta_key(digest), codec::encode_meta(entry.meta));
      if (status.ok()) entry.persisted_access = entry.meta.last_access;
    }
  }
  return OpenBlob{slot->first, entry.meta.writer_id, entry.meta.size, std::move(file)};
}

void Index::unpin(const BlobKey& key, std::uint64_t writer_id, rocksdb::DB* db) {
  {
    std::lock_guard lock(index_mutex_);
    auto it = blobs_.find(key);
    if (it == blobs_.end() || it->second.meta.writer_id != writer_id) return;  // removed meanwhile
    Entry& entry = it->second;
    if (entry.pins > 0) --entry.pins;
    if (entry.pins > 0) return;
    // A blob kept only because it was pinned (or just committed) may go now.
    if (db) evict_locked(*db, nullptr);
  }
  hand_to_reaper();
}

// Does not hand over to the reaper, so a lookup takes the index lock once: the file of a blob it
// drops goes with the next hand_to_reaper (any commit, removal or last unpin, or close).
std::optional<std::uint64_t> Index::blob_size(const std::string& digest, rocksdb::DB* db) {
  std::lock_guard lock(index_mutex_);
  Slot* slot = find_locked(digest);
  if (!slot || !usable_locked(slot, digest, db)) return std::nullopt;
  return slot->second.meta.size;
}

// Removal does not wait for readers: they hold the file open and finish reading it.
Status Index::remove_blob(const std::string& digest, rocksdb::DB& db) {
  {
    std::lock_guard lock(index_mutex_);
    Slot* slot = find_locked(digest);
    if (!slot) return ok_status();
    auto status = db.Delete(rocksdb::WriteOptions(), codec::meta_key(digest));
    if (!status.ok()) return db_error("cannot remove blob " + digest, status);
    erase_locked(slot);
  }
  hand_to_reaper();
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
  hand_to_reaper();
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
  digests.reserve(blobs_.size());
  for (const auto& [key, entry] : blobs_) digests.push_back(digest_locked(key));
  std::sort(digests.begin(), digests.end());
  return digests;
}

std::optional<std::uint64_t> Index::reserve_commit(const std::string& digest, rocksdb::DB* db) {
  const BlobKey key = blob_key(digest);
  std::lock_guard lock(index_mutex_);
  // A blob loaded at open whose file turns out lost makes way for this one.
  if (Slot* slot = find_locked(digest); slot && usable_locked(slot, digest, db)) return std::nullopt;
  if (committing_.contains(key)) return std::nullopt;
  committing_.insert(key);
  return tick_locked();
}

void Index::cancel_commit(const std::string& digest) {
  std::lock_guard lock(index_mutex_);
  committing_.erase(blob_key(digest));
}

void Index::finish_commit(const std::string& digest, const BlobMeta& meta, rocksdb::DB& db) {
  {
    const BlobKey key = blob_key(digest);
    std::lock_guard lock(index_mutex_);
    committing_.erase(key);
    insert_locked(digest, meta);
    evict_locked(db, &key);
  }
  hand_to_reaper();
}

// Evicts unpinned blobs, least recently used first, until the size fits (or nothing else can
// go). `keep` is the blob just committed: it survives its own commit even if it alone is too big,
// and becomes evictable on the next pass (any commit, manifest write or last unpin).
void Index::evict_locked(rocksdb::DB& db, const BlobKey* keep) {
  const std::uint64_t size = size_locked();
  if (size <= options.max_size) return;
  rocksdb::WriteBatch batch;
  std::vector<Slot*> victims;
  std::uint64_t freed = 0;
  for (Slot* slot = oldest_; slot && size - freed > options.max_size; slot = slot->second.newer) {
    if (slot->second.pins > 0 || (keep && slot->first == *keep)) continue;
    batch.Delete(codec::meta_key(digest_locked(slot->first)));
    victims.push_back(slot);
    freed += slot->second.meta.size;
  }
  if (victims.empty()) return;
  // On failure nothing changes in memory either, and the next pass tries again.
  if (!db.Write(rocksdb::WriteOptions(), &batch).ok()) return;
  for (Slot* slot : victims) {
    ++evictions_;
    evicted_bytes_ += slot->second.meta.size;
    erase_locked(slot);
  }
}

Stats Index::stats() const {
  std::lock_guard lock(index_mutex_);
  Stats stats;
  stats.size_bytes = size_locked();
  stats.blob_count = blobs_.size();
  stats.evictions = evictions_;
  stats.lost_files = lost_files_.load(std::memory_order_relaxed);
  stats.evicted_bytes = evicted_bytes_;
  stats.unchecked_blobs = unchecked_;
  return stats;
}

}  // namespace ocigate::cache
