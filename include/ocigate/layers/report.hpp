#pragma once
// What scanning one layer found: pure data, JSON round-trippable, so it can be cached per
// layer digest (a base layer shared by many images is read once) and merged later.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ocigate/policy/filesystem.hpp"

namespace ocigate::layers {

// Paths are normalised: no leading "/" or "./", no "." components, no trailing "/"
// ("usr/bin/passwd"); "" is the root.
struct FileFact {
  std::string path;
  std::uint32_t mode = 0;
  std::uint64_t uid = 0;
  std::string detail;  // "setuid, mode 4755", "apk", "hard link to usr/bin/su", ...
  bool operator==(const FileFact&) const = default;
};

struct SecretFile {
  std::string path;
  std::string kind;      // "private key (RSA)", "AWS credentials file", ".env credential", ...
  std::string evidence;  // redacted to a few characters
  bool operator==(const SecretFile&) const = default;
};

struct PackageDb {
  std::string path;    // "lib/apk/db/installed", "var/lib/dpkg/status", "var/lib/dpkg/status.d/x", "var/lib/rpm/rpmdb.sqlite"
  std::string format;  // "apk" | "dpkg" | "rpm"
  std::vector<policy::Package> packages;
  bool truncated = false;  // larger than the read cap: the list is a prefix (rpm: empty)
  std::string error;       // why the database could not be read ("" when it was)
  bool operator==(const PackageDb&) const = default;
};

struct Passwd {
  std::map<std::string, long long> users;  // name -> uid
  bool operator==(const Passwd&) const = default;
};

struct OsRelease {
  std::string path;  // "etc/os-release" or "usr/lib/os-release"
  std::string id, version_id, pretty_name;
  bool operator==(const OsRelease&) const = default;
};

struct LayerReport {
  enum class Status { ok, foreign, error };

  // Written into the JSON; a cached report of another format reads as absent, so the layer is
  // scanned again. 2: package sources (dpkg Source, apk origin) and rpm databases.
  static constexpr int format_version = 2;

  std::string digest, media_type;
  Status status = Status::ok;
  std::string error;  // why, when status != ok ("truncated gzip stream", "tar bomb: ...")
  std::string compression;  // as detected from the bytes
  std::uint64_t entries = 0, compressed_bytes = 0, uncompressed_bytes = 0;

  // For merging: a 64-bit hash of every path the layer writes, low bit set for directories,
  // sorted. An entry at a path hides lower layers' files there; a non-directory at a parent
  // hides everything below it. Hashes keep this small enough to cache for huge layers.
  std::vector<std::uint64_t> path_hashes;
  std::vector<std::string> whiteouts;    // paths a `.wh.<name>` deletes from lower layers
  std::vector<std::string> opaque_dirs;  // directories a `.wh..wh..opq` empties of lower content

  std::vector<FileFact> setuid_files;  // regular files / hard links with 04000 or 02000
  std::vector<FileFact> installers;    // detail = the installer's name
  std::vector<SecretFile> secrets;
  std::optional<Passwd> passwd;        // etc/passwd, when this layer writes it
  std::vector<OsRelease> os_release;   // etc/os-release and/or usr/lib/os-release
  std::vector<PackageDb> package_dbs;
  bool secrets_budget_exhausted = false;  // small files beyond the byte budget were not read

  bool operator==(const LayerReport&) const = default;

  nlohmann::json to_json() const;
  static std::optional<LayerReport> from_json(const nlohmann::json& json);
};

const char* status_text(LayerReport::Status status);  // "ok" | "foreign" | "error"

// The hash used in path_hashes (without the directory bit).
std::uint64_t path_hash(std::string_view normalised_path);

}  // namespace ocigate::layers
