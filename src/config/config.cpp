#include "ocigate/config/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "ocigate/common/address.hpp"
#include "ocigate/common/time.hpp"

namespace ocigate::config {

namespace {

// A config file bigger than this is a mistake (or /dev/zero), not a configuration.
constexpr std::size_t max_config_bytes = 16u << 20;
constexpr std::size_t max_secret_bytes = 64u << 10;

// Reads a whole file, at most `cap` bytes. FIFOs (--config <(...)) work; a directory or an endless
// device is refused instead of hanging. On failure returns nullopt and sets `why`.
std::optional<std::string> read_capped(const std::string& path, std::size_t cap, std::string& why) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    why = std::strerror(EISDIR);
    return std::nullopt;
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = std::strerror(errno ? errno : ENOENT);
    return std::nullopt;
  }
  std::string text;
  char buffer[8192];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > cap) {
      why = "larger than " + std::to_string(cap) + " bytes";
      return std::nullopt;
    }
  }
  if (in.bad()) {
    why = std::strerror(errno ? errno : EIO);
    return std::nullopt;
  }
  return text;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t prev = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cur = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
      prev = cur;
    }
  }
  return row[b.size()];
}

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// Whole decimal number with at most `max_digits` digits, no sign, no spaces.
std::optional<std::uint64_t> parse_digits(std::string_view text, std::size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

// Thrown only while loading (never on the data path); parse() turns it into a Result.
struct Refusal {
  std::string message;
};

class Loader {
 public:
  explicit Loader(std::string_view source) : source_(source) {}

  [[noreturn]] void refuse(const YAML::Node& node, const std::string& key, const std::string& why) const {
    std::string where = source_;
    auto mark = node.IsDefined() ? node.Mark() : YAML::Mark::null_mark();
    // yaml-cpp marks an empty value (`tag_ttl:`) where the next token starts, often a later line.
    for (const auto& [value, key_mark] : empty_values_) {
      if (node.IsDefined() && value.is(node)) mark = key_mark;
    }
    if (!mark.is_null()) where += ":" + std::to_string(mark.line + 1);
    throw Refusal{where + ": " + key + ": " + why};
  }

  // A mapping whose keys are all known. A null section (`log:` with nothing under it) counts as empty.
  void only_keys(const YAML::Node& map, const std::string& path, std::initializer_list<std::string_view> known) const {
    if (map.IsNull()) return;
    if (!map.IsMap()) refuse(map, path.empty() ? "(top level)" : path, "must be a mapping, not " + kind(map));
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar()) refuse(it->first, path.empty() ? "(top level)" : path, "keys must be plain names");
      std::string key = it->first.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        refuse(it->first, join(path, key), "unknown key" + suggestion(key, known));
      }
      // yaml-cpp keeps both copies and node[key] would silently pick the first one.
      if (!seen.insert(key).second) refuse(it->first, join(path, key), "duplicate key");
      if (it->second.IsNull()) empty_values_.emplace_back(it->second, it->first.Mark());
    }
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (node.IsNull()) refuse(node, key, "has no value");
    if (!node.IsScalar()) refuse(node, key, "must be a single value, not " + kind(node));
    return node.Scalar();
  }

  std::uint64_t unsigned_int(const YAML::Node& node, const std::string& key, std::uint64_t min,
                             std::uint64_t max) const {
    auto text = scalar(node, key);
    auto value = parse_digits(text, 19);
    if (!value) refuse(node, key, "must be a whole number, got '" + text + "'");
    if (*value < min || *value > max) {
      refuse(node, key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + text);
    }
    return *value;
  }

  std::uint64_t size(const YAML::Node& node, const std::string& key) const {
    auto text = scalar(node, key);
    auto value = parse_size(text);
    if (!value) refuse(node, key, "bad size '" + text + "' (use e.g. 512MiB, 20GiB)");
    return *value;
  }

  std::chrono::seconds duration(const YAML::Node& node, const std::string& key) const {
    auto text = scalar(node, key);
    auto value = parse_duration(text);
    if (!value) {
      refuse(node, key, "bad duration '" + text + "' (use e.g. 30s, 5m, 1h30m, 2d; a bare number has no unit)");
    }
    return *value;
  }

  std::chrono::seconds positive_duration(const YAML::Node& node, const std::string& key) const {
    auto value = duration(node, key);
    if (value.count() == 0) refuse(node, key, "must be longer than 0s");
    return value;
  }

  // Requests per second: a positive decimal such as 50 or 0.5; 0 turns the limit off.
  double rate(const YAML::Node& node, const std::string& key) const {
    auto text = scalar(node, key);
    auto dot = text.find('.');
    auto whole = parse_digits(text.substr(0, dot), 7);
    auto fraction = dot == std::string::npos ? std::optional<std::uint64_t>(0) : parse_digits(text.substr(dot + 1), 6);
    if (!whole || !fraction) refuse(node, key, "must be a number of requests per second like 50 or 0.5, got '" + text + "'");
    return std::stod(text);
  }

  // A file that must exist and be readable now (it is read again later, e.g. on SIGHUP).
  std::string readable_file(const YAML::Node& node, const std::string& key) const;

  // A list of plain values; a single value is not a list.
  std::vector<Located> located_list(const YAML::Node& node, const std::string& key) const {
    if (node.IsNull()) return {};
    if (!node.IsSequence()) refuse(node, key, "must be a list, not " + kind(node));
    std::vector<Located> out;
    for (std::size_t i = 0; i < node.size(); ++i) {
      std::string item_key = key + "[" + std::to_string(i) + "]";
      auto mark = node[i].Mark();
      out.push_back(Located{scalar(node[i], item_key), item_key, mark.is_null() ? 0 : mark.line + 1});
    }
    return out;
  }

  std::vector<std::string> list(const YAML::Node& node, const std::string& key) const {
    std::vector<std::string> out;
    for (auto& item : located_list(node, key)) out.push_back(std::move(item.value));
    return out;
  }

  bool boolean(const YAML::Node& node, const std::string& key) const {
    auto text = lower(scalar(node, key));
    if (text == "true" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "no" || text == "off") return false;
    refuse(node, key, "must be true or false, got '" + node.Scalar() + "'");
  }

  Endpoint endpoint(const YAML::Node& node, const std::string& key) const {
    auto text = scalar(node, key);
    std::string host, port;
    if (!text.empty() && text.front() == '[') {
      auto close = text.find(']');
      if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
        refuse(node, key, "must be host:port, IPv6 as [::1]:5000, got '" + text + "'");
      }
      host = text.substr(1, close - 1);
      port = text.substr(close + 2);
    } else {
      auto colon = text.rfind(':');
      if (colon == std::string::npos) refuse(node, key, "must be host:port, got '" + text + "'");
      if (text.find(':') != colon) refuse(node, key, "an IPv6 address must be in brackets: [::1]:5000");
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
    }
    if (host.empty()) refuse(node, key, "host is empty (use 0.0.0.0 for every address)");
    if (host.find_first_of(" \t/[]") != std::string::npos) refuse(node, key, "bad host '" + host + "'");
    auto number = parse_digits(port, 5);
    if (!number || *number > 65535) refuse(node, key, "port must be 0..65535, got '" + port + "'");
    return Endpoint{host, static_cast<std::uint16_t>(*number)};
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  const std::string& source() const { return source_; }

 private:
  static std::string kind(const YAML::Node& node) {
    if (node.IsMap()) return "a mapping";
    if (node.IsSequence()) return "a list";
    if (node.IsNull()) return "empty";
    return "a single value";
  }

  static std::string suggestion(const std::string& key, std::initializer_list<std::string_view> known) {
    std::string_view best;
    std::size_t best_distance = 3;
    for (auto k : known) {
      auto d = edit_distance(key, k);
      if (d < best_distance) {
        best = k;
        best_distance = d;
      }
    }
    return best.empty() ? std::string() : " (did you mean " + std::string(best) + "?)";
  }

  std::string source_;
  mutable std::vector<std::pair<YAML::Node, YAML::Mark>> empty_values_;
};

