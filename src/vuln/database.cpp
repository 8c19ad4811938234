// Loading OSV records into the index and matching inventories against it.

#include "ocigate/vuln/database.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "ocigate/oci/digest.hpp"
#include "ocigate/common/time.hpp"

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
  std::string_view name;     // the name records use
  std::string_view version;  // the version to compare
};

// What to look up for one installed package (see the table in database.hpp): views into it.
void lookups(const policy::Package& p, Scheme scheme, std::vector<Lookup>& out) {
  out.clear();
  if (scheme == Scheme::rpm) {
    out.push_back({p.name, p.version});
    if (!p.source.empty() && p.source != p.name) out.push_back({p.source, p.version});
    return;
  }
  std::string_view name = p.source.empty() ? p.name : p.source;
  std::string_view version = (scheme == Scheme::dpkg && !p.source_version.empty()) ? p.source_version : p.version;
  out.push_back({name, version});
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
  out.database = shared_from_this();
  const Scheme scheme = distro->scheme;
  // Hits are collected as small records and sorted; Findings (strings) are built once, in order.
  struct Hit {
    const Impl::Entry* entry;
    std::uint32_t package;  // index into packages
    std::uint32_t lookup;   // 0: the first name looked up, 1: the rpm's source
    std::string_view fix;   // "" = none
  };
  std::vector<Hit> hits;
  std::vector<Lookup> looked;
  std::string key;
  for (std::uint32_t i = 0; i < packages.size(); ++i) {
    const auto& p = packages[i];
    if (p.format != scheme_text(scheme)) continue;
    ++out.packages_checked;
    lookups(p, scheme, looked);
    if (!valid(scheme, looked[0].version)) {
      out.skipped.push_back(p.name + " " + std::string(looked[0].version) + ": not a valid " + scheme_text(scheme) + " version");
      continue;
    }
    for (std::uint32_t l = 0; l < looked.size(); ++l) {
      const Lookup& look = looked[l];
      key.assign(distro->key).append(1, '\n').append(look.name);
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
        if (hit) hits.push_back(Hit{&e, i, l, fix.value_or(std::string_view())});
      }
    }
  }
  // One finding per (record, package): an rpm record may name both the binary and its source
  // (the binary's entry, looked up first, is kept).
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return std::tie(a.entry->record, a.package, a.lookup) < std::tie(b.entry->record, b.package, b.lookup);
  });
  hits.erase(std::unique(hits.begin(), hits.end(),
                         [](const Hit& a, const Hit& b) { return a.entry->record == b.entry->record && a.package == b.package; }),
             hits.end());
  auto score = [](const Impl::Entry* e) { return e->has_score ? e->score : -1.0f; };
  std::sort(hits.begin(), hits.end(), [&](const Hit& a, const Hit& b) {
    if (a.entry->severity != b.entry->severity) return rank(a.entry->severity) > rank(b.entry->severity);
    if (score(a.entry) != score(b.entry)) return score(a.entry) > score(b.entry);
    if (a.entry->record != b.entry->record) {
      return impl_->records[a.entry->record].id < impl_->records[b.entry->record].id;
    }
    return packages[a.package].name < packages[b.package].name;
  });
  out.findings.reserve(hits.size());
  for (const auto& h : hits) {
    const Impl::Entry& e = *h.entry;
    const auto& rec = impl_->records[e.record];
    lookups(packages[h.package], scheme, looked);
    const Lookup& look = looked[h.lookup];
    Finding& f = out.findings.emplace_back();
    f.id = rec.id;
    f.aliases = rec.aliases;
    f.related = rec.related;
    f.package = packages[h.package].name;
    f.matched_name = look.name;
    f.installed_version = look.version;
    if (!h.fix.empty()) f.fixed_version = h.fix;
    f.severity = e.severity;
    if (e.has_score) f.score = std::round(static_cast<double>(e.score) * 10) / 10;
    f.severity_source = *e.severity_source;
    f.ecosystem = *e.ecosystem;
  }
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
  return parse_rfc3339(json["built_at"].get<std::string>());
}

// One item to load: its text, or nullopt when it is not a record (a directory, a README).
using ReadItem = std::function<Result<std::optional<std::string>>(unsigned worker, std::size_t item)>;

using Batch = std::vector<std::optional<Result<osv::Record>>>;

