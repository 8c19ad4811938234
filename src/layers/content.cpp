// File-content parsers for layer scans: users, OS, package databases and credential files.

#include "content.hpp"

#include <algorithm>
#include <array>

#include "ocigate/policy/checks.hpp"

namespace ocigate::layers::content {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string_view unquote(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) s = s.substr(1, s.size() - 2);
  return s;
}

std::string_view base_name(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Calls fn(line) for each line.
template <class Fn>
void lines(std::string_view text, Fn fn) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    fn(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

// "a/b/.aws/credentials" and ".aws/credentials" both end with the component pair.
bool path_ends_with(std::string_view path, std::string_view tail) {
  return path == tail || ends_with(path, std::string("/") + std::string(tail));
}

bool env_file_name(std::string_view name) {
  if (name == ".env") return true;
  if (name.substr(0, 5) != ".env.") return false;
  for (std::string_view sample : {".example", ".sample", ".template", ".dist", ".defaults", ".tmpl"}) {
    if (ends_with(name, sample)) return false;
  }
  return true;
}

SecretFile secret(std::string_view path, std::string kind, std::string evidence) {
  return SecretFile{std::string(path), std::move(kind), std::move(evidence)};
}

// KEY=value / KEY = value / export KEY="value" lines with a credential name and a non-empty value.
std::vector<std::string> credential_assignments(std::string_view text) {
  std::vector<std::string> out;
  lines(text, [&](std::string_view line) {
    line = trim(line);
    if (line.empty() || line.front() == '#' || line.front() == ';' || line.front() == '[') return;
    if (line.substr(0, 7) == "export ") line = trim(line.substr(7));
    auto eq = line.find('=');
    if (eq == std::string_view::npos) return;
    std::string_view name = trim(line.substr(0, eq)), value = unquote(line.substr(eq + 1));
    if (!value.empty() && policy::credential_name(name)) {
      out.push_back(policy::redact(name, value));
    } else if (auto match = policy::find_credential(value)) {
      out.push_back(std::string(name) + ": " + match->kind);
    }
  });
  return out;
}

std::string first_and_count(const std::vector<std::string>& items) {
  std::string out = items.front();
  if (items.size() > 1) out += " and " + std::to_string(items.size() - 1) + " more";
  return out;
}

std::optional<SecretFile> docker_config(std::string_view path, std::string_view text) {
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  auto auths = json.find("auths");
  if (auths == json.end() || !auths->is_object()) return std::nullopt;
  for (const auto& [registry, entry] : auths->items()) {
    if (!entry.is_object()) continue;
    for (const char* key : {"auth", "password", "identitytoken", "registrytoken"}) {
      auto it = entry.find(key);
      if (it != entry.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
        return secret(path, "Docker registry credentials", "auths[\"" + registry + "\"]." + key);
      }
    }
  }
  return std::nullopt;
}

std::optional<SecretFile> npmrc(std::string_view path, std::string_view text) {
  std::optional<SecretFile> found;
  lines(text, [&](std::string_view line) {
    line = trim(line);
    auto eq = line.find('=');
    if (found || eq == std::string_view::npos || line.front() == '#' || line.front() == ';') return;
    std::string_view key = trim(line.substr(0, eq)), value = unquote(line.substr(eq + 1));
    bool token = ends_with(key, "_authToken") || ends_with(key, "_auth") || ends_with(key, "_password");
    if (token && !value.empty() && value.front() != '$') found = secret(path, "npm registry token", policy::redact(key, value));
  });
  return found;
}

std::optional<SecretFile> git_credentials(std::string_view path, std::string_view text) {
  std::size_t count = 0;
  lines(text, [&](std::string_view line) {
    auto scheme = line.find("://");
    if (scheme != std::string_view::npos && line.find('@', scheme) != std::string_view::npos) ++count;
  });
  if (count == 0) return std::nullopt;
  return secret(path, "git credentials", std::to_string(count) + " credential URL(s)");
}

bool base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
         c == '=' || c == '\n' || c == '\r';
}

}  // namespace