std::string Loader::readable_file(const YAML::Node& node, const std::string& key) const {
  auto path = scalar(node, key);
  if (path.empty()) refuse(node, key, "must be a file path");
  std::string why;
  if (!read_capped(path, max_config_bytes, why)) refuse(node, key, "cannot read " + path + ": " + why);
  return path;
}

Tls load_tls(const Loader& l, const YAML::Node& node) {
  l.only_keys(node, "server.tls", {"cert_file", "key_file", "client_ca_file", "allow_plain_http", "client_cert_user"});
  if (node.IsNull() || !node["cert_file"]) l.refuse(node, "server.tls.cert_file", "is required with server.tls");
  if (!node["key_file"]) l.refuse(node, "server.tls.key_file", "is required with server.tls");
  Tls tls;
  tls.cert_file = l.readable_file(node["cert_file"], "server.tls.cert_file");
  tls.key_file = l.readable_file(node["key_file"], "server.tls.key_file");
  if (node["client_ca_file"]) tls.client_ca_file = l.readable_file(node["client_ca_file"], "server.tls.client_ca_file");
  if (node["allow_plain_http"]) tls.allow_plain_http = l.boolean(node["allow_plain_http"], "server.tls.allow_plain_http");
  if (node["client_cert_user"]) {
    if (!node["client_ca_file"]) {
      l.refuse(node["client_cert_user"], "server.tls.client_cert_user", "needs server.tls.client_ca_file");
    }
    tls.client_cert_user = l.boolean(node["client_cert_user"], "server.tls.client_cert_user");
  }
  return tls;
}

bool instance_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

// The host name, kept to what server.instance allows; "ocigate" when there is none.
std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "ocigate";
  std::string out;
  for (const char* c = name; *c && out.size() < 64; ++c) out.push_back(instance_name(std::string_view(c, 1)) ? *c : '-');
  return out.empty() ? "ocigate" : out;
}

bool both_bind(const Endpoint& a, const Endpoint& b) {
  auto wildcard = [](const std::string& host) { return host == "0.0.0.0" || host == "::"; };
  return a.port != 0 && a.port == b.port && (a.host == b.host || wildcard(a.host) || wildcard(b.host));
}

