// Loading OSV records into the index and matching inventories against it.

#include "ocigate/vuln/database.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "ocigate/oci/digest.hpp"
#include "ocigate/policy/checks.hpp"

namespace ocigate::vuln {

namespace fs = std::filesystem;

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// "3.20.3" -> "3.20"; "9.4" -> "9" when major_only.
std::optional<std::string> release_of(std::string_view version_id, bool major_only) {
  auto dot = version_id.find('.');
  std::string_view major = version_id.substr(0, dot);
  if (!all_digits(major)) return std::nullopt;
  if (major_only) return std::string(major);
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view rest = version_id.substr(dot + 1);
  std::size_t n = 0;
  while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') ++n;
  if (n == 0) return std::nullopt;
  return std::string(major) + "." + std::string(rest.substr(0, n));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<Distro> distro_of(const Os& os) {
  std::string id = lower(os.id);
  if (id == "debian") {
    auto r = release_of(os.version_id, true);
    if (r) return Distro{"debian:" + *r, "Debian:" + *r, Scheme::dpkg};
  } else if (id == "ubuntu") {
    auto r = release_of(os.version_id, false);
    if (r) return Distro{"ubuntu:" + *r, "Ubuntu:" + *r, Scheme::dpkg};
  } else if (id == "alpine") {
    auto r = release_of(os.version_id, false);
    if (r) return Distro{"alpine:" + *r, "Alpine:v" + *r, Scheme::apk};
  } else if (id == "rhel") {
    auto r = release_of(os.version_id, true);
    if (r) return Distro{"rhel:" + *r, "Red Hat:enterprise_linux:" + *r, Scheme::rpm};
  } else if (id == "rocky") {
    auto r = release_of(os.version_id, true);
    if (r) return Distro{"rocky:" + *r, "Rocky Linux:" + *r, Scheme::rpm};
  } else if (id == "almalinux") {
    auto r = release_of(os.version_id, true);
    if (r) return Distro{"almalinux:" + *r, "AlmaLinux:" + *r, Scheme::rpm};
  }
  return std::nullopt;
}

std::optional<Distro> distro_of_ecosystem(std::string_view e) {
  if (starts_with(e, "Debian:") && all_digits(e.substr(7))) return distro_of({"debian", std::string(e.substr(7))});
  if (starts_with(e, "Ubuntu:")) {
    std::string_view release = e.substr(7);
    if (release.size() > 4 && release.substr(release.size() - 4) == ":LTS") release.remove_suffix(4);
    // "YY.MM" only: Ubuntu:Pro:..., FIPS and other streams are not the archive images use.
    auto dot = release.find('.');
    if (dot == std::string_view::npos || !all_digits(release.substr(0, dot)) || !all_digits(release.substr(dot + 1))) {
      return std::nullopt;
    }
    return distro_of({"ubuntu", std::string(release)});
  }
  if (starts_with(e, "Alpine:v")) {
    std::string_view release = e.substr(8);
    auto dot = release.find('.');
    if (dot == std::string_view::npos || !all_digits(release.substr(0, dot)) || !all_digits(release.substr(dot + 1))) {
      return std::nullopt;
    }
    return distro_of({"alpine", std::string(release)});
  }
  if (starts_with(e, "Red Hat:enterprise_linux:")) {
    std::string_view rest = e.substr(25);
    std::string_view major = rest.substr(0, rest.find(':'));
    if (!all_digits(major) || (major.size() < rest.size() && rest.substr(major.size(), 2) != "::")) return std::nullopt;
    return distro_of({"rhel", std::string(major)});
  }
  if (starts_with(e, "Rocky Linux:") && all_digits(e.substr(12))) return distro_of({"rocky", std::string(e.substr(12))});
  if (starts_with(e, "AlmaLinux:") && all_digits(e.substr(10))) return distro_of({"almalinux", std::string(e.substr(10))});
  return std::nullopt;
}

// ---- the index ----

struct Database::Impl {
  struct Record {
    std::string id;
    std::vector<std::string> aliases, related;
  };
  struct Entry {
    std::uint32_t record = 0;
    Severity severity = Severity::unknown;
    bool has_score = false;
    float score = 0;
    const std::string* severity_source = nullptr;  // interned
    const std::string* ecosystem = nullptr;        // interned
    std::vector<std::vector<osv::Event>> ranges;   // ECOSYSTEM ranges, checked and sorted
    std::vector<std::string> versions;             // listed versions no range covers
  };

  std::vector<Record> records;
  std::unordered_map<std::string, std::vector<Entry>> index;  // distro key + '\n' + package name
  std::unordered_set<std::string> strings;                    // interned severity sources, ecosystems
  std::unordered_set<std::string> seen_ids;
  Metadata meta;

  const std::string* intern(std::string s) { return &*strings.insert(std::move(s)).first; }

  Entry entry_for(const osv::Affected& a, Scheme scheme, const osv::Record& record) {
    Entry e;
    for (const auto& range : a.ranges) {
      if (range.type != "ECOSYSTEM") continue;
      if (!osv::events_valid(range.events, scheme)) {
        ++meta.ranges_skipped;
        continue;
      }
      std::vector<osv::Event> sorted = range.events;
      osv::sort_events(sorted, scheme);
      e.ranges.push_back(std::move(sorted));
    }
    // A listed version inside a range adds nothing (Ubuntu lists every affected version).
    for (const auto& v : a.versions) {
      if (!valid(scheme, v)) continue;
      bool covered = std::any_of(e.ranges.begin(), e.ranges.end(), [&](const auto& r) { return osv::sorted_affects(r, scheme, v); });
      if (!covered) e.versions.push_back(v);
    }
    osv::Rating r = osv::rate(record, a);
    e.severity = r.severity;
    e.has_score = r.score.has_value();
    e.score = static_cast<float>(r.score.value_or(0));
    e.severity_source = intern(r.source);
    e.ecosystem = intern(a.ecosystem);
    return e;
  }

  void add(osv::Record record) {
    if (record.withdrawn) {
      ++meta.records_withdrawn;
      return;
    }
    if (!seen_ids.insert(record.id).second) {
      ++meta.records_duplicate;
      return;
    }
    auto index_of = static_cast<std::uint32_t>(records.size());
    std::set<std::string> named;
    for (const auto& a : record.affected) {
      auto distro = distro_of_ecosystem(a.ecosystem);
      if (!distro || a.name.empty()) continue;
      Entry e = entry_for(a, distro->scheme, record);
      if (e.ranges.empty() && e.versions.empty()) continue;
      e.record = index_of;
      index[distro->key + '\n' + a.name].push_back(std::move(e));
      named.insert(distro->display);
    }
    if (named.empty()) {
      ++meta.records_other;
      return;
    }
    for (const auto& d : named) ++meta.records[d];
    ++meta.records_loaded;
    records.push_back(Record{std::move(record.id), std::move(record.aliases), std::move(record.related)});
  }
};

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { metadata_ = impl_->meta; }
Database::~Database() = default;

std::chrono::seconds Database::age(std::chrono::system_clock::time_point now) const {
  if (now <= metadata_.built_at) return std::chrono::seconds(0);
  return std::chrono::duration_cast<std::chrono::seconds>(now - metadata_.built_at);
}

std::shared_ptr<const Database> Database::from_records(std::vector<osv::Record> records) {
  auto impl = std::make_unique<Impl>();
  for (auto& r : records) impl->add(std::move(r));
  impl->meta.version = "records";
  impl->meta.built_at = std::chrono::system_clock::now();
  return std::make_shared<const Database>(std::move(impl));
}

// ---- matching ----

namespace {

struct Lookup {
  std::string name;     // the name records use
  std::string version;  // the version to compare
};

// What to look up for one installed package: see the table in database.hpp.
std::vector<Lookup> lookups(const policy::Package& p, Scheme scheme) {
  if (scheme == Scheme::rpm) {
    std::vector<Lookup> out{{p.name, p.version}};
    if (!p.source.empty() && p.source != p.name) out.push_back({p.source, p.version});
    return out;
  }
  std::string name = p.source.empty() ? p.name : p.source;
  std::string version = (scheme == Scheme::dpkg && !p.source_version.empty()) ? p.source_version : p.version;
  return {{name, version}};
}

int rank(Severity s) { return static_cast<int>(s); }

}  // namespace

MatchResult Database::match(const Os& os, const std::vector<policy::Package>& packages) const {
  MatchResult out;
  auto distro = distro_of(os);
  if (!distro) {
    out.reason = os.id.empty() ? "no /etc/os-release: the distribution is unknown"
                               : "no vulnerability data for " + os.id + " " + os.version_id;
    return out;
  }
  out.ecosystem = distro->display;
  auto count = metadata_.records.find(distro->display);
  if (count == metadata_.records.end() || count->second == 0) {
    out.reason = "the vulnerability database holds no records for " + distro->display;
    return out;
  }
  out.supported = true;
  const Scheme scheme = distro->scheme;
  std::set<std::pair<std::uint32_t, std::string>> seen;  // (record, package): a record names the
                                                          // source and binary of one rpm at most once
  std::string key;
  for (const auto& p : packages) {
    if (p.format != scheme_text(scheme)) continue;
    ++out.packages_checked;
    for (const auto& look : lookups(p, scheme)) {
      if (!valid(scheme, look.version)) {
        out.skipped.push_back(p.name + " " + look.version + ": not a valid " + scheme_text(scheme) + " version");
        break;
      }
      key = distro->key + '\n' + look.name;
      auto it = impl_->index.find(key);
      if (it == impl_->index.end()) continue;
      for (const auto& e : it->second) {
        bool hit = std::find(e.versions.begin(), e.versions.end(), look.version) != e.versions.end();
        std::optional<std::string_view> fix;
        for (const auto& range : e.ranges) {
          if (!osv::sorted_affects(range, scheme, look.version)) continue;
          hit = true;
          auto f = osv::sorted_fixed(range, scheme, look.version);
          if (f && (!fix || compare_valid(scheme, *f, *fix) < 0)) fix = f;
        }
        if (!hit || !seen.insert({e.record, p.name}).second) continue;
        const auto& rec = impl_->records[e.record];
        Finding f;
        f.id = rec.id;
        f.aliases = rec.aliases;
        f.related = rec.related;
        f.package = p.name;
        f.matched_name = look.name;
        f.installed_version = look.version;
        if (fix) f.fixed_version = std::string(*fix);
        f.severity = e.severity;
        if (e.has_score) f.score = std::round(static_cast<double>(e.score) * 10) / 10;
        f.severity_source = *e.severity_source;
        f.ecosystem = *e.ecosystem;
        out.findings.push_back(std::move(f));
      }
    }
  }
  std::sort(out.findings.begin(), out.findings.end(), [](const Finding& a, const Finding& b) {
    if (a.severity != b.severity) return rank(a.severity) > rank(b.severity);
    if (a.score.value_or(-1) != b.score.value_or(-1)) return a.score.value_or(-1) > b.score.value_or(-1);
    if (a.id != b.id) return a.id < b.id;
    return a.package < b.package;
  });
  return out;
}

// ---- loading ----

namespace {

struct DataFile {
  fs::path path;
  std::string relative;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

bool data_name(const std::string& name) {
  if (name.empty() || name.front() == '.' || name == manifest_name) return false;
  auto ends = [&](std::string_view suffix) {
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends(".json") || ends(".zip");
}

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// The directory's data files, sorted by relative path: the directory itself and one level of
// subdirectories (hidden ones skipped).
Result<std::vector<DataFile>> list_files(const fs::path& dir, const LoadLimits& limits) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Error{Errc::storage_error, dir.string() + " is not a directory"};
  std::vector<DataFile> out;
  std::vector<std::pair<fs::path, std::string>> dirs = {{dir, ""}};
  for (std::size_t d = 0; d < dirs.size(); ++d) {
    auto [path, prefix] = dirs[d];
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      struct stat st {};
      if (::stat(it->path().c_str(), &st) != 0) continue;  // vanished or a dangling link
      if (S_ISDIR(st.st_mode) && prefix.empty() && !name.empty() && name.front() != '.') {
        dirs.push_back({it->path(), name + "/"});
      } else if (S_ISREG(st.st_mode) && data_name(name)) {
        out.push_back({it->path(), prefix + name, static_cast<std::uint64_t>(st.st_size), mtime_ns(st)});
        if (out.size() > limits.max_files) return Error{Errc::storage_error, dir.string() + ": more files than the limit"};
      }
    }
    if (ec) return Error{Errc::storage_error, path.string() + ": " + ec.message()};
  }
  std::sort(out.begin(), out.end(), [](const DataFile& a, const DataFile& b) { return a.relative < b.relative; });
  return out;
}

Result<std::string> read_file(const DataFile& f, std::uint64_t max) {
  if (f.size > max) return Error{Errc::size_invalid, f.relative + ": larger than the limit for one record file"};
  std::ifstream in(f.path, std::ios::binary);
  std::string bytes(static_cast<std::size_t>(f.size), '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return Error{Errc::storage_error, f.relative + ": cannot read"};
  }
  return bytes;
}

// built_at of the manifest, when there is one that says it.
std::optional<std::chrono::system_clock::time_point> manifest_time(const fs::path& dir, std::string& hashed) {
  std::ifstream in(dir / manifest_name, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), {});
  hashed += std::string("manifest\0", 9) + text + '\n';
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (!json.is_object() || !json.contains("built_at") || !json["built_at"].is_string()) return std::nullopt;
  return policy::parse_rfc3339(json["built_at"].get<std::string>());
}

Status add_json(Database::Impl& impl, const std::string& where, std::string_view text) {
  auto record = osv::parse_record(text);
  if (!record) return Error{Errc::manifest_invalid, where + ": " + record.error().message};
  impl.add(std::move(*record));
  return ok_status();
}

Status add_zip(Database::Impl& impl, const DataFile& f, const LoadLimits& limits) {
  auto zip = ZipReader::open(f.path.string(), limits.zip);
  if (!zip) return zip.error();
  for (const auto& entry : zip->entries()) {
    if (entry.directory() || !data_name(fs::path(entry.name).filename().string())) continue;
    auto bytes = zip->read(entry);
    if (!bytes) return Error{bytes.error().code, f.relative + ": " + bytes.error().message};
    if (auto s = add_json(impl, f.relative + ":" + entry.name, *bytes); !s) return s;
  }
  return ok_status();
}

}  // namespace

Result<std::shared_ptr<const Database>> load(const std::string& dir, LoadLimits limits) {
  auto files = list_files(dir, limits);
  if (!files) return files.error();
  if (files->empty()) return Error{Errc::storage_error, dir + ": no OSV records (*.json) or all.zip files"};
  auto impl = std::make_unique<Database::Impl>();
  std::string hashed;
  std::int64_t newest = 0;
  for (const auto& f : *files) {
    hashed += f.relative + '\0' + std::to_string(f.size) + '\0' + std::to_string(f.mtime_ns) + '\n';
    newest = std::max(newest, f.mtime_ns);
    bool zip = f.relative.size() > 4 && f.relative.compare(f.relative.size() - 4, 4, ".zip") == 0;
    if (zip) {
      if (auto s = add_zip(*impl, f, limits); !s) return s.error();
    } else {
      auto text = read_file(f, limits.max_json_bytes);
      if (!text) return text.error();
      if (auto s = add_json(*impl, f.relative, *text); !s) return s.error();
    }
  }
  impl->meta.files = files->size();
  auto built = manifest_time(dir, hashed);
  impl->meta.version = oci::sha256_digest(hashed);
  impl->meta.built_at = built ? *built
                              : std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                    std::chrono::nanoseconds(newest)));
  impl->seen_ids = {};  // only needed while loading
  return std::shared_ptr<const Database>(std::make_shared<const Database>(std::move(impl)));
}

// ---- ignores ----

bool expired(const Ignore& ignore, std::chrono::system_clock::time_point now) { return ignore.until && now >= *ignore.until; }

bool ignores(const Ignore& ignore, const Finding& finding, std::chrono::system_clock::time_point now) {
  if (expired(ignore, now)) return false;
  std::string id = lower(ignore.id);
  bool named = lower(finding.id) == id ||
               std::any_of(finding.aliases.begin(), finding.aliases.end(), [&](const std::string& a) { return lower(a) == id; });
  if (!named) return false;
  if (ignore.packages.empty()) return true;
  return std::any_of(ignore.packages.begin(), ignore.packages.end(),
                     [&](const std::string& p) { return p == finding.package || p == finding.matched_name; });
}

}  // namespace ocigate::vuln
