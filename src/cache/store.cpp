// The Store's front: manifests, tags and records straight in RocksDB; blobs through the index
// (index.hpp) and their files (blob_files.hpp).

#include "ocigate/cache/store.hpp"

#include <filesystem>

#include "codec.hpp"
#include "db_options.hpp"
#include "index.hpp"

namespace ocigate::cache {

namespace {

class StoreImpl final : public Store {
 public:
  explicit StoreImpl(std::shared_ptr<Index> index) : index_(std::move(index)) {}
  ~StoreImpl() override { index_->close(); }
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
  Stats stats() const override { return index_->stats(); }
  void wait_files_deleted() override { index_->wait_files_deleted(); }
  void close() override { index_->close(); }

 private:
  std::optional<std::string> get_value(const std::string& key);

  std::shared_ptr<Index> index_;
};

// Keys that embed a NUL separator would be ambiguous if a part contained NUL itself.
bool has_nul(std::string_view part) { return part.find('\0') != std::string_view::npos; }

std::optional<std::string> StoreImpl::get_value(const std::string& key) {
  DbLease db(*index_);
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
  DbLease db(*index_);
  if (!db) return closed_error();
  return index_->put_manifest(digest, entry, *db);
}

std::optional<TagEntry> StoreImpl::get_tag(const std::string& repo_key, const std::string& tag) {
  if (has_nul(repo_key)) return std::nullopt;
  auto value = get_value(codec::tag_key(repo_key, tag));
  if (!value) return std::nullopt;
  return codec::decode_tag(*value);
}

Status StoreImpl::put_tag(const std::string& repo_key, const std::string& tag, const TagEntry& entry) {
  if (has_nul(repo_key)) return Error{Errc::name_invalid, "repository key contains a NUL byte"};
  DbLease db(*index_);
  if (!db) return closed_error();
  auto status = db->Put(rocksdb::WriteOptions(), codec::tag_key(repo_key, tag), codec::encode_tag(entry));
  if (!status.ok()) return db_error("cannot store tag " + repo_key + ":" + tag, status);
  return ok_status();
}

std::optional<std::uint64_t> StoreImpl::blob_size(const std::string& digest) {
  DbLease db(*index_);
  if (!db) return std::nullopt;
  return index_->blob_size(digest, db.get());
}

std::unique_ptr<BlobReader> StoreImpl::open_blob(const std::string& digest) {
  DbLease db(*index_);
  if (!db) return nullptr;
  auto pinned = index_->pin(digest, true, db.get());
  if (!pinned) return nullptr;
  return make_reader(index_, std::move(*pinned));
}

Result<std::vector<std::string>> StoreImpl::blob_digests() {
  DbLease db(*index_);
  if (!db) return closed_error();
  return index_->blob_digests();
}

Result<std::vector<std::string>> StoreImpl::manifest_digests() {
  DbLease db(*index_);
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
  DbLease db(*index_);
  if (!db) return nullptr;
  auto pinned = index_->pin(digest, false, db.get());
  if (!pinned) return nullptr;
  return make_reader(index_, std::move(*pinned));
}

Status StoreImpl::remove_manifest(const std::string& digest) {
  DbLease db(*index_);
  if (!db) return closed_error();
  return index_->remove_manifest(digest, *db);
}

Result<std::unique_ptr<BlobWriter>> StoreImpl::begin_blob(const std::string& digest) {
  if (digest.empty()) return Error{Errc::digest_invalid, "cannot cache a blob without a digest"};
  DbLease db(*index_);
  if (!db) return closed_error();
  const std::uint64_t id = index_->allocate_writer_id();
  FileHandle file = index_->create_file(id);
  if (!file) return errno_error("cannot create a file for blob " + digest + " in " + index_->blob_dir);
  return make_writer(index_, digest, id, std::move(file));
}

Status StoreImpl::remove_blob(const std::string& digest) {
  DbLease db(*index_);
  if (!db) return closed_error();
  return index_->remove_blob(digest, *db);
}

std::optional<std::string> StoreImpl::get_record(std::string_view space, std::string_view key) {
  if (has_nul(space)) return std::nullopt;
  return get_value(codec::record_key(space, key));
}

Status StoreImpl::put_record(std::string_view space, std::string_view key, std::string_view value) {
  if (has_nul(space)) return Error{Errc::internal, "record space contains a NUL byte"};
  DbLease db(*index_);
  if (!db) return closed_error();
  auto status = db->Put(rocksdb::WriteOptions(), codec::record_key(space, key),
                        rocksdb::Slice(value.data(), value.size()));
  if (!status.ok()) return db_error("cannot store record in " + std::string(space), status);
  return ok_status();
}

Status StoreImpl::remove_records_outside(std::string_view space, std::string_view keep) {
  if (has_nul(space)) return Error{Errc::internal, "record space contains a NUL byte"};
  if (keep.empty()) return ok_status();
  DbLease db(*index_);
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
  DbLease db(*index_);
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
  auto index = std::make_shared<Index>(options);
  index->db.reset(raw);
  if (auto loaded = index->load(); !loaded) {
    index->close();
    return Error{loaded.error().code, "cannot load cache at " + options.path + ": " + loaded.error().message};
  }
  if (index->stats().unchecked_blobs > 0) index->start_checking();
  return std::unique_ptr<Store>(std::make_unique<StoreImpl>(std::move(index)));
}

}  // namespace ocigate::cache
