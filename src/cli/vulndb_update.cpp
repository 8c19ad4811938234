// `ocigate vulndb update` (cli/vulndb_update.hpp): download, verify, install all or none.

#include "ocigate/cli/vulndb_update.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "ocigate/upstream/client.hpp"
#include "ocigate/vuln/database.hpp"

namespace ocigate::cli {

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

constexpr std::uint64_t max_source_bytes = 2ull << 30;  // osv.dev's largest zip is well under 100 MiB

// The upstream client's view of one source URL: TLS, redirects and address rules come with it.
config::Upstream upstream_for(const config::VulnerabilitySource& source) {
  config::Upstream u;
  u.name = source.host;
  u.url = source.url;
  u.tls = source.tls;
  u.host = source.host;
  u.port = source.port;
  u.max_connections = 1;
  u.response_timeout = std::chrono::seconds(60);
  u.idle_timeout = std::chrono::seconds(60);
  return u;
}

// A file opened for writing, closed (and, unless kept, removed) when it goes.
class StagedFile {
 public:
  explicit StagedFile(fs::path path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  ~StagedFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  bool open() const { return fd_ >= 0; }
  Status write(const char* data, std::size_t size) {
    while (size > 0) {
      ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error{Errc::storage_error, path_.string() + ": " + std::strerror(errno)};
      data += n;
      size -= static_cast<std::size_t>(n);
    }
    return ok_status();
  }
  Status finish() {
    int fd = fd_;
    fd_ = -1;
    if (::fsync(fd) != 0 || ::close(fd) != 0) return Error{Errc::storage_error, path_.string() + ": " + std::strerror(errno)};
    return ok_status();
  }

 private:
  fs::path path_;
  int fd_ = -1;
};

std::string mib(std::uint64_t bytes) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buffer;
}

// GETs the source into `path`, printing progress about every 16 MiB.
asio::awaitable<Status> download(upstream::Client& client, const config::VulnerabilitySource& source, const fs::path& path) {
  upstream::Request request;
  request.target = source.target;
  request.follow_redirects = true;
  auto response = co_await client.send(request);
  if (!response) co_return response.error();
  if ((*response)->status() != 200) {
    co_return Error{Errc::upstream_error, source.url + ": answered HTTP " + std::to_string((*response)->status())};
  }
  if (auto length = (*response)->content_length(); length && *length > max_source_bytes) {
    co_return Error{Errc::size_invalid, source.url + ": " + mib(*length) + " is more than a database file may be"};
  }
  StagedFile file(path);
  if (!file.open()) co_return Error{Errc::storage_error, path.string() + ": " + std::strerror(errno)};
  std::vector<char> buffer(1 << 20);
  std::uint64_t total = 0, reported = 0;
  for (;;) {
    auto n = co_await (*response)->read_some(asio::buffer(buffer));
    if (!n) co_return n.error();
    if (*n == 0) break;
    total += *n;
    if (total > max_source_bytes) co_return Error{Errc::size_invalid, source.url + ": more than " + mib(max_source_bytes)};
    if (auto written = file.write(buffer.data(), *n); !written) co_return written.error();
    if (total - reported >= (16u << 20)) {
      std::printf("  %s ...\n", mib(total).c_str());
      std::fflush(stdout);
      reported = total;
    }
  }
  if (auto synced = file.finish(); !synced) co_return synced.error();
  std::printf("  %s received\n", mib(total).c_str());
  co_return ok_status();
}

Status fetch(const config::VulnerabilitySource& source, const fs::path& path) {
  asio::io_context ioc;
  auto client = upstream::Client::create(ioc.get_executor(), upstream_for(source));
  std::optional<Status> result;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { result = co_await download(*client, source, path); }, asio::detached);
  ioc.run();
  if (!result) return Error{Errc::internal, source.url + ": the download did not finish"};
  return *result;
}

struct Staged {
  fs::path staged, final;
  std::string file;  // as the config names it: "Debian/all.zip"
};

fs::path staged_path(const fs::path& final) {
  std::string name = ".";  // appended piece by piece: GCC 12's -Wrestrict false positive on "." + string
  name.append(final.filename().string()).append(".part-").append(std::to_string(::getpid()));
  return final.parent_path() / name;
}