void load_server(const Loader& l, const YAML::Node& node, Server& s) {
  l.only_keys(node, "server", {"instance", "listen", "metrics_listen", "threads", "pin_threads", "max_header_bytes", "header_timeout",
                               "idle_timeout", "shutdown_grace", "malformed_per_minute", "tls", "max_uri_bytes",
                               "requests_per_second", "burst", "max_connections_per_client", "trusted_proxies"});
  if (node.IsNull()) return;
  if (node["instance"]) {
    s.instance = l.scalar(node["instance"], "server.instance");
    if (!instance_name(s.instance)) {
      l.refuse(node["instance"], "server.instance", "must be 1-64 of A-Z a-z 0-9 . _ - (it goes into a header)");
    }
  }
  if (node["listen"]) s.listen = l.endpoint(node["listen"], "server.listen");
  if (node["metrics_listen"]) {
    s.metrics_listen = l.endpoint(node["metrics_listen"], "server.metrics_listen");
    if (both_bind(s.listen, *s.metrics_listen)) {
      l.refuse(node["metrics_listen"], "server.metrics_listen",
               "uses the port of server.listen (omit it to serve /metrics on the main listener)");
    }
  }
  if (node["threads"]) s.threads = static_cast<unsigned>(l.unsigned_int(node["threads"], "server.threads", 0, 256));
  if (node["pin_threads"]) s.pin_threads = l.boolean(node["pin_threads"], "server.pin_threads");
  if (node["max_header_bytes"]) {
    s.max_header_bytes = l.size(node["max_header_bytes"], "server.max_header_bytes");
    if (s.max_header_bytes < 1024 || s.max_header_bytes > (1u << 20)) {
      l.refuse(node["max_header_bytes"], "server.max_header_bytes", "must be between 1KiB and 1MiB");
    }
  }
  if (node["header_timeout"]) s.header_timeout = l.positive_duration(node["header_timeout"], "server.header_timeout");
  if (node["idle_timeout"]) s.idle_timeout = l.positive_duration(node["idle_timeout"], "server.idle_timeout");
  if (node["shutdown_grace"]) s.shutdown_grace = l.duration(node["shutdown_grace"], "server.shutdown_grace");
  if (node["malformed_per_minute"]) {
    s.malformed_per_minute = static_cast<unsigned>(
        l.unsigned_int(node["malformed_per_minute"], "server.malformed_per_minute", 0, 1000000));
  }
  if (node["tls"]) s.tls = load_tls(l, node["tls"]);
  if (node["max_uri_bytes"]) {
    s.max_uri_bytes = l.size(node["max_uri_bytes"], "server.max_uri_bytes");
    if (s.max_uri_bytes < 256 || s.max_uri_bytes > (64u << 10)) {
      l.refuse(node["max_uri_bytes"], "server.max_uri_bytes", "must be between 256B and 64KiB");
    }
  }
  if (node["requests_per_second"]) {
    s.requests_per_second = l.rate(node["requests_per_second"], "server.requests_per_second");
  }
  if (node["burst"]) s.burst = static_cast<unsigned>(l.unsigned_int(node["burst"], "server.burst", 0, 1000000));
  if (node["max_connections_per_client"]) {
    s.max_connections_per_client = static_cast<unsigned>(
        l.unsigned_int(node["max_connections_per_client"], "server.max_connections_per_client", 0, 1000000));
  }
  if (node["trusted_proxies"]) {
    const auto& list = node["trusted_proxies"];
    for (const auto& item : l.located_list(list, "server.trusted_proxies")) {
      auto network = net::Network::parse(item.value);
      if (!network) l.refuse(list[s.trusted_proxies.size()], item.key, network.error().message);
      s.trusted_proxies.push_back(std::move(*network));
    }
  }
}

void load_storage(const Loader& l, const YAML::Node& node, Storage& s) {
  l.only_keys(node, "storage", {"path", "max_size", "chunk_size", "verify_reads"});
  if (node.IsNull()) return;
  if (node["path"]) {
    s.path = l.scalar(node["path"], "storage.path");
    if (s.path.empty()) l.refuse(node["path"], "storage.path", "must not be empty");
  }
  if (node["chunk_size"]) {
    auto chunk = l.size(node["chunk_size"], "storage.chunk_size");
    if (chunk < (64u << 10) || chunk > (16u << 20)) {
      l.refuse(node["chunk_size"], "storage.chunk_size", "must be between 64KiB and 16MiB");
    }
    s.chunk_size = static_cast<std::uint32_t>(chunk);
  }
  if (node["max_size"]) {
    s.max_size = l.size(node["max_size"], "storage.max_size");
    if (s.max_size < s.chunk_size) l.refuse(node["max_size"], "storage.max_size", "must be at least one chunk_size");
  }
  if (node["verify_reads"]) s.verify_reads = l.boolean(node["verify_reads"], "storage.verify_reads");
}

// A host name (lowercase labels of letters, digits and inner '-') with an optional :port, so that
// it can stand as the first path component of a repository name.
bool valid_upstream_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  auto host = name;
  if (auto colon = name.find(':'); colon != std::string_view::npos) {
    host = name.substr(0, colon);
    auto port = parse_digits(name.substr(colon + 1), 5);
    if (!port || *port == 0 || *port > 65535) return false;
  }
  std::size_t start = 0;
  while (start <= host.size()) {
    auto end = std::min(host.find('.', start), host.size());
    auto label = host.substr(start, end - start);
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    start = end + 1;
  }
  return true;
}

void parse_url(const Loader& l, const YAML::Node& node, const std::string& key, Upstream& u) {
  u.url = l.scalar(node, key);
  // parse_uri rather than parse_absolute_uri so that a fragment is named as such, not "not a URL".
  auto parsed = boost::urls::parse_uri(u.url);
  if (!parsed) l.refuse(node, key, "not a URL: '" + u.url + "'");
  auto scheme = parsed->scheme_id();
  if (scheme != boost::urls::scheme::http && scheme != boost::urls::scheme::https) {
    l.refuse(node, key, "scheme must be http or https, got '" + std::string(parsed->scheme()) + "'");
  }
  if (parsed->has_userinfo()) l.refuse(node, key, "credentials belong in username/password_file, not the URL");
  if (parsed->has_query()) l.refuse(node, key, "must not have a query");
  if (parsed->has_fragment()) l.refuse(node, key, "must not have a fragment");
  u.tls = scheme == boost::urls::scheme::https;
  u.host = std::string(parsed->encoded_host_address());
  if (u.host.empty()) l.refuse(node, key, "has no host");
  if (u.host.find('%') != std::string::npos) l.refuse(node, key, "host must not be percent-encoded");
  if (parsed->has_port()) {
    auto port = parse_digits(parsed->port(), 5);
    if (!port || *port == 0 || *port > 65535) l.refuse(node, key, "bad port '" + std::string(parsed->port()) + "'");
    u.port = static_cast<std::uint16_t>(*port);
  } else {
    u.port = u.tls ? 443 : 80;
  }
  u.base_path = std::string(parsed->encoded_path());
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
}

