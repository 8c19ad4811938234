// One layer's scan: decompressor -> tar reader -> this visitor, which keeps only what the
// policy needs. Content is buffered for one file at a time and only for files worth reading.

#include "ocigate/layers/scan.hpp"

#include <algorithm>
#include <set>

#include "content.hpp"
#include "rpmdb.hpp"
#include "ocigate/common/utf8.hpp"
#include "ocigate/layers/decompress.hpp"
#include "ocigate/layers/tar.hpp"

namespace ocigate::layers {

namespace {

std::string mode_text(std::uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

std::string special_bits(std::uint32_t mode) {
  std::string bits = (mode & 04000) ? "setuid" : "";
  if (mode & 02000) bits += bits.empty() ? "setgid" : "+setgid";
  return bits + ", mode " + mode_text(mode);
}

std::string parent_of(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(path.substr(0, slash));
}

std::string join_path(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

// Image paths and file contents are arbitrary bytes, but reports become JSON (whose serializer
// throws on invalid UTF-8) and messages: invalid sequences become '?'. Paths are cleaned before
// they are hashed, so whiteouts, hashes and facts agree.
std::string clean_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    if (std::size_t len = utf8::sequence_length(s, i)) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

void clean_strings(LayerReport& r) {
  auto clean = [](std::string& s) { s = clean_utf8(s); };
  for (auto& f : r.setuid_files) clean(f.detail);
  for (auto& s : r.secrets) clean(s.kind), clean(s.evidence);
  for (auto& os : r.os_release) clean(os.id), clean(os.version_id), clean(os.pretty_name);
  for (auto& db : r.package_dbs) {
    clean(db.error);
    for (auto& p : db.packages) clean(p.name), clean(p.version), clean(p.source), clean(p.source_version);
  }
  if (r.passwd) {
    std::map<std::string, long long> users;
    for (auto& [name, uid] : r.passwd->users) users.emplace(clean_utf8(name), uid);
    r.passwd->users = std::move(users);
  }
}

template <class T>
void erase_path(std::vector<T>& items, const std::string& path) {
  std::erase_if(items, [&](const T& item) { return item.path == path; });
}

class Collector : public TarVisitor {
 public:
  Collector(LayerReport& report, const ScanLimits& limits) : report_(report), limits_(limits) {}

  void entry(const TarEntry& e) override {
    std::string path = clean_utf8(normalise_path(e.path));
    std::string_view name = std::string_view(path).substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
    reading_ = content::Kind::none;
    if (name.substr(0, 4) == ".wh.") return whiteout(path, name);
    bool dir = e.type == EntryType::directory;
    report_.path_hashes.push_back((path_hash(path) & ~std::uint64_t{1}) | (dir ? 1 : 0));
    if (recorded_.count(path)) forget(path);  // a later entry for the same path replaces it
    bool regular = e.type == EntryType::file || e.type == EntryType::hard_link;
    if (regular) setuid(e, path);
    if (regular || e.type == EntryType::symlink) {
      if (auto tool = content::installer(path)) record(report_.installers, FileFact{path, e.mode, e.uid, *tool});
    }
    if (e.type == EntryType::file && e.size > 0) choose_reading(path, e.size);
  }

  void data(std::span<const std::byte> bytes) override {
    if (reading_ == content::Kind::none) return;
    std::size_t room = cap_ > buffer_.size() ? cap_ - buffer_.size() : 0;
    std::size_t n = std::min(room, bytes.size());
    buffer_.append(reinterpret_cast<const char*>(bytes.data()), n);
    if (n < bytes.size()) truncated_ = true;
  }

  void entry_end() override {
    if (reading_ == content::Kind::none) return;
    consume(reading_, current_, buffer_);
    reading_ = content::Kind::none;
    buffer_.clear();
    if (buffer_.capacity() > limits_.small_file) buffer_.shrink_to_fit();
  }

 private:
  void whiteout(const std::string& path, std::string_view name) {
    std::string dir = parent_of(path);
    if (name == ".wh..wh..opq") {
      report_.opaque_dirs.push_back(dir);
    } else if (name.size() > 4) {
      report_.whiteouts.push_back(join_path(dir, name.substr(4)));
    }
  }

  void setuid(const TarEntry& e, const std::string& path) {
    std::uint32_t mode = e.mode;
    std::string detail;
    if (e.type == EntryType::hard_link) {
      // A hard link shares its target's inode: setuid if the target is, whatever the header says.
      auto target = setuid_modes_.find(normalise_path(e.linkname));
      if (target != setuid_modes_.end()) mode |= target->second;
      detail = ", hard link to /" + normalise_path(e.linkname);
    }
    if (!(mode & 06000)) return;
    setuid_modes_[path] = mode & 06000;
    record(report_.setuid_files, FileFact{path, mode, e.uid, special_bits(mode) + detail});
  }

  template <class T>
  void record(std::vector<T>& items, T item) {
    recorded_.insert(item.path);
    if (items.size() < limits_.max_findings) items.push_back(std::move(item));
  }

  void forget(const std::string& path) {
    erase_path(report_.setuid_files, path);
    erase_path(report_.installers, path);
    erase_path(report_.os_release, path);
    erase_path(report_.package_dbs, path);
    setuid_modes_.erase(path);
    if (path == "etc/passwd") report_.passwd.reset();
  }

  void choose_reading(const std::string& path, std::uint64_t size) {
    content::Kind kind = content::kind_of(path);
    bool database = kind == content::Kind::passwd || kind == content::Kind::os_release ||
                    kind == content::Kind::apk_db || kind == content::Kind::dpkg_status || kind == content::Kind::rpm_db;
    if (!database && size > limits_.small_file) return;
    if (kind == content::Kind::generic) {
      if (budget_used_ + size > limits_.content_budget) {
        report_.secrets_budget_exhausted = true;
        return;
      }
      budget_used_ += size;
    }
    reading_ = kind;
    current_ = path;
    cap_ = kind == content::Kind::rpm_db ? limits_.max_rpmdb_bytes : database ? limits_.max_db_bytes : limits_.small_file;
    truncated_ = false;
  }

  void consume(content::Kind kind, const std::string& path, std::string_view text) {
    recorded_.insert(path);
    switch (kind) {
      case content::Kind::passwd: report_.passwd = content::parse_passwd(text); return;
      case content::Kind::os_release: {
        OsRelease os = content::parse_os_release(text);
        os.path = path;
        report_.os_release.push_back(std::move(os));
        return;
      }
      case content::Kind::rpm_db: return add_rpmdb(path, text);
      case content::Kind::apk_db:
      case content::Kind::dpkg_status: {
        bool apk = kind == content::Kind::apk_db;
        PackageDb db{path, apk ? "apk" : "dpkg", apk ? content::parse_apk(text) : content::parse_dpkg(text), truncated_, ""};
        if (report_.package_dbs.size() < limits_.max_findings * 10) report_.package_dbs.push_back(std::move(db));
        return;
      }
      default: break;
    }
    for (auto& found : content::secrets(kind, path, text)) {
      if (report_.secrets.size() < limits_.max_findings) report_.secrets.push_back(std::move(found));
    }
  }

  // An SQLite file cut at the cap is unreadable: the whole list is then missing, and says why.
  void add_rpmdb(const std::string& path, std::string_view bytes) {
    PackageDb db{path, "rpm", {}, truncated_, ""};
    if (truncated_) {
      db.error = "larger than the read limit (" + std::to_string(limits_.max_rpmdb_bytes >> 20) + " MiB)";
    } else if (auto packages = rpmdb::parse_sqlite(std::string(bytes))) {
      db.packages = std::move(*packages);
    } else {
      db.error = packages.error().message;
    }
    if (report_.package_dbs.size() < limits_.max_findings * 10) report_.package_dbs.push_back(std::move(db));
  }

  LayerReport& report_;
  const ScanLimits& limits_;
  std::set<std::string> recorded_;  // paths with a fact in this layer
  std::map<std::string, std::uint32_t> setuid_modes_;
  content::Kind reading_ = content::Kind::none;
  std::string current_, buffer_;
  std::size_t cap_ = 0;
  bool truncated_ = false;
  std::uint64_t budget_used_ = 0;
};

}  // namespace

struct LayerScanner::Impl {
  LayerReport report;
  ScanLimits limits;
  Collector collector;
  TarReader tar;
  Decompressor decompressor;
  bool done = false;
  bool tar_failed = false;
  ByteSink sink;

  Impl(std::string digest, std::string media_type, ScanLimits l)
      : limits(l),
        collector(report, limits),
        tar(collector, TarLimits{l.max_entries, l.max_meta_bytes}),
        decompressor(classify_media_type(media_type).compression) {
    report.digest = std::move(digest);
    report.media_type = std::move(media_type);
    sink = [this](std::span<const std::byte> bytes) {
      auto s = tar.feed(bytes);
      if (!s) fail(s.error().message);
      return s.ok();
    };
  }

  void fail(std::string why) {
    if (report.status == LayerReport::Status::error) return;
    report.status = LayerReport::Status::error;
    report.error = std::move(why);
  }

  bool running() const { return !done && report.status == LayerReport::Status::ok; }
};

LayerScanner::LayerScanner(std::string digest, std::string media_type, ScanLimits limits)
    : impl_(std::make_unique<Impl>(std::move(digest), std::move(media_type), limits)) {
  if (foreign_layer(impl_->report.media_type)) {
    impl_->report.status = LayerReport::Status::foreign;
    impl_->report.error = "foreign layer, not inspected";
  }
}

LayerScanner::~LayerScanner() = default;

bool LayerScanner::feed(std::span<const std::byte> chunk) {
  Impl& d = *impl_;
  if (!d.running()) return false;
  auto s = d.decompressor.feed(chunk, d.sink);
  if (!s) d.fail(s.error().message);  // keeps the tar reader's reason when it stopped the stream
  return d.running();
}

bool LayerScanner::feed(std::string_view chunk) {
  return feed(std::as_bytes(std::span<const char>(chunk.data(), chunk.size())));
}

LayerReport LayerScanner::finish() {
  Impl& d = *impl_;
  if (d.running()) {
    auto s = d.decompressor.finish(d.sink);
    if (!s) d.fail(s.error().message);
  }
  if (d.running()) {
    auto s = d.tar.finish();
    if (!s) d.fail(s.error().message);
  }
  d.done = true;
  LayerReport& r = d.report;
  r.compression = compression_text(d.decompressor.detected());
  r.entries = d.tar.entries();
  r.compressed_bytes = d.decompressor.bytes_in();
  r.uncompressed_bytes = d.decompressor.bytes_out();
  clean_strings(r);
  std::sort(r.path_hashes.begin(), r.path_hashes.end());
  r.path_hashes.erase(std::unique(r.path_hashes.begin(), r.path_hashes.end()), r.path_hashes.end());
  return std::move(r);
}

const LayerReport& LayerScanner::partial() const { return impl_->report; }

bool foreign_layer(std::string_view media_type) { return classify_media_type(media_type).foreign; }

LayerReport foreign_report(std::string digest, std::string media_type) {
  LayerScanner scanner(std::move(digest), std::move(media_type));
  return scanner.finish();
}

LayerReport scan_stream(std::string_view media_type, std::istream& in, std::string digest, ScanLimits limits) {
  LayerScanner scanner(std::move(digest), std::string(media_type), limits);
  std::vector<char> buffer(64 * 1024);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    if (!scanner.feed(std::string_view(buffer.data(), static_cast<std::size_t>(n)))) break;
  }
  return scanner.finish();
}

LayerReport scan_bytes(std::string_view media_type, std::span<const std::byte> bytes, std::string digest,
                       ScanLimits limits) {
  LayerScanner scanner(std::move(digest), std::string(media_type), limits);
  scanner.feed(bytes);
  return scanner.finish();
}

std::string normalise_path(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    auto slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (auto part : parts) {
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

}  // namespace ocigate::layers