Kind kind_of(std::string_view path) {
  if (path == "etc/passwd") return Kind::passwd;
  if (path == "etc/os-release" || path == "usr/lib/os-release") return Kind::os_release;
  if (path == "lib/apk/db/installed") return Kind::apk_db;
  if (path == "var/lib/dpkg/status") return Kind::dpkg_status;
  if (path == "var/lib/rpm/rpmdb.sqlite" || path == "usr/lib/sysimage/rpm/rpmdb.sqlite") return Kind::rpm_db;
  constexpr std::string_view status_d = "var/lib/dpkg/status.d/";
  if (path.substr(0, status_d.size()) == status_d && path.size() > status_d.size() &&
      path.find('/', status_d.size()) == std::string_view::npos && !ends_with(path, ".md5sums")) {
    return Kind::dpkg_status;
  }
  std::string_view name = base_name(path);
  if (env_file_name(name)) return Kind::env_file;
  if (path_ends_with(path, ".aws/credentials")) return Kind::aws_credentials;
  if (path_ends_with(path, ".docker/config.json")) return Kind::docker_config;
  if (name == ".npmrc") return Kind::npmrc;
  if (name == ".git-credentials") return Kind::git_credentials;
  if (name == "id_rsa" || name == "id_dsa" || name == "id_ecdsa" || name == "id_ed25519") return Kind::ssh_key;
  return Kind::generic;
}

bool known_name(Kind kind) { return kind != Kind::none && kind != Kind::generic; }

std::optional<std::string> installer(std::string_view path) {
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view dir = path.substr(0, slash), name = path.substr(slash + 1);
  static constexpr std::array<std::string_view, 6> dirs = {"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin",
                                                           "usr/local/sbin"};
  if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) return std::nullopt;
  static constexpr std::array<std::string_view, 16> names = {
      "apk", "apt", "apt-get", "aptitude", "dpkg", "yum", "dnf", "microdnf", "tdnf", "rpm", "zypper", "pacman",
      "pip", "pip2", "pip3", "easy_install"};
  if (std::find(names.begin(), names.end(), name) != names.end()) return std::string(name);
  // pip3.11, pip3.12, ...
  if (name.size() > 5 && name.substr(0, 5) == "pip3.") {
    bool digits = true;
    for (char c : name.substr(5)) digits = digits && c >= '0' && c <= '9';
    if (digits) return std::string(name);
  }
  return std::nullopt;
}

Passwd parse_passwd(std::string_view text) {
  Passwd passwd;
  lines(text, [&](std::string_view line) {
    if (passwd.users.size() >= 10000 || line.empty() || line.front() == '#') return;
    // name:password:uid:gid:gecos:home:shell
    auto c1 = line.find(':');
    if (c1 == std::string_view::npos || c1 == 0) return;
    auto c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return;
    auto c3 = line.find(':', c2 + 1);
    std::string_view uid = line.substr(c2 + 1, c3 == std::string_view::npos ? std::string_view::npos : c3 - c2 - 1);
    if (uid.empty() || uid.size() > 10) return;
    long long value = 0;
    for (char c : uid) {
      if (c < '0' || c > '9') return;
      value = value * 10 + (c - '0');
    }
    passwd.users.emplace(std::string(line.substr(0, c1)), value);
  });
  return passwd;
}

OsRelease parse_os_release(std::string_view text) {
  OsRelease os;
  lines(text, [&](std::string_view line) {
    auto eq = line.find('=');
    if (eq == std::string_view::npos) return;
    std::string_view key = trim(line.substr(0, eq)), value = unquote(line.substr(eq + 1));
    if (value.size() > 200) value = value.substr(0, 200);
    if (key == "ID") os.id = value;
    if (key == "VERSION_ID") os.version_id = value;
    if (key == "PRETTY_NAME") os.pretty_name = value;
  });
  return os;
}

std::vector<policy::Package> parse_apk(std::string_view text) {
  std::vector<policy::Package> out;
  policy::Package current("", "", "apk");
  std::string origin;
  auto flush = [&] {
    if (origin != current.name) current.source = origin;  // "" means the package is its own origin
    if (!current.name.empty()) out.push_back(current);
    current = policy::Package("", "", "apk");
    origin.clear();
  };
  lines(text, [&](std::string_view line) {
    if (trim(line).empty()) return flush();
    if (line.substr(0, 2) == "P:") current.name = line.substr(2);
    if (line.substr(0, 2) == "V:") current.version = line.substr(2);
    if (line.substr(0, 2) == "o:") origin = line.substr(2);
  });
  flush();
  return out;
}

