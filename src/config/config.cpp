#include "ocigate/config/config.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <boost/url/parse.hpp>

namespace ocigate::config {

namespace {

// Thrown only while loading (never on the data path); parse() turns it into a Result.
struct Refusal {
  std::string message;
};

class Loader {
 public:
  explicit Loader(std::string_view source) : source_(source) {}

  [[noreturn]] void refuse(const YAML::Node& node, const std::string& key, const std::string& why) const {
    std::string where = source_;
    if (node.IsDefined() && node.Mark().line >= 0) where += ":" + std::to_string(node.Mark().line + 1);
    throw Refusal{where + ": " + key + ": " + why};
  }

  void only_keys(const YAML::Node& map, const std::string& path, std::initializer_list<std::string_view> known) const {
    if (!map.IsMap()) refuse(map, path.empty() ? "(top level)" : path, "must be a mapping");
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string key = it->first.Scalar();
      bool found = false;
      for (auto k : known) found = found || k == key;
      if (found) continue;
      std::string hint;
      for (auto k : known) {
        if (distance(key, k) <= 2) hint = " (did you mean " + std::string(k) + "?)";
      }
      refuse(it->first, join(path, key), "unknown key" + hint);
    }
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) refuse(node, key, "must be a single value");
    return node.Scalar();
  }

  std::uint64_t unsigned_int(const YAML::Node& node, const std::string& key, std::uint64_t max) const {
    auto text = scalar(node, key);
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 19) {
      refuse(node, key, "must be a whole number, got '" + text + "'");
    }
    auto value = std::stoull(text);
    if (value > max) refuse(node, key, "must be at most " + std::to_string(max));
    return value;
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
    if (!value) refuse(node, key, "bad duration '" + text + "' (use e.g. 30s, 5m, 1h30m)");
    return *value;
  }

  bool boolean(const YAML::Node& node, const std::string& key) const {
    auto text = scalar(node, key);
    if (text == "true" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "no" || text == "off") return false;
    refuse(node, key, "must be true or false, got '" + text + "'");
  }

  Endpoint endpoint(const YAML::Node& node, const std::string& key) const {
    auto text = scalar(node, key);
    std::string host, port;
    if (!text.empty() && text.front() == '[') {
      auto close = text.find(']');
      if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
        refuse(node, key, "must be host:port, IPv6 as [::1]:5000");
      }
      host = text.substr(1, close - 1);
      port = text.substr(close + 2);
    } else {
      auto colon = text.rfind(':');
      if (colon == std::string::npos || text.find(':') != colon) refuse(node, key, "must be host:port");
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
    }
    if (host.empty()) refuse(node, key, "host is empty (use 0.0.0.0 for every address)");
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
        std::stoul(port) > 65535) {
      refuse(node, key, "port must be 0..65535, got '" + port + "'");
    }
    return Endpoint{host, static_cast<std::uint16_t>(std::stoul(port))};
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  const std::string& source() const { return source_; }

 private:
  static std::size_t distance(std::string_view a, std::string_view b) {
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

  std::string source_;
};

void load_server(const Loader& l, const YAML::Node& node, Server& s) {
  l.only_keys(node, "server", {"listen", "metrics_listen", "threads", "max_header_bytes", "header_timeout",
                               "idle_timeout", "shutdown_grace", "malformed_per_minute"});
  if (node["listen"]) s.listen = l.endpoint(node["listen"], "server.listen");
  if (node["metrics_listen"]) s.metrics_listen = l.endpoint(node["metrics_listen"], "server.metrics_listen");
  if (node["threads"]) s.threads = static_cast<unsigned>(l.unsigned_int(node["threads"], "server.threads", 256));
  if (node["max_header_bytes"]) {
    s.max_header_bytes = l.size(node["max_header_bytes"], "server.max_header_bytes");
    if (s.max_header_bytes < 1024 || s.max_header_bytes > (1u << 20)) {
      l.refuse(node["max_header_bytes"], "server.max_header_bytes", "must be between 1KiB and 1MiB");
    }
  }
  if (node["header_timeout"]) s.header_timeout = l.duration(node["header_timeout"], "server.header_timeout");
  if (node["idle_timeout"]) s.idle_timeout = l.duration(node["idle_timeout"], "server.idle_timeout");
  if (node["shutdown_grace"]) s.shutdown_grace = l.duration(node["shutdown_grace"], "server.shutdown_grace");
  if (node["malformed_per_minute"]) {
    s.malformed_per_minute =
        static_cast<unsigned>(l.unsigned_int(node["malformed_per_minute"], "server.malformed_per_minute", 1000000));
  }
  if (s.header_timeout.count() == 0) l.refuse(node["header_timeout"], "server.header_timeout", "must not be 0");
  if (s.idle_timeout.count() == 0) l.refuse(node["idle_timeout"], "server.idle_timeout", "must not be 0");
}