// vuln::load on the staged files alone, through a hidden directory of links to them laid out as
// they will be installed.
Status verify(const fs::path& dir, const std::vector<Staged>& staged) {
  const fs::path check = dir / (".verify-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(check, ec);
  Status status = ok_status();
  for (const auto& s : staged) {
    const fs::path link = check / s.file;
    fs::create_directories(link.parent_path(), ec);
    if (!ec) fs::create_symlink(fs::absolute(s.staged), link, ec);
    if (ec) {
      status = Error{Errc::storage_error, link.string() + ": " + ec.message()};
      break;
    }
  }
  if (status) {
    auto loaded = vuln::load(check.string());
    if (!loaded) {
      status = loaded.error();
    } else {
      const auto& meta = (*loaded)->metadata();
      std::printf("verified: %zu records kept (%zu withdrawn, %zu of other ecosystems)\n", meta.records_loaded,
                  meta.records_withdrawn, meta.records_other);
    }
  }
  fs::remove_all(check, ec);
  return status;
}

void remove_staged(const std::vector<Staged>& staged) {
  std::error_code ec;
  for (const auto& s : staged) fs::remove(s.staged, ec);
}

Status sync_directory(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error{Errc::storage_error, dir.string() + ": " + std::strerror(errno)};
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Error{Errc::storage_error, dir.string() + ": " + std::strerror(errno)};
  return ok_status();
}

std::string rfc3339_now() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

// {"built_at": now}, written aside and renamed: the database's age runs from it.
Status write_manifest(const fs::path& dir) {
  const fs::path final = dir / vuln::manifest_name;
  const fs::path aside = staged_path(final);
  const std::string text = nlohmann::json{{"built_at", rfc3339_now()}}.dump() + "\n";
  {
    StagedFile file(aside);
    if (!file.open()) return Error{Errc::storage_error, aside.string() + ": " + std::strerror(errno)};
    if (auto w = file.write(text.data(), text.size()); !w) return w;
    if (auto f = file.finish(); !f) return f;
  }
  std::error_code ec;
  fs::rename(aside, final, ec);
  if (ec) {
    fs::remove(aside, ec);
    return Error{Errc::storage_error, final.string() + ": " + ec.message()};
  }
  return sync_directory(dir);
}

int failed(const std::vector<Staged>& staged, const std::string& why) {
  remove_staged(staged);
  std::fprintf(stderr, "ocigate vulndb update: %s\nocigate vulndb update: failed; the previous database is kept\n", why.c_str());
  return 1;
}

}  // namespace

int update_vulndb(const config::Config& config) {
  if (!config.vulnerabilities) {
    std::fprintf(stderr, "ocigate vulndb update: %s has no vulnerabilities section (database, sources)\n", config.source.c_str());
    return 2;
  }
  const auto& section = *config.vulnerabilities;
  if (section.sources.empty()) {
    std::fprintf(stderr, "ocigate vulndb update: %s: vulnerabilities.sources is empty: nothing to download\n", config.source.c_str());
    return 2;
  }
  const fs::path dir = section.database;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec)) {
    std::fprintf(stderr, "ocigate vulndb update: cannot use %s as the database directory\n", dir.c_str());
    return 1;
  }
  std::vector<Staged> staged;
  for (const auto& source : section.sources) {
    const fs::path final = dir / source.file;
    fs::create_directories(final.parent_path(), ec);
    if (ec) return failed(staged, final.parent_path().string() + ": " + ec.message());
    staged.push_back({staged_path(final), final, source.file});
    std::printf("downloading %s -> %s\n", source.url.c_str(), source.file.c_str());
    std::fflush(stdout);
    if (auto got = fetch(source, staged.back().staged); !got) return failed(staged, got.error().message);
  }
  std::printf("verifying %zu file(s)\n", staged.size());
  if (auto verified = verify(dir, staged); !verified) return failed(staged, "verification: " + verified.error().message);
  // While files are renamed one by one the directory is half old, half new: the marker makes a
  // reload (SIGHUP) in that window keep the database in force.
  const fs::path marker = dir / vuln::updating_name;
  if (!std::ofstream(marker)) return failed(staged, marker.string() + ": " + std::strerror(errno));
  auto install = [&]() -> Status {
    for (const auto& s : staged) {
      fs::rename(s.staged, s.final, ec);
      if (ec) return Error{Errc::storage_error, s.final.string() + ": " + ec.message()};
      if (auto synced = sync_directory(s.final.parent_path()); !synced) return synced;
      std::printf("installed %s\n", s.file.c_str());
    }
    return write_manifest(dir);
  };
  auto installed = install();
  fs::remove(marker, ec);
  if (!installed) {
    remove_staged(staged);
    std::fprintf(stderr, "ocigate vulndb update: %s\nocigate vulndb update: failed while installing; run it again "
                         "(a reload meanwhile keeps the database in force)\n", installed.error().message.c_str());
    return 1;
  }
  auto version = vuln::version_of(dir.string());
  std::printf("updated %s (version %s)\nsend SIGHUP to the running mirror to load it (e.g. systemctl reload ocigate)\n",
              dir.c_str(), version ? version->c_str() : "?");
  return 0;
}

}  // namespace ocigate::cli