std::string read_secret(const Loader& l, const YAML::Node& node, const std::string& key, const std::string& path) {
  std::string why;
  auto secret = read_capped(path, max_secret_bytes, why);
  if (!secret) l.refuse(node, key, "cannot read " + path + ": " + why);
  // Exactly one line ending: editors add it, but anything else may be part of the password.
  if (!secret->empty() && secret->back() == '\n') secret->pop_back();
  if (!secret->empty() && secret->back() == '\r') secret->pop_back();
  if (secret->empty()) l.refuse(node, key, path + " is empty");
  return std::move(*secret);
}

void load_credentials(const Loader& l, const YAML::Node& node, const std::string& path, Upstream& u) {
  if (node["username"]) u.username = l.scalar(node["username"], path + ".username");
  if (node["password_file"]) u.password_file = l.scalar(node["password_file"], path + ".password_file");
  if (!u.username.empty() && u.password_file.empty()) {
    l.refuse(node["username"], path + ".password_file", "is required with username");
  }
  if (u.username.empty() && !u.password_file.empty()) {
    l.refuse(node["password_file"], path + ".username", "is required with password_file");
  }
  if (!u.password_file.empty()) {
    u.password = read_secret(l, node["password_file"], path + ".password_file", u.password_file);
  }
  if (node["ca_file"]) {
    u.ca_file = l.scalar(node["ca_file"], path + ".ca_file");
    std::string why;
    if (!read_capped(u.ca_file, max_config_bytes, why)) {
      l.refuse(node["ca_file"], path + ".ca_file", "cannot read " + u.ca_file + ": " + why);
    }
  }
}

Upstream load_upstream(const Loader& l, const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) l.refuse(node, path, "must be a mapping with name and url");
  l.only_keys(node, path, {"name", "url", "username", "password_file", "ca_file", "tag_ttl", "connect_timeout",
                           "response_timeout", "idle_timeout", "max_connections", "implicit_library",
                           "max_concurrent_fetches", "fetch_slot_timeout", "pull_ahead"});
  Upstream u;
  if (!node["name"]) l.refuse(node, path + ".name", "is required");
  u.name = l.scalar(node["name"], path + ".name");
  if (!valid_upstream_name(u.name)) {
    l.refuse(node["name"], path + ".name",
             "'" + u.name + "' is not a registry host name like docker.io or localhost:5001 (lowercase, no '/')");
  }
  if (!node["url"]) l.refuse(node, path + ".url", "is required");
  parse_url(l, node["url"], path + ".url", u);
  load_credentials(l, node, path, u);
  if (node["tag_ttl"]) u.tag_ttl = l.duration(node["tag_ttl"], path + ".tag_ttl");
  if (node["connect_timeout"]) {
    u.connect_timeout = l.positive_duration(node["connect_timeout"], path + ".connect_timeout");
  }
  if (node["response_timeout"]) {
    u.response_timeout = l.positive_duration(node["response_timeout"], path + ".response_timeout");
  }
  if (node["idle_timeout"]) u.idle_timeout = l.positive_duration(node["idle_timeout"], path + ".idle_timeout");
  if (node["max_connections"]) {
    u.max_connections =
        static_cast<unsigned>(l.unsigned_int(node["max_connections"], path + ".max_connections", 1, 4096));
  }
  if (node["max_concurrent_fetches"]) {
    u.max_concurrent_fetches = static_cast<unsigned>(
        l.unsigned_int(node["max_concurrent_fetches"], path + ".max_concurrent_fetches", 0, 100000));
  }
  if (node["pull_ahead"]) {
    u.pull_ahead = static_cast<unsigned>(l.unsigned_int(node["pull_ahead"], path + ".pull_ahead", 0, 16));
  }
  if (node["fetch_slot_timeout"]) {
    u.fetch_slot_timeout = l.positive_duration(node["fetch_slot_timeout"], path + ".fetch_slot_timeout");
  }
  u.implicit_library = u.name == "docker.io";
  if (node["implicit_library"]) u.implicit_library = l.boolean(node["implicit_library"], path + ".implicit_library");
  return u;
}

void load_log(const Loader& l, const YAML::Node& node, Log& log) {
  l.only_keys(node, "log", {"access_log", "audit_log", "level"});
  if (node.IsNull()) return;
  for (auto [key, field] : {std::pair{"access_log", &log.access_log}, {"audit_log", &log.audit_log}}) {
    if (!node[key]) continue;
    *field = l.scalar(node[key], std::string("log.") + key);
    if (field->empty()) l.refuse(node[key], std::string("log.") + key, "must be \"-\", \"off\" or a file path");
  }
  if (node["level"]) {
    log.level = l.scalar(node["level"], "log.level");
    if (log.level != "debug" && log.level != "info" && log.level != "warn" && log.level != "error") {
      l.refuse(node["level"], "log.level", "must be debug, info, warn or error, got '" + log.level + "'");
    }
  }
}

bool is_user_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    if (static_cast<unsigned char>(c) <= ' ' || c == ':' || c == 0x7f) return false;
  }
  return true;
}

