// rpmdb.sqlite read in memory with SQLite's deserialize API, header blobs parsed here (the
// layout of rpm's lib/header.c: headerImport of an "immutable region" blob without the lead).

#include "rpmdb.hpp"

#include <sqlite3.h>

#include <memory>

namespace ocigate::layers::rpmdb {

namespace {

// rpm tags and types (rpm/rpmtag.h).
constexpr std::uint32_t tag_name = 1000, tag_version = 1001, tag_release = 1002, tag_epoch = 1003, tag_arch = 1022,
                        tag_sourcerpm = 1044;
constexpr std::uint32_t type_int32 = 4, type_string = 6, type_string_array = 8, type_i18nstring = 9;
constexpr std::uint32_t max_entries = 1 << 16;  // real headers hold a few hundred

std::uint32_t be32(std::string_view b, std::size_t at) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(b[at])) << 24 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 1])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 2])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 3]));
}

// A NUL-terminated string starting at `offset` of the data store.
std::optional<std::string> string_at(std::string_view data, std::uint32_t offset) {
  if (offset >= data.size()) return std::nullopt;
  auto end = data.find('\0', offset);
  if (end == std::string_view::npos) return std::nullopt;
  return std::string(data.substr(offset, end - offset));
}

struct SqliteDeleter {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

Error unreadable(const std::string& why) { return Error{Errc::manifest_invalid, "rpmdb.sqlite: " + why}; }

// A bound on the work SQLite does for one database (a crafted file cannot keep the scan thread
// busy): the progress handler stops the query after this many virtual-machine steps x 1000.
constexpr int progress_period = 1000;
constexpr int max_progress_calls = 200000;

int stop_when_exhausted(void* counter) { return ++*static_cast<int*>(counter) > max_progress_calls; }

}  // namespace

std::string source_name(std::string_view rpm) {
  for (std::string_view suffix : {".src.rpm", ".nosrc.rpm"}) {
    if (rpm.size() > suffix.size() && rpm.substr(rpm.size() - suffix.size()) == suffix) {
      rpm.remove_suffix(suffix.size());
      // name-version-release: drop the last two hyphen-separated parts.
      auto release = rpm.rfind('-');
      if (release == std::string_view::npos || release == 0) return {};
      auto version = rpm.rfind('-', release - 1);
      if (version == std::string_view::npos || version == 0) return {};
      return std::string(rpm.substr(0, version));
    }
  }
  return {};
}

std::optional<Header> parse_header(std::string_view blob) {
  if (blob.size() < 8) return std::nullopt;
  std::uint32_t il = be32(blob, 0), dl = be32(blob, 4);
  if (il == 0 || il > max_entries || dl > blob.size()) return std::nullopt;
  std::uint64_t index_end = 8 + std::uint64_t{il} * 16;
  if (index_end + dl > blob.size()) return std::nullopt;
  std::string_view data = blob.substr(static_cast<std::size_t>(index_end), dl);
  Header h;
  for (std::uint32_t i = 0; i < il; ++i) {
    std::size_t at = 8 + std::size_t{i} * 16;
    std::uint32_t tag = be32(blob, at), type = be32(blob, at + 4), offset = be32(blob, at + 8), count = be32(blob, at + 12);
    if (tag == tag_epoch) {
      if (type != type_int32 || count < 1 || offset > data.size() || data.size() - offset < 4) return std::nullopt;
      h.epoch = be32(data, offset);
      continue;
    }
    std::string* field = tag == tag_name ? &h.name : tag == tag_version ? &h.version : tag == tag_release ? &h.release
                       : tag == tag_arch ? &h.arch : tag == tag_sourcerpm ? &h.source_rpm : nullptr;
    if (!field) continue;
    if (type != type_string && type != type_string_array && type != type_i18nstring) return std::nullopt;
    auto s = string_at(data, offset);
    if (!s) return std::nullopt;
    *field = std::move(*s);
  }
  if (h.name.empty() || h.version.empty()) return std::nullopt;
  return h;
}

Result<std::vector<policy::Package>> parse_sqlite(std::string bytes) {
  if (bytes.size() < 100 || bytes.compare(0, 16, std::string("SQLite format 3\0", 16)) != 0) {
    return unreadable("not an SQLite database");
  }
  // rpm keeps the database in WAL mode, which SQLite cannot deserialize; the header's two
  // format bytes say so, and switching them to the rollback journal reads the same pages.
  // (A WAL file left beside it, with pages not yet checkpointed, is not read.)
  bytes[18] = bytes[19] = 1;
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(":memory:", &raw, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(raw);
    return unreadable("cannot open an in-memory database");
  }
  std::unique_ptr<sqlite3, SqliteDeleter> db(raw);
  sqlite3_db_config(raw, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(raw, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  // SQLite reads the caller's buffer in place (no FREEONCLOSE); `bytes` outlives `db`.
  auto size = static_cast<sqlite3_int64>(bytes.size());
  if (sqlite3_deserialize(raw, "main", reinterpret_cast<unsigned char*>(bytes.data()), size, size,
                          SQLITE_DESERIALIZE_READONLY) != SQLITE_OK) {
    return unreadable(sqlite3_errmsg(raw));
  }
  int progress = 0;
  sqlite3_progress_handler(raw, progress_period, stop_when_exhausted, &progress);
  sqlite3_stmt* stmt_raw = nullptr;
  if (sqlite3_prepare_v2(raw, "SELECT blob FROM Packages", -1, &stmt_raw, nullptr) != SQLITE_OK) {
    return unreadable(sqlite3_errmsg(raw));
  }
  std::unique_ptr<sqlite3_stmt, SqliteDeleter> stmt(stmt_raw);
  std::vector<policy::Package> out;
  int rc;
  while ((rc = sqlite3_step(stmt_raw)) == SQLITE_ROW) {
    const void* blob = sqlite3_column_blob(stmt_raw, 0);
    int n = sqlite3_column_bytes(stmt_raw, 0);
    auto h = parse_header(std::string_view(static_cast<const char*>(blob), blob ? static_cast<std::size_t>(n) : 0));
    if (!h) return unreadable("malformed package header");
    if (h->name == "gpg-pubkey") continue;  // imported signing keys, not packages
    policy::Package p(h->name, "", "rpm");
    p.version = (h->epoch ? std::to_string(*h->epoch) + ":" : "") + h->version + (h->release.empty() ? "" : "-" + h->release);
    std::string source = source_name(h->source_rpm);
    if (source != p.name) p.source = source;
    out.push_back(std::move(p));
  }
  if (rc != SQLITE_DONE) return unreadable(sqlite3_errmsg(raw));
  return out;
}

}  // namespace ocigate::layers::rpmdb