// Reads and parses items [start, end) on `threads` threads.
Batch parse_batch(std::size_t start, std::size_t end, unsigned threads, const ReadItem& read) {
  Batch slots(end - start);
  std::atomic<std::size_t> next{start};
  auto work = [&](unsigned worker) {
    for (std::size_t i; (i = next++) < end;) {
      auto text = read(worker, i);
      if (!text) {
        slots[i - start] = Result<osv::Record>(text.error());
      } else if (*text) {
        slots[i - start] = osv::parse_record(**text);
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < threads; ++w) pool.emplace_back(work, w);
  work(0);
  for (auto& t : pool) t.join();
  return slots;
}

// Adds a parsed batch to the index in item order; the first error stops it.
Status add_batch(Database::Impl& impl, Batch& slots, std::size_t start, const std::function<std::string(std::size_t)>& where) {
  for (std::size_t i = start; i < start + slots.size(); ++i) {
    auto& slot = slots[i - start];
    if (!slot) continue;
    if (!*slot) return Error{slot->error().code, where(i) + ": " + slot->error().message};
    impl.add(std::move(**slot));
  }
  return ok_status();
}

// Reads and parses `count` items on `threads` threads, a batch at a time (memory stays bounded),
// and adds the records to the index in item order, so "the first id wins" does not depend on
// thread timing. Adding (one thread: the index is not shared) overlaps with parsing the next
// batch. The first error (in item order) stops the load.
Status load_items(Database::Impl& impl, std::size_t count, unsigned threads, const ReadItem& read,
                  const std::function<std::string(std::size_t)>& where) {
  constexpr std::size_t batch = 2048;
  Batch adding;
  Status added = ok_status();
  std::thread adder;
  for (std::size_t start = 0; start < count; start += batch) {
    Batch parsed = parse_batch(start, std::min(count, start + batch), threads, read);
    if (adder.joinable()) adder.join();
    if (!added) return added;
    adding = std::move(parsed);
    adder = std::thread([&, start] { added = add_batch(impl, adding, start, where); });
  }
  if (adder.joinable()) adder.join();
  return added;
}

bool record_entry(const ZipEntry& entry) {
  return !entry.directory() && data_name(fs::path(entry.name).filename().string());
}

Status add_zip(Database::Impl& impl, const DataFile& f, const LoadLimits& limits, unsigned threads) {
  // A reader per thread: each reads its own entries with pread.
  std::vector<ZipReader> readers;
  for (unsigned w = 0; w < threads; ++w) {
    auto zip = ZipReader::open(f.path.string(), limits.zip);
    if (!zip) return zip.error();
    readers.push_back(std::move(*zip));
  }
  const auto& entries = readers[0].entries();
  ReadItem read = [&](unsigned worker, std::size_t i) -> Result<std::optional<std::string>> {
    if (!record_entry(entries[i])) return std::optional<std::string>();
    auto bytes = readers[worker].read(readers[worker].entries()[i]);
    if (!bytes) return bytes.error();
    return std::optional<std::string>(std::move(*bytes));
  };
  return load_items(impl, entries.size(), threads, read, [&](std::size_t i) { return f.relative + ":" + entries[i].name; });
}

Status add_json_files(Database::Impl& impl, const std::vector<DataFile>& files, const LoadLimits& limits, unsigned threads) {
  ReadItem read = [&](unsigned, std::size_t i) -> Result<std::optional<std::string>> {
    auto text = read_file(files[i], limits.max_json_bytes);
    if (!text) return text.error();
    return std::optional<std::string>(std::move(*text));
  };
  return load_items(impl, files.size(), threads, read, [&](std::size_t i) { return files[i].relative; });
}

unsigned thread_count(const LoadLimits& limits) {
  unsigned n = limits.threads ? limits.threads : std::thread::hardware_concurrency();
  return std::clamp(n, 1u, 8u);
}

// What the version hashes: every data file's name, size and modification time, then the manifest.
std::string fingerprint_text(const std::vector<DataFile>& files) {
  std::string hashed;
  for (const auto& f : files) {
    hashed += f.relative + '\0' + std::to_string(f.size) + '\0' + std::to_string(f.mtime_ns) + '\n';
  }
  return hashed;
}

// An update is renaming its files into place (and did not die doing it): the directory is half old, half new.
Status not_updating(const std::string& dir) {
  struct stat st {};
  if (::stat((fs::path(dir) / updating_name).c_str(), &st) != 0) return ok_status();
  const auto since = std::chrono::system_clock::now() - std::chrono::system_clock::time_point(
                                                            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                                                std::chrono::nanoseconds(mtime_ns(st))));
  if (since > updating_stale) return ok_status();
  return Error{Errc::storage_error, dir + ": ocigate vulndb update is installing files (" + updating_name +
                                        "); load again when it is done"};
}

}  // namespace

Result<std::string> version_of(const std::string& dir, LoadLimits limits) {
  if (auto busy = not_updating(dir); !busy) return busy.error();
  auto files = list_files(dir, limits);
  if (!files) return files.error();
  if (files->empty()) return Error{Errc::storage_error, dir + ": no OSV records (*.json) or all.zip files"};
  std::string hashed = fingerprint_text(*files);
  (void)manifest_time(dir, hashed);
  return oci::sha256_digest(hashed);
}

Result<std::shared_ptr<const Database>> load(const std::string& dir, LoadLimits limits) {
  if (auto busy = not_updating(dir); !busy) return busy.error();
  auto files = list_files(dir, limits);
  if (!files) return files.error();
  if (files->empty()) return Error{Errc::storage_error, dir + ": no OSV records (*.json) or all.zip files"};
  auto impl = std::make_unique<Database::Impl>();
  std::string hashed = fingerprint_text(*files);
  std::int64_t newest = 0;
  std::vector<DataFile> json_files;
  unsigned threads = thread_count(limits);
  for (const auto& f : *files) {
    newest = std::max(newest, f.mtime_ns);
    bool zip = f.relative.size() > 4 && f.relative.compare(f.relative.size() - 4, 4, ".zip") == 0;
    if (!zip) {
      json_files.push_back(f);
    } else if (auto s = add_zip(*impl, f, limits, threads); !s) {
      return s.error();
    }
  }
  if (auto s = add_json_files(*impl, json_files, limits, threads); !s) return s.error();
  impl->meta.files = files->size();
  auto built = manifest_time(dir, hashed);
  impl->meta.version = oci::sha256_digest(hashed);
  impl->meta.built_at = built ? *built
                              : std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                    std::chrono::nanoseconds(newest)));
  impl->seen_ids = {};  // only needed while loading
  return std::shared_ptr<const Database>(std::make_shared<const Database>(std::move(impl)));
}

}  // namespace ocigate::vuln