void load_storage(const Loader& l, const YAML::Node& node, Storage& s) {
  l.only_keys(node, "storage", {"path", "max_size", "chunk_size"});
  if (node["path"]) s.path = l.scalar(node["path"], "storage.path");
  if (s.path.empty()) l.refuse(node["path"], "storage.path", "must not be empty");
  if (node["max_size"]) s.max_size = l.size(node["max_size"], "storage.max_size");
  if (node["chunk_size"]) {
    auto chunk = l.size(node["chunk_size"], "storage.chunk_size");
    if (chunk < (64u << 10) || chunk > (16u << 20)) {
      l.refuse(node["chunk_size"], "storage.chunk_size", "must be between 64KiB and 16MiB");
    }
    s.chunk_size = static_cast<std::uint32_t>(chunk);
  }
}

bool valid_upstream_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':')) return false;
  }
  return name.front() != '.' && name.front() != '-' && name.front() != ':';
}

void parse_url(const Loader& l, const YAML::Node& node, const std::string& key, Upstream& u) {
  u.url = l.scalar(node, key);
  auto parsed = boost::urls::parse_absolute_uri(u.url);
  if (!parsed) l.refuse(node, key, "not a URL: '" + u.url + "'");
  auto scheme = std::string(parsed->scheme());
  if (scheme != "http" && scheme != "https") l.refuse(node, key, "scheme must be http or https");
  if (parsed->has_userinfo()) l.refuse(node, key, "credentials belong in username/password_file, not the URL");
  if (parsed->has_query() || parsed->has_fragment()) l.refuse(node, key, "must not have a query or fragment");
  u.tls = scheme == "https";
  u.host = std::string(parsed->host());
  if (!u.host.empty() && u.host.front() == '[' && u.host.back() == ']') u.host = u.host.substr(1, u.host.size() - 2);
  if (u.host.empty()) l.refuse(node, key, "has no host");
  if (parsed->has_port()) {
    auto port = std::string(parsed->port());
    if (port.empty() || port.size() > 5 || std::stoul(port) == 0 || std::stoul(port) > 65535) {
      l.refuse(node, key, "bad port '" + port + "'");
    }
    u.port = static_cast<std::uint16_t>(std::stoul(port));
  } else {
    u.port = u.tls ? 443 : 80;
  }
  u.base_path = std::string(parsed->encoded_path());
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
}

std::string read_secret(const Loader& l, const YAML::Node& node, const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) l.refuse(node, key, "cannot read " + path + ": " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string secret = buffer.str();
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.empty()) l.refuse(node, key, path + " is empty");
  return secret;
}

Upstream load_upstream(const Loader& l, const YAML::Node& node, const std::string& path) {
  l.only_keys(node, path, {"name", "url", "username", "password_file", "ca_file", "tag_ttl", "connect_timeout",
                           "response_timeout", "idle_timeout", "max_connections", "implicit_library"});
  Upstream u;
  if (!node["name"]) l.refuse(node, path + ".name", "is required");
  u.name = l.scalar(node["name"], path + ".name");
  if (!valid_upstream_name(u.name)) {
    l.refuse(node["name"], path + ".name", "must be a registry host name like docker.io or localhost:5001 (no '/')");
  }
  if (!node["url"]) l.refuse(node, path + ".url", "is required");
  parse_url(l, node["url"], path + ".url", u);
  u.implicit_library = u.name == "docker.io";
  if (node["username"]) u.username = l.scalar(node["username"], path + ".username");
  if (node["password_file"]) u.password_file = l.scalar(node["password_file"], path + ".password_file");
  if (!u.username.empty() && u.password_file.empty()) {
    l.refuse(node["username"], path + ".password_file", "is required with username");
  }
  if (u.username.empty() && !u.password_file.empty()) {
    l.refuse(node["password_file"], path + ".username", "is required with password_file");
  }
  if (!u.password_file.empty()) u.password = read_secret(l, node["password_file"], path + ".password_file", u.password_file);
  if (node["ca_file"]) {
    u.ca_file = l.scalar(node["ca_file"], path + ".ca_file");
    std::ifstream ca(u.ca_file);
    if (!ca) l.refuse(node["ca_file"], path + ".ca_file", "cannot read " + u.ca_file + ": " + std::strerror(errno));
  }
  if (node["tag_ttl"]) u.tag_ttl = l.duration(node["tag_ttl"], path + ".tag_ttl");
  if (node["connect_timeout"]) u.connect_timeout = l.duration(node["connect_timeout"], path + ".connect_timeout");
  if (node["response_timeout"]) u.response_timeout = l.duration(node["response_timeout"], path + ".response_timeout");
  if (node["idle_timeout"]) u.idle_timeout = l.duration(node["idle_timeout"], path + ".idle_timeout");
  for (auto [value, key] : {std::pair{u.connect_timeout, "connect_timeout"}, {u.response_timeout, "response_timeout"},
                            {u.idle_timeout, "idle_timeout"}}) {
    if (value.count() == 0) l.refuse(node[key], path + "." + key, "must not be 0");
  }
  if (node["max_connections"]) {
    u.max_connections = static_cast<unsigned>(l.unsigned_int(node["max_connections"], path + ".max_connections", 4096));
  }
  if (node["implicit_library"]) u.implicit_library = l.boolean(node["implicit_library"], path + ".implicit_library");
  return u;
}

