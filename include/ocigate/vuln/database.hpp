#pragma once
// The offline vulnerability database: OSV records loaded from a directory (`*.json` records
// and/or osv.dev's `<ecosystem>/all.zip` files) into an in-memory index keyed by (distribution
// release, package name), and matched against an image's package inventory.
//
//   auto db = vuln::load("/var/lib/ocigate/vulndb");          // Result<shared_ptr<const Database>>
//   if (!db) keep the old one; log db.error().message;
//   vuln::MatchResult m = (*db)->match({fs.os_id, fs.os_version_id}, fs.packages);
//   if (!m.supported) -> "unknown" (m.reason); else m.findings (sorted, highest severity first)
//
// Only records for the distributions below are kept, every release of each (osv.dev's zips
// mix releases; `affected[].package.ecosystem` says which); withdrawn records are dropped.
//
//   os-release ID   VERSION_ID  OSV ecosystem(s) matched             package name matched
//   debian          12          Debian:12                            dpkg Source (its own version
//                                                                    when `Source: n (v)`), else the package
//   ubuntu          22.04       Ubuntu:22.04:LTS, Ubuntu:22.04       the same (Ubuntu:Pro:* is not matched)
//   alpine          3.20.3      Alpine:v3.20                         apk origin (o:), else the package
//   rhel            9.4         Red Hat:enterprise_linux:9[::<repo>] the rpm's name and its source rpm's name
//   rocky           9.3         Rocky Linux:9                        the same
//   almalinux       9.3         AlmaLinux:9                          the same
//
// Immutable once loaded: match() is safe from any number of threads.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"
#include "ocigate/policy/filesystem.hpp"
#include "ocigate/vuln/cvss.hpp"
#include "ocigate/vuln/osv.hpp"
#include "ocigate/vuln/version.hpp"
#include "ocigate/vuln/zip.hpp"

namespace ocigate::vuln {

// The image's distribution, as /etc/os-release says (FilesystemFacts::os_id, os_version_id).
struct Os {
  std::string id, version_id;
};

// A distribution release the database can match.
struct Distro {
  std::string key;      // "debian:12", "ubuntu:22.04", "alpine:3.20", "rhel:9", "rocky:9", "almalinux:9"
  std::string display;  // "Debian:12", "Ubuntu:22.04", "Alpine:v3.20", "Red Hat:enterprise_linux:9", "Rocky Linux:9", "AlmaLinux:9"
  Scheme scheme = Scheme::dpkg;
};
std::optional<Distro> distro_of(const Os& os);
// The release an OSV ecosystem string scopes to; nullopt for the ecosystems not matched.
std::optional<Distro> distro_of_ecosystem(std::string_view ecosystem);

// One vulnerable package. What comes from the database is a view into it, not a copy (a large
// image has thousands of findings); MatchResult::database keeps it alive.
struct Finding {
  std::string_view id;                    // the record's id: DEBIAN-CVE-2024-1111, DSA-5678-1, RLSA-2024:1234, ...
  std::span<const std::string> aliases;   // its `aliases` and `upstream` ids (CVE-...)
  std::span<const std::string> related;   // its `related` ids (ALSA/RLSA list the CVEs they fix there)
  std::string package;                    // the installed package
  std::string matched_name;               // the name the record uses (source, origin, or the package itself)
  std::string installed_version;          // the version compared (the source's own when dpkg says one)
  std::optional<std::string_view> fixed_version;  // the fix to install; nullopt = no fix yet
  Severity severity = Severity::unknown;
  std::optional<double> score;            // the CVSS base score, when the record has a vector
  std::string_view severity_source;       // the vector, or "Debian urgency: low", "Ubuntu priority: medium", ...
  std::string_view ecosystem;             // the record's ecosystem string, e.g. "Ubuntu:22.04:LTS"
};

class Database;

struct MatchResult {
  // False when the database cannot judge this image: a distribution it does not cover, or a
  // release it holds no records for. The check then answers "unknown" with `reason`.
  bool supported = false;
  std::string reason;
  std::string ecosystem;               // the Distro's display name
  std::vector<Finding> findings;       // highest severity first, then score, id, package
  std::size_t packages_checked = 0;    // packages of the distribution's format looked up
  std::vector<std::string> skipped;    // "<package> <version>: not a valid <scheme> version"
  std::shared_ptr<const Database> database;  // what the findings' views point into
};

struct Metadata {
  std::string version;   // "sha256:<hex>" over the loaded files' names, sizes and modification times
  std::chrono::system_clock::time_point built_at;  // the manifest's built_at, else the newest file's mtime
  std::map<std::string, std::size_t> records;      // per Distro display name: records naming it
  std::size_t records_loaded = 0;      // records with at least one matchable package
  std::size_t records_withdrawn = 0;
  std::size_t records_other = 0;       // records of ecosystems/releases not matched
  std::size_t records_duplicate = 0;   // an id seen before: the first wins (zips in path order, then *.json files)
  std::size_t ranges_skipped = 0;      // ECOSYSTEM ranges with a version the scheme refuses
  std::size_t files = 0;               // *.json and *.zip files read
};

// The updater writes this beside the data: {"built_at": "<RFC 3339>"} (other keys ignored).
inline constexpr const char* manifest_name = "ocigate-vulndb.json";
// ... and this while it renames its verified files into place: load() and version_of() refuse a
// directory that has it (a reload keeps the database in force), unless it is older than
// updating_stale (an update that died).
inline constexpr const char* updating_name = ".ocigate-vulndb-updating";
inline constexpr std::chrono::seconds updating_stale{300};

struct LoadLimits {
  ZipLimits zip;
  std::uint64_t max_json_bytes = 64ull << 20;  // one *.json record file
  std::size_t max_files = 100000;              // *.json and *.zip files in the directory tree
  unsigned threads = 0;                        // inflating and parsing; 0 = one per CPU (at most 8)
};

class Database : public std::enable_shared_from_this<Database> {
 public:
  const Metadata& metadata() const { return metadata_; }
  // Seconds since built_at (0 when built_at is in the future).
  std::chrono::seconds age(std::chrono::system_clock::time_point now) const;
  MatchResult match(const Os& os, const std::vector<policy::Package>& packages) const;

  // Tests and tools: a database of these records (metadata version "records", built_at now).
  static std::shared_ptr<const Database> from_records(std::vector<osv::Record> records);

  struct Impl;
  explicit Database(std::unique_ptr<Impl> impl);
  ~Database();

 private:
  std::unique_ptr<Impl> impl_;
  Metadata metadata_;
};

// Loads `dir` (blocking; run it off the I/O threads): every *.json and *.zip file in it and in
// its subdirectories one level down
// (osv.dev's <ecosystem>/all.zip layout), names starting with '.' skipped (files being written
// aside by an updater). An error for a missing or empty directory, an unreadable file, a corrupt
// zip, or a record that does not parse: the caller keeps the database it has.
Result<std::shared_ptr<const Database>> load(const std::string& dir, LoadLimits limits = {});
// The version load() would give `dir` now (Metadata::version), from its file listing alone: a
// reload compares it with the database in force and skips an unchanged directory.
Result<std::string> version_of(const std::string& dir, LoadLimits limits = {});

}  // namespace ocigate::vuln