bool is_sha256_hex(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Globs are checked by the auth module (glob_error), which reports these lines.
Auth load_auth(const Loader& l, const YAML::Node& node) {
  l.only_keys(node, "auth", {"realm", "htpasswd_file", "tokens", "groups", "anonymous", "rules", "protect_api",
                             "cache_ttl"});
  Auth auth;
  if (node.IsNull()) return auth;
  if (node["realm"]) {
    auth.realm = l.scalar(node["realm"], "auth.realm");
    if (auth.realm.empty() || auth.realm.find_first_of("\"\\\r\n") != std::string::npos) {
      l.refuse(node["realm"], "auth.realm", "must be non-empty, without quotes, backslashes or line breaks");
    }
  }
  if (node["htpasswd_file"]) auth.htpasswd_file = l.readable_file(node["htpasswd_file"], "auth.htpasswd_file");
  if (const YAML::Node tokens = node["tokens"]; tokens && !tokens.IsNull()) {
    if (!tokens.IsSequence()) l.refuse(tokens, "auth.tokens", "must be a list of {user, sha256}");
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::string path = "auth.tokens[" + std::to_string(i) + "]";
      l.only_keys(tokens[i], path, {"user", "sha256"});
      if (!tokens[i].IsMap() || !tokens[i]["user"]) l.refuse(tokens[i], path + ".user", "is required");
      if (!tokens[i]["sha256"]) l.refuse(tokens[i], path + ".sha256", "is required");
      AuthToken token{l.scalar(tokens[i]["user"], path + ".user"), lower(l.scalar(tokens[i]["sha256"], path + ".sha256"))};
      if (!is_user_name(token.user)) l.refuse(tokens[i]["user"], path + ".user", "must be a name without spaces or ':'");
      if (!is_sha256_hex(token.sha256)) {
        // Never echo the value: it may be the token itself, pasted by mistake.
        l.refuse(tokens[i]["sha256"], path + ".sha256",
                 "must be 64 hex digits: the SHA-256 of the token (printf %s TOKEN | sha256sum), never the token");
      }
      auth.tokens.push_back(std::move(token));
    }
  }
  if (const YAML::Node groups = node["groups"]; groups && !groups.IsNull()) {
    if (!groups.IsMap()) l.refuse(groups, "auth.groups", "must be a mapping of group name to a list of users");
    for (auto it = groups.begin(); it != groups.end(); ++it) {
      std::string name = l.scalar(it->first, "auth.groups");
      for (auto& [existing, members] : auth.groups) {
        if (existing == name) l.refuse(it->first, "auth.groups." + name, "duplicate group");
      }
      auth.groups.emplace_back(name, l.list(it->second, "auth.groups." + name));
    }
  }
  if (node["anonymous"]) auth.anonymous = l.located_list(node["anonymous"], "auth.anonymous");
  if (const YAML::Node rules = node["rules"]; rules && !rules.IsNull()) {
    if (!rules.IsSequence()) l.refuse(rules, "auth.rules", "must be a list of {users, groups, repositories}");
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const std::string path = "auth.rules[" + std::to_string(i) + "]";
      l.only_keys(rules[i], path, {"users", "groups", "repositories"});
      if (!rules[i].IsMap()) l.refuse(rules[i], path, "must be a mapping with users/groups and repositories");
      AuthRule rule;
      if (rules[i]["users"]) rule.users = l.list(rules[i]["users"], path + ".users");
      if (rules[i]["groups"]) rule.groups = l.list(rules[i]["groups"], path + ".groups");
      for (auto& group : rule.groups) {
        bool known = false;
        for (auto& [name, members] : auth.groups) known = known || name == group;
        if (!known) l.refuse(rules[i]["groups"], path + ".groups", "names no group in auth.groups: '" + group + "'");
      }
      if (rule.users.empty() && rule.groups.empty()) l.refuse(rules[i], path + ".users", "a rule needs users or groups");
      if (!rules[i]["repositories"]) l.refuse(rules[i], path + ".repositories", "is required");
      rule.repositories = l.located_list(rules[i]["repositories"], path + ".repositories");
      if (rule.repositories.empty()) l.refuse(rules[i]["repositories"], path + ".repositories", "must not be empty");
      auth.rules.push_back(std::move(rule));
    }
  }
  if (node["protect_api"]) auth.protect_api = l.boolean(node["protect_api"], "auth.protect_api");
  if (node["cache_ttl"]) auth.cache_ttl = l.duration(node["cache_ttl"], "auth.cache_ttl");
  if (auth.htpasswd_file.empty() && auth.tokens.empty() && auth.anonymous.empty()) {
    l.refuse(node, "auth", "needs htpasswd_file, tokens or anonymous (without any, nobody could pull)");
  }
  return auth;
}

int hex_digit(char h) {
  if (h >= '0' && h <= '9') return h - '0';
  if (h >= 'a' && h <= 'f') return h - 'a' + 10;
  if (h >= 'A' && h <= 'F') return h - 'A' + 10;
  return -1;
}

// A path segment of a source URL as a file name: percent-decoded, printable, no '/', not hidden.
std::optional<std::string> file_segment(std::string_view encoded) {
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    char c = encoded[i];
    if (c == '%') {
      if (i + 2 >= encoded.size() || hex_digit(encoded[i + 1]) < 0 || hex_digit(encoded[i + 2]) < 0) return std::nullopt;
      c = static_cast<char>(hex_digit(encoded[i + 1]) * 16 + hex_digit(encoded[i + 2]));
      i += 2;
    }
    if (static_cast<unsigned char>(c) < ' ' || c == 0x7f || c == '/' || c == '\\') return std::nullopt;
    out += c;
  }
  if (out.empty() || out.front() == '.' || out.size() > 255) return std::nullopt;
  return out;
}