void load_log(const Loader& l, const YAML::Node& node, Log& log) {
  l.only_keys(node, "log", {"access_log", "level"});
  if (node["access_log"]) log.access_log = l.scalar(node["access_log"], "log.access_log");
  if (node["level"]) {
    log.level = l.scalar(node["level"], "log.level");
    if (log.level != "debug" && log.level != "info" && log.level != "warn" && log.level != "error") {
      l.refuse(node["level"], "log.level", "must be debug, info, warn or error");
    }
  }
}

Config load(const Loader& l, const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) throw Refusal{l.source() + ": the file is empty"};
  l.only_keys(root, "", {"server", "storage", "upstreams", "default_upstream", "log", "policy"});
  Config config;
  config.source = l.source();
  if (root["server"]) load_server(l, root["server"], config.server);
  if (root["storage"]) load_storage(l, root["storage"], config.storage);
  if (root["log"]) load_log(l, root["log"], config.log);
  if (root["policy"]) config.policy = root["policy"];
  auto upstreams = root["upstreams"];
  if (!upstreams) throw Refusal{l.source() + ": upstreams: at least one upstream is required"};
  if (!upstreams.IsSequence() || upstreams.size() == 0) l.refuse(upstreams, "upstreams", "must be a non-empty list");
  std::set<std::string> names;
  for (std::size_t i = 0; i < upstreams.size(); ++i) {
    std::string path = "upstreams[" + std::to_string(i) + "]";
    auto u = load_upstream(l, upstreams[i], path);
    if (!names.insert(u.name).second) l.refuse(upstreams[i]["name"], path + ".name", "duplicate upstream " + u.name);
    config.upstreams.push_back(std::move(u));
  }
  if (root["default_upstream"]) {
    config.default_upstream = l.scalar(root["default_upstream"], "default_upstream");
    if (!config.find_upstream(config.default_upstream)) {
      l.refuse(root["default_upstream"], "default_upstream", "names no configured upstream: " + config.default_upstream);
    }
  } else if (config.upstreams.size() == 1) {
    config.default_upstream = config.upstreams.front().name;
  }
  return config;
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
  Upstream hub;
  hub.name = "docker.io";
  hub.url = "https://registry-1.docker.io";
  hub.host = "registry-1.docker.io";
  hub.implicit_library = true;
  config.upstreams.push_back(hub);
  config.default_upstream = "docker.io";
  return config;
}

Result<Config> parse(std::string_view text, std::string_view source) {
  Loader loader(source);
  try {
    YAML::Node root = YAML::Load(std::string(text));
    return load(loader, root);
  } catch (const Refusal& r) {
    return Error{Errc::config_invalid, r.message};
  } catch (const YAML::Exception& e) {
    return Error{Errc::config_invalid, std::string(source) + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
}

Result<Config> load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{Errc::config_invalid, path + ": cannot read: " + std::strerror(errno)};
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse(buffer.str(), path);
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  auto number = text.substr(0, i);
  auto unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  if (number.empty() || number.front() == '.' || std::count(number.begin(), number.end(), '.') > 1) return std::nullopt;
  double scale = 0;
  static const std::pair<std::string_view, double> units[] = {
      {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
      {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
  for (auto& [name, factor] : units) {
    if (unit == name) scale = factor;
  }
  if (scale == 0) return std::nullopt;
  double value = std::stod(std::string(number)) * scale;
  if (!std::isfinite(value) || value >= 1.8e19) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(value));
}

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    std::uint64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (n > 1000000000ull) return std::nullopt;
      n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
      ++i;
    }
    if (i == start || i == text.size()) return std::nullopt;  // no digits, or a bare number
    std::uint64_t factor = 0;
    switch (text[i]) {
      case 's': factor = 1; break;
      case 'm': factor = 60; break;
      case 'h': factor = 3600; break;
      case 'd': factor = 86400; break;
      default: return std::nullopt;
    }
    ++i;
    total += n * factor;
    if (total > 100ull * 365 * 86400) return std::nullopt;
  }
  return std::chrono::seconds(total);
}

}  // namespace ocigate::config
