#include "test_access.hpp"

#include <rocksdb/db.h>

#include <memory>

#include "db_options.hpp"

namespace ocigate::cache::test_access {

namespace {

Result<std::unique_ptr<rocksdb::DB>> open_db(const std::string& path) {
  rocksdb::DB* raw = nullptr;
  auto options = cache_db_options();
  options.create_if_missing = false;
  auto status = rocksdb::DB::Open(options, path, &raw);
  if (!status.ok()) return Error{Errc::storage_error, "cannot open " + path + ": " + status.ToString()};
  return std::unique_ptr<rocksdb::DB>(raw);
}

Status checked(const rocksdb::Status& status) {
  if (!status.ok()) return Error{Errc::storage_error, status.ToString()};
  return ok_status();
}

}  // namespace

Result<std::vector<std::string>> keys_with_prefix(const std::string& path, std::string_view prefix) {
  auto db = open_db(path);
  if (!db) return db.error();
  std::vector<std::string> keys;
  std::unique_ptr<rocksdb::Iterator> it((*db)->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid() && it->key().starts_with(
                                                                     rocksdb::Slice(prefix.data(), prefix.size()));
       it->Next()) {
    keys.push_back(it->key().ToString());
  }
  if (!it->status().ok()) return Error{Errc::storage_error, it->status().ToString()};
  return keys;
}

Result<std::string> get_raw(const std::string& path, std::string_view key) {
  auto db = open_db(path);
  if (!db) return db.error();
  std::string value;
  auto status = (*db)->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (!status.ok()) return Error{Errc::storage_error, status.ToString()};
  return value;
}

Status put_raw(const std::string& path, std::string_view key, std::string_view value) {
  auto db = open_db(path);
  if (!db) return db.error();
  return checked((*db)->Put(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size()),
                            rocksdb::Slice(value.data(), value.size())));
}

Status delete_raw(const std::string& path, std::string_view key) {
  auto db = open_db(path);
  if (!db) return db.error();
  return checked((*db)->Delete(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size())));
}

}  // namespace ocigate::cache::test_access