// Where a source is saved: the last two segments of its path, osv.dev's "<ecosystem>/all.zip"
// ("https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip" -> "Debian/all.zip"), or
// the last one alone when the path has one.
VulnerabilitySource vulnerability_source(const Loader& l, const YAML::Node& node, const std::string& key) {
  VulnerabilitySource source;
  source.url = l.scalar(node, key);
  source.line = node.Mark().is_null() ? 0 : node.Mark().line + 1;
  auto parsed = boost::urls::parse_uri(source.url);
  if (!parsed) l.refuse(node, key, "not a URL: '" + source.url + "'");
  const bool https = parsed->scheme_id() == boost::urls::scheme::https;
  std::string host(parsed->encoded_host_address());
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host.empty()) l.refuse(node, key, "has no host");
  if (!https && !(parsed->scheme_id() == boost::urls::scheme::http && net::is_loopback_host(host))) {
    l.refuse(node, key, "must be https:// (http:// only to a loopback host), got '" + source.url + "'");
  }
  if (parsed->has_userinfo() || parsed->has_fragment()) l.refuse(node, key, "must not carry credentials or a fragment");
  source.tls = https;
  source.host = host;
  source.port = https ? 443 : 80;
  if (parsed->has_port()) {
    auto port = parse_digits(parsed->port(), 5);
    if (!port || *port == 0 || *port > 65535) l.refuse(node, key, "bad port '" + std::string(parsed->port()) + "'");
    source.port = static_cast<std::uint16_t>(*port);
  }
  source.target = std::string(parsed->encoded_path());
  if (parsed->has_query()) source.target += "?" + std::string(parsed->encoded_query());
  std::vector<std::string> segments;
  for (auto segment : parsed->encoded_segments()) {
    auto name = file_segment(std::string_view(segment.data(), segment.size()));
    if (!name) l.refuse(node, key, "the path has a segment that cannot be a file name: '" + std::string(segment) + "'");
    segments.push_back(*name);
  }
  if (segments.empty()) l.refuse(node, key, "names no file (e.g. https://host/Debian/all.zip)");
  const std::string& last = segments.back();
  auto ends = [&](std::string_view suffix) {
    return last.size() > suffix.size() && last.compare(last.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (!ends(".zip") && !ends(".json")) l.refuse(node, key, "must name a .zip or .json file, got '" + last + "'");
  source.file = segments.size() >= 2 ? segments[segments.size() - 2] + "/" + last : last;
  return source;
}

Vulnerabilities load_vulnerabilities(const Loader& l, const YAML::Node& node) {
  l.only_keys(node, "vulnerabilities", {"database", "sources", "max_age"});
  if (node.IsNull() || !node["database"]) l.refuse(node, "vulnerabilities.database", "is required (a directory)");
  Vulnerabilities v;
  v.database = l.scalar(node["database"], "vulnerabilities.database");
  if (v.database.empty()) l.refuse(node["database"], "vulnerabilities.database", "must be a directory path");
  if (const YAML::Node sources = node["sources"]; sources && !sources.IsNull()) {
    if (!sources.IsSequence()) l.refuse(sources, "vulnerabilities.sources", "must be a list of URLs");
    for (std::size_t i = 0; i < sources.size(); ++i) {
      const std::string key = "vulnerabilities.sources[" + std::to_string(i) + "]";
      auto source = vulnerability_source(l, sources[i], key);
      for (const auto& other : v.sources) {
        if (other.file == source.file) l.refuse(sources[i], key, "would be saved as " + source.file + " like an earlier source");
      }
      v.sources.push_back(std::move(source));
    }
  }
  if (node["max_age"]) v.max_age = l.positive_duration(node["max_age"], "vulnerabilities.max_age");
  return v;
}

// An address no webhook may be sent to, whatever else is allowed: link-local (cloud metadata at
// 169.254.169.254) and special-purpose ones (unspecified, multicast, ...). The notifier judges
// resolved names the same way.
bool never_a_webhook(const boost::asio::ip::address& address) {
  const auto address_class = net::classify_address(address);
  return address_class == net::AddressClass::link_local || address_class == net::AddressClass::special;
}

// Messages never repeat the URL: a Slack incoming-webhook URL is itself the credential.
void parse_webhook_url(const Loader& l, const YAML::Node& node, const std::string& key, Webhook& w) {
  w.url = l.scalar(node, key);
  auto parsed = boost::urls::parse_uri(w.url);
  if (!parsed) l.refuse(node, key, "not an absolute http(s) URL");
  auto scheme = parsed->scheme_id();
  if (scheme != boost::urls::scheme::http && scheme != boost::urls::scheme::https) {
    l.refuse(node, key, "scheme must be https, got '" + std::string(parsed->scheme()) + "'");
  }
  if (parsed->has_userinfo()) l.refuse(node, key, "must not carry credentials (use secret_file to sign requests)");
  if (parsed->has_fragment()) l.refuse(node, key, "must not have a fragment");
  w.tls = scheme == boost::urls::scheme::https;
  w.host = std::string(parsed->encoded_host_address());
  if (w.host.empty()) l.refuse(node, key, "has no host");
  if (w.host.find('%') != std::string::npos) l.refuse(node, key, "host must not be percent-encoded");
  boost::system::error_code ec;
  auto literal = boost::asio::ip::make_address(w.host, ec);
  if (!ec && never_a_webhook(literal)) {
    l.refuse(node, key, "host " + w.host + " is a link-local, unspecified or multicast address (never a webhook)");
  }
  // Plain http would send events (and their signature) in the clear; only a receiver on this
  // machine is spared TLS. Upstreams may use http anywhere; webhooks may not.
  if (!w.tls && !net::is_loopback_host(w.host)) {
    l.refuse(node, key, "must be https; plain http is allowed only to a loopback host (127.0.0.1, ::1, localhost)");
  }
  if (parsed->has_port()) {
    auto port = parse_digits(parsed->port(), 5);
    if (!port || *port == 0 || *port > 65535) l.refuse(node, key, "bad port '" + std::string(parsed->port()) + "'");
    w.port = static_cast<std::uint16_t>(*port);
  } else {
    w.port = w.tls ? 443 : 80;
  }
  w.target = std::string(parsed->encoded_path());
  if (w.target.empty()) w.target = "/";
  if (parsed->has_query()) w.target += "?" + std::string(parsed->encoded_query());
}

std::vector<std::string> webhook_events(const Loader& l, const YAML::Node& node, const std::string& key) {
  if (node.IsNull() || (node.IsSequence() && node.size() == 0)) l.refuse(node, key, "must name at least one event");
  auto events = l.list(node, key);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& known = webhook_event_names;
    const std::string item_key = key + "[" + std::to_string(i) + "]";
    if (std::find(std::begin(known), std::end(known), events[i]) == std::end(known)) {
      l.refuse(node[i], item_key,
               "unknown event '" + events[i] + "' (use block, warn, digest_mismatch, policy_reload_failed)");
    }
    if (std::find(out.begin(), out.end(), events[i]) != out.end()) {
      l.refuse(node[i], item_key, "duplicate event '" + events[i] + "'");
    }
    out.push_back(events[i]);
  }
  return out;
}