namespace {

// "Source: glibc (2.36-9+deb12u4)" -> source "glibc", source version "2.36-9+deb12u4"; the
// version is only written when it differs from the binary's (binNMUs, +b1).
void read_source(std::string_view value, policy::Package& p) {
  auto paren = value.find('(');
  p.source = trim(value.substr(0, paren));
  if (paren == std::string_view::npos) return;
  auto close = value.find(')', paren);
  if (close != std::string_view::npos) p.source_version = trim(value.substr(paren + 1, close - paren - 1));
}

}  // namespace

std::vector<policy::Package> parse_dpkg(std::string_view text) {
  std::vector<policy::Package> out;
  policy::Package current("", "", "dpkg");
  bool installed = true;  // distroless status.d paragraphs carry no Status
  auto flush = [&] {
    if (current.source == current.name) current.source.clear();
    if (current.source_version == current.version) current.source_version.clear();
    if (!current.name.empty() && installed) out.push_back(current);
    current = policy::Package("", "", "dpkg");
    installed = true;
  };
  lines(text, [&](std::string_view line) {
    if (trim(line).empty()) return flush();
    if (line.front() == ' ' || line.front() == '\t') return;  // continuation of a multi-line field
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string_view key = line.substr(0, colon), value = trim(line.substr(colon + 1));
    if (key == "Package") current.name = value;
    if (key == "Version") current.version = value;
    if (key == "Source") read_source(value, current);
    // "install ok installed"; removed packages leave "deinstall ok config-files".
    if (key == "Status") installed = ends_with(value, " installed");
  });
  flush();
  return out;
}

std::optional<std::string> private_key(std::string_view text) {
  std::size_t at = 0;
  while ((at = text.find("-----BEGIN ", at)) != std::string_view::npos) {
    std::size_t label_start = at + 11;
    std::size_t label_end = text.find("-----", label_start);
    at = label_start;
    if (label_end == std::string_view::npos || label_end - label_start > 40) continue;
    std::string_view label = text.substr(label_start, label_end - label_start);
    if (label.find("PRIVATE KEY") == std::string_view::npos) continue;
    std::string_view body = text.substr(label_end + 5, 80);
    while (!body.empty() && (body.front() == '\n' || body.front() == '\r')) body.remove_prefix(1);
    // Legacy encrypted PEM has headers (Proc-Type, DEK-Info) before the base64.
    bool headers = body.substr(0, 10) == "Proc-Type:";
    std::size_t run = 0;
    while (run < body.size() && base64_char(body[run])) ++run;
    if (headers || run >= 40) return std::string(label);
  }
  return std::nullopt;
}

std::vector<SecretFile> secrets(Kind kind, std::string_view path, std::string_view text) {
  std::vector<SecretFile> out;
  std::string shown(path);
  auto add = [&](std::optional<SecretFile> f) {
    if (f) out.push_back(std::move(*f));
  };
  switch (kind) {
    case Kind::ssh_key:
      out.push_back(secret(shown, "SSH private key", "file " + std::string(base_name(path))));
      return out;
    case Kind::env_file: {
      auto found = credential_assignments(text);
      if (!found.empty()) out.push_back(secret(shown, ".env credentials", first_and_count(found)));
      break;
    }
    case Kind::aws_credentials: {
      auto found = credential_assignments(text);
      if (!found.empty()) out.push_back(secret(shown, "AWS credentials file", first_and_count(found)));
      break;
    }
    case Kind::docker_config: add(docker_config(shown, text)); break;
    case Kind::npmrc: add(npmrc(shown, text)); break;
    case Kind::git_credentials: add(git_credentials(shown, text)); break;
    default: break;
  }
  if (out.empty()) {
    if (auto label = private_key(text)) out.push_back(secret(shown, "private key", "-----BEGIN " + *label + "-----"));
  }
  return out;
}

}  // namespace ocigate::layers::content