Webhook load_webhook(const Loader& l, const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) l.refuse(node, path, "must be a mapping with url and events");
  l.only_keys(node, path, {"url", "events", "secret_file", "timeout", "format", "ca_file", "repeat_window"});
  Webhook w;
  w.key = path;
  if (!node["url"]) l.refuse(node, path + ".url", "is required");
  parse_webhook_url(l, node["url"], path + ".url", w);
  if (!node["events"]) l.refuse(node, path + ".events", "is required (block, warn, digest_mismatch, policy_reload_failed)");
  w.events = webhook_events(l, node["events"], path + ".events");
  if (node["secret_file"]) {
    w.secret_file = l.scalar(node["secret_file"], path + ".secret_file");
    if (w.secret_file.empty()) l.refuse(node["secret_file"], path + ".secret_file", "must be a file path");
    w.secret = read_secret(l, node["secret_file"], path + ".secret_file", w.secret_file);
  }
  if (node["ca_file"]) w.ca_file = l.readable_file(node["ca_file"], path + ".ca_file");
  if (node["timeout"]) {
    auto timeout = l.positive_duration(node["timeout"], path + ".timeout");
    if (timeout > std::chrono::minutes(5)) l.refuse(node["timeout"], path + ".timeout", "must be at most 5m");
    w.timeout = timeout;
  }
  if (node["repeat_window"]) {
    auto window = l.duration(node["repeat_window"], path + ".repeat_window");
    if (window > std::chrono::hours(24)) l.refuse(node["repeat_window"], path + ".repeat_window", "must be at most 24h");
    w.repeat_window = window;
  }
  if (node["format"]) {
    auto format = l.scalar(node["format"], path + ".format");
    if (format == "slack") {
      w.format = WebhookFormat::slack;
    } else if (format != "json") {
      l.refuse(node["format"], path + ".format", "must be json or slack, got '" + format + "'");
    }
  }
  return w;
}

Notify load_notify(const Loader& l, const YAML::Node& node) {
  l.only_keys(node, "notify", {"webhooks"});
  Notify notify;
  if (node.IsNull()) return notify;
  const YAML::Node webhooks = node["webhooks"];
  if (!webhooks || webhooks.IsNull()) return notify;
  if (!webhooks.IsSequence()) l.refuse(webhooks, "notify.webhooks", "must be a list of {url, events, ...}");
  for (std::size_t i = 0; i < webhooks.size(); ++i) {
    notify.webhooks.push_back(load_webhook(l, webhooks[i], "notify.webhooks[" + std::to_string(i) + "]"));
  }
  return notify;
}

void load_upstreams(const Loader& l, const YAML::Node& root, Config& config) {
  const YAML::Node upstreams = root["upstreams"];
  if (!upstreams) l.refuse(root, "upstreams", "at least one upstream is required");
  if (!upstreams.IsSequence() || upstreams.size() == 0) l.refuse(upstreams, "upstreams", "must be a non-empty list");
  std::set<std::string> names;
  for (std::size_t i = 0; i < upstreams.size(); ++i) {
    std::string path = "upstreams[" + std::to_string(i) + "]";
    const YAML::Node entry = upstreams[i];
    auto u = load_upstream(l, entry, path);
    if (!names.insert(u.name).second) l.refuse(entry["name"], path + ".name", "duplicate upstream " + u.name);
    config.upstreams.push_back(std::move(u));
  }
}

Config load(const Loader& l, const YAML::Node& root) {
  l.only_keys(root, "", {"server", "storage", "upstreams", "default_upstream", "log", "policy", "auth",
                         "vulnerabilities", "notify"});
  Config config;
  config.source = l.source();
  config.document = std::make_shared<const YAML::Node>(root);
  config.server.instance = host_name();
  if (root["server"]) load_server(l, root["server"], config.server);
  if (root["storage"]) load_storage(l, root["storage"], config.storage);
  if (root["log"]) load_log(l, root["log"], config.log);
  if (root["auth"]) config.auth = load_auth(l, root["auth"]);
  if (root["vulnerabilities"]) config.vulnerabilities = load_vulnerabilities(l, root["vulnerabilities"]);
  if (root["notify"]) config.notify = load_notify(l, root["notify"]);
  if (const YAML::Node policy = root["policy"]; policy && !policy.IsNull()) {
    if (!policy.IsMap()) l.refuse(policy, "policy", "must be a mapping");
    config.policy = std::make_shared<const YAML::Node>(policy);
  }
  load_upstreams(l, root, config);
  if (const YAML::Node name = root["default_upstream"]) {
    // An explicit "" means: names without an upstream prefix are unknown, even with one upstream.
    config.default_upstream = name.IsNull() ? std::string() : l.scalar(name, "default_upstream");
    if (!config.default_upstream.empty() && !config.find_upstream(config.default_upstream)) {
      l.refuse(name, "default_upstream", "names no configured upstream: '" + config.default_upstream + "'");
    }
  } else if (config.upstreams.size() == 1) {
    config.default_upstream = config.upstreams.front().name;
  }
  return config;
}

std::string yaml_error(std::string_view source, const YAML::Exception& e) {
  std::string where(source);
  if (!e.mark.is_null()) where += ":" + std::to_string(e.mark.line + 1);
  return where + ": " + (e.msg.empty() ? std::string(e.what()) : e.msg);
}

// Parses each fractional digit exactly so that "1.5GB" is 1500000000, not a double's neighbour.
std::optional<std::uint64_t> scaled(std::string_view whole, std::string_view fraction, std::uint64_t factor) {
  constexpr auto max = std::numeric_limits<std::uint64_t>::max();
  auto integer = parse_digits(whole, 20);
  if (!integer) return std::nullopt;
  if (whole.size() == 20 && whole > "18446744073709551615") return std::nullopt;
  if (*integer > max / factor) return std::nullopt;
  std::uint64_t value = *integer * factor;
  // factor <= 2^40 and at most 12 fractional digits keep this product inside 128 bits.
  if (fraction.size() > 12) return std::nullopt;
  unsigned __int128 numerator = 0, denominator = 1;
  for (char c : fraction) {
    if (c < '0' || c > '9') return std::nullopt;
    numerator = numerator * 10 + static_cast<unsigned>(c - '0');
    denominator *= 10;
  }
  auto part = (numerator * factor + denominator / 2) / denominator;  // round half up
  if (part > max - value) return std::nullopt;
  return value + static_cast<std::uint64_t>(part);
}

}  // namespace

const Upstream* Config::find_upstream(std::string_view name) const {
  for (const auto& u : upstreams) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

Config defaults() {
  Config config;
  config.server.instance = host_name();
  Upstream hub;
  hub.name = "docker.io";
  hub.url = "https://registry-1.docker.io";
  hub.tls = true;
  hub.host = "registry-1.docker.io";
  hub.port = 443;
  hub.implicit_library = true;
  config.upstreams.push_back(hub);
  config.default_upstream = "docker.io";
  return config;
}

namespace {

// Where the second YAML document of text starts, if there is one. Counts at most two documents:
// yaml-cpp 0.7's LoadAll never returns on some malformed input (a lone ","), where every round
// yields another empty document without consuming anything (found by tests/fuzz/fuzz_config).
std::optional<YAML::Mark> second_document(const std::string& text) {
  // Remembers where each document starts and where the second one's first node is (a
  // refusal names the line of that node, as it would for any other key).
  class Counter final : public YAML::EventHandler {
   public:
    void OnDocumentStart(const YAML::Mark& mark) override {
      ++documents;
      if (documents == 2) second = mark;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
      node(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
      node(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
      node(mark);
    }
    void OnMapEnd() override {}

    int documents = 0;
    YAML::Mark second = YAML::Mark::null_mark();

   private:
    void node(const YAML::Mark& mark) {
      if (documents == 2 && !second_node_seen_) {
        second = mark;
        second_node_seen_ = true;
      }
    }
    bool second_node_seen_ = false;
  };
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  Counter counter;
  while (counter.documents < 2 && parser.HandleNextDocument(counter)) {
  }
  if (counter.documents < 2) return std::nullopt;
  return counter.second;
}

}  // namespace

Result<Config> parse(std::string_view text, std::string_view source) {
  Loader loader(source);
  try {
    const std::string owned(text);
    auto document = YAML::Load(owned);
    if (document.IsNull()) {
      return Error{Errc::config_invalid, std::string(source) + ":1: (top level): the file is empty"};
    }
    if (auto second = second_document(owned)) {
      std::string where(source);
      if (!second->is_null()) where += ":" + std::to_string(second->line + 1);
      return Error{Errc::config_invalid, where + ": (top level): more than one YAML document; use a single one"};
    }
    return load(loader, document);
  } catch (const Refusal& r) {
    return Error{Errc::config_invalid, r.message};
  } catch (const YAML::Exception& e) {
    return Error{Errc::config_invalid, yaml_error(source, e)};
  } catch (const std::exception& e) {
    return Error{Errc::config_invalid, std::string(source) + ": " + e.what()};
  }
}

Result<Config> load_file(const std::string& path) {
  std::string why;
  auto text = read_capped(path, max_config_bytes, why);
  if (!text) return Error{Errc::config_invalid, path + ": cannot read: " + why};
  return parse(*text, path);
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  auto number = text.substr(0, i);
  auto unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  if (number.empty() || number.front() == '.' || std::count(number.begin(), number.end(), '.') > 1) return std::nullopt;
  static const std::pair<std::string_view, std::uint64_t> units[] = {
      {"", 1},           {"B", 1},           {"KB", 1000},          {"MB", 1000000},
      {"GB", 1000000000}, {"TB", 1000000000000}, {"KiB", 1ull << 10}, {"MiB", 1ull << 20},
      {"GiB", 1ull << 30}, {"TiB", 1ull << 40}};
  std::uint64_t scale = 0;
  for (auto& [name, factor] : units) {
    if (unit == name) scale = factor;
  }
  if (scale == 0) return std::nullopt;
  // Exact integer arithmetic: no stod (throws past double's range), no llround (overflows past 2^63).
  auto dot = number.find('.');
  if (dot == std::string_view::npos) return scaled(number, {}, scale);
  if (dot + 1 == number.size()) return std::nullopt;  // "1.GiB": a dot promises digits
  return scaled(number.substr(0, dot), number.substr(dot + 1), scale);
}


}  // namespace ocigate::config
