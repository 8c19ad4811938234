// Plain scanners for credentials and package-index updates. No std::regex: inputs are
// attacker-shaped (image configs, history), so linear loops with bounded look-ahead only.

#include <array>

#include "ocigate/policy/checks.hpp"
#include "text.hpp"

namespace ocigate::policy {

namespace {

using text::is_alnum;
using text::is_digit;
using text::is_upper;
using text::starts_with;

bool b64url(char c) { return is_alnum(c) || c == '_' || c == '-'; }
bool alnum_underscore(char c) { return is_alnum(c) || c == '_'; }
bool alnum_dash(char c) { return is_alnum(c) || c == '-'; }
bool upper_digit(char c) { return is_upper(c) || is_digit(c); }

// Length of the run of `ok` characters at s[pos...], counting at most `cap`.
template <class Pred>
std::size_t run(std::string_view s, std::size_t pos, Pred ok, std::size_t cap = 4096) {
  std::size_t n = 0;
  while (pos + n < s.size() && n < cap && ok(s[pos + n])) ++n;
  return n;
}

struct Prefixed {
  std::string_view prefix;
  std::string_view kind;
  bool (*charset)(char);
  std::size_t min_length;  // of the part after the prefix
};

// Tokens recognised by a fixed prefix and a body of a known charset and minimum length.
constexpr std::array<Prefixed, 13> prefixed = {{
    {"ghp_", "GitHub token", is_alnum, 36},
    {"gho_", "GitHub token", is_alnum, 36},
    {"ghu_", "GitHub token", is_alnum, 36},
    {"ghs_", "GitHub token", is_alnum, 36},
    {"ghr_", "GitHub token", is_alnum, 36},
    {"github_pat_", "GitHub token", alnum_underscore, 22},
    {"glpat-", "GitLab token", b64url, 20},
    {"AIza", "Google API key", b64url, 35},
    {"dckr_pat_", "Docker Hub token", b64url, 20},
    {"npm_", "npm token", is_alnum, 36},
    {"sk_live_", "Stripe secret key", is_alnum, 16},
    {"xoxb-", "Slack token", alnum_dash, 10},
    {"xoxp-", "Slack token", alnum_dash, 10},
}};
constexpr std::array<std::string_view, 3> more_slack = {"xoxa-", "xoxr-", "xoxs-"};

std::optional<SecretMatch> match_at(std::string_view s, std::size_t i) {
  // AWS access key ids: AKIA/ASIA + exactly 16 upper-case letters or digits.
  if (starts_with(s.substr(i), "AKIA") || starts_with(s.substr(i), "ASIA")) {
    std::size_t n = run(s, i + 4, upper_digit, 17);
    if (n == 16 && (i + 20 >= s.size() || !is_alnum(s[i + 20]))) return SecretMatch{"AWS access key id", std::string(s.substr(i, 20))};
  }
  if (starts_with(s.substr(i), "-----BEGIN ")) {
    std::size_t start = i + 11;
    std::size_t n = run(s, start, [](char c) { return is_upper(c) || c == ' '; }, 64);
    std::string_view label = s.substr(start, n);
    // "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "PGP PRIVATE KEY BLOCK", ...
    if (label.find("PRIVATE KEY") != std::string_view::npos && starts_with(s.substr(start + n), "-----")) {
      return SecretMatch{"private key", std::string(s.substr(i, 11 + n + 5))};
    }
  }
  for (const auto& p : prefixed) {
    if (!starts_with(s.substr(i), p.prefix)) continue;
    std::size_t n = run(s, i + p.prefix.size(), p.charset, 256);
    if (n >= p.min_length) return SecretMatch{std::string(p.kind), std::string(s.substr(i, p.prefix.size() + n))};
  }
  for (auto prefix : more_slack) {
    if (!starts_with(s.substr(i), prefix)) continue;
    std::size_t n = run(s, i + prefix.size(), alnum_dash, 256);
    if (n >= 10) return SecretMatch{"Slack token", std::string(s.substr(i, prefix.size() + n))};
  }
  // JWT: eyJ<b64url>.eyJ<b64url>.<b64url>
  if (starts_with(s.substr(i), "eyJ")) {
    std::size_t a = run(s, i + 3, b64url);
    std::size_t dot1 = i + 3 + a;
    if (a > 0 && dot1 < s.size() && s[dot1] == '.' && starts_with(s.substr(dot1 + 1), "eyJ")) {
      std::size_t b = run(s, dot1 + 4, b64url);
      std::size_t dot2 = dot1 + 4 + b;
      if (b > 0 && dot2 < s.size() && s[dot2] == '.') {
        std::size_t c = run(s, dot2 + 1, b64url);
        if (c > 0) return SecretMatch{"JSON web token", std::string(s.substr(i, dot2 + 1 + c - i))};
      }
    }
  }
  return std::nullopt;
}

// Letters that may start a token; anything else is skipped cheaply.
bool token_start(char c) { return c == 'A' || c == '-' || c == 'g' || c == 'x' || c == 'd' || c == 'n' || c == 's' || c == 'e'; }

// The first credential at or after `from`, and where it starts.
std::optional<std::pair<std::size_t, SecretMatch>> next_credential(std::string_view s, std::size_t from) {
  for (std::size_t i = from; i < s.size(); ++i) {
    if (!token_start(s[i])) continue;
    // A token starts a word: "MONKEYAKIA..." is not an access key id.
    if (i > 0 && s[i] != '-' && alnum_underscore(s[i - 1])) continue;
    if (auto match = match_at(s, i)) return std::pair{i, std::move(*match)};
  }
  return std::nullopt;
}

// Keeps at most the first 4 characters (half of a short one), then an ellipsis.
std::string redacted_prefix(std::string_view value) {
  std::size_t shown = std::min<std::size_t>(4, value.size() / 2);
  // Never cut inside a UTF-8 sequence.
  while (shown > 0 && (static_cast<unsigned char>(value[shown]) & 0xC0) == 0x80) --shown;
  return std::string(value.substr(0, shown)) + "\u2026";
}

// "scheme://user:password@host" -> the position and length of "password", or nullopt.
std::optional<std::pair<std::size_t, std::size_t>> url_password(std::string_view s, std::size_t from) {
  for (std::size_t scheme = s.find("://", from); scheme != std::string_view::npos; scheme = s.find("://", scheme + 3)) {
    std::size_t start = scheme + 3;
    std::size_t end = start;
    while (end < s.size() && !text::is_space(s[end]) && s[end] != '/' && s[end] != '@' && s[end] != '"' &&
           s[end] != '\'' && end - start < 1024) {
      ++end;
    }
    if (end >= s.size() || s[end] != '@') continue;
    std::size_t colon = s.find(':', start);
    if (colon == std::string_view::npos || colon >= end || colon + 1 == end) continue;
    if (s[colon + 1] == '$') continue;  // `https://u:${TOKEN}@host` in a RUN: a reference, not a secret
    return std::pair{colon + 1, end - colon - 1};
  }
  return std::nullopt;
}

}  // namespace

std::optional<SecretMatch> find_credential(std::string_view s) {
  if (auto found = next_credential(s, 0)) return std::move(found->second);
  if (auto password = url_password(s, 0)) {
    return SecretMatch{"URL password", std::string(s.substr(password->first, password->second))};
  }
  return std::nullopt;
}

std::string redact_credentials(std::string_view s) {
  std::string out;
  std::size_t pos = 0;
  while (auto found = next_credential(s, pos)) {
    out.append(s.substr(pos, found->first - pos));
    out += redacted_prefix(found->second.token);
    pos = found->first + found->second.token.size();
  }
  out.append(s.substr(pos));
  // URL passwords are not a known token format but are secrets all the same.
  std::string result;
  std::size_t at = 0;
  while (auto password = url_password(out, at)) {
    result.append(out, at, password->first - at);
    result += redacted_prefix(std::string_view(out).substr(password->first, password->second));
    at = password->first + password->second;
  }
  result.append(out, at, std::string::npos);
  return result;
}

namespace {

// "db_Password", "dbPassword", "DB-PASSWORD" -> DB, PASSWORD. Word boundaries are '_', '-', '.'
// and a lower-to-upper case change, so camelCase names split like snake_case ones.
std::vector<std::string> name_parts(std::string_view name) {
  std::vector<std::string> parts;
  std::string current;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool boundary = c == '_' || c == '-' || c == '.';
    if (!boundary && i > 0 && is_upper(c) && text::is_lower(name[i - 1])) {
      if (!current.empty()) parts.push_back(current);
      current.clear();
    }
    if (boundary) {
      if (!current.empty()) parts.push_back(current);
      current.clear();
    } else {
      current += text::is_lower(c) ? static_cast<char>(c - 'a' + 'A') : c;
    }
  }
  if (!current.empty()) parts.push_back(current);
  return parts;
}

bool contains_run(const std::vector<std::string>& parts, const std::vector<std::string>& run) {
  if (run.empty() || run.size() > parts.size()) return false;
  for (std::size_t i = 0; i + run.size() <= parts.size(); ++i) {
    bool all = true;
    for (std::size_t k = 0; all && k < run.size(); ++k) all = parts[i + k] == run[k];
    if (all) return true;
  }
  return false;
}

}  // namespace

bool credential_name(std::string_view name) { return credential_name(name, {}); }

bool credential_name(std::string_view name, const std::vector<std::string>& extra_names) {
  std::string upper = text::upper(name);
  if (upper == "GPG_KEY" || upper == "GPG_KEYS" || upper == "PWD") return false;  // PWD: the shell's cwd
  std::vector<std::string> parts = name_parts(name);
  if (parts.empty()) return false;
  // The operator's own names win over the safe-name rules below.
  for (const auto& extra : extra_names) {
    if (contains_run(parts, name_parts(extra))) return true;
  }
  // Names that point at a secret or describe one are not the secret.
  for (std::string_view safe_suffix : {"URL", "URI", "FILE", "PATH", "DIR", "SHA256", "SHA512", "VERSION", "TYPE",
                                       "METHOD", "MODE", "ENABLED", "DISABLED", "HOST", "PORT", "ENDPOINT", "NAME",
                                       "USER", "USERNAME", "LENGTH", "TTL", "TIMEOUT"}) {
    if (parts.back() == safe_suffix) return false;
  }
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] == "PUBLIC" && parts[i + 1] == "KEY") return false;
  }
  for (const auto& part : parts) {
    for (std::string_view word : {"PASSWORD", "PASSWORDS", "PASSWD", "PASS", "PWD", "SECRET", "SECRETS", "TOKEN",
                                  "TOKENS", "APIKEY", "ACCESSKEY", "PRIVATEKEY", "CREDENTIAL", "CREDENTIALS", "AUTH"}) {
      if (part == word) return true;
    }
  }
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i + 1] != "KEY") continue;
    for (std::string_view kind : {"API", "ACCESS", "PRIVATE", "SECRET", "ENCRYPTION", "SIGNING", "MASTER", "LICENSE"}) {
      if (parts[i] == kind) return true;
    }
  }
  return false;
}

std::string redact(std::string_view name, std::string_view value) {
  return std::string(name) + "=" + redacted_prefix(value);
}

namespace {

enum class PackageStep { none, index_update, install };

// Options that take a separate argument, so "-o Foo=bar install" finds "install".
bool option_with_argument(std::string_view manager, std::string_view opt) {
  if (manager == "apt-get" || manager == "apt" || manager == "aptitude") return opt == "-o" || opt == "-c" || opt == "-t";
  if (manager == "apk") return opt == "-X" || opt == "--repository" || opt == "-p" || opt == "--root" || opt == "--arch";
  return opt == "-c" || opt == "-d" || opt == "-e" || opt == "-R" || opt == "--installroot" || opt == "--releasever";
}

// What one simple command does to the package index (the documented semantics of no-update-alone):
//   index update: apt-get|apt|aptitude update; apk update; yum|dnf|microdnf|tdnf makecache|check-update;
//                 zypper refresh|ref; and yum|dnf|zypper update|up with no package names (it refreshes
//                 the index in a cached layer, the same staleness trap the check is about)
//   install:      apt-get|apt|aptitude install|upgrade|dist-upgrade|full-upgrade|reinstall; apk add|upgrade|fix;
//                 yum|dnf install|upgrade|reinstall|groupinstall|localinstall, update with package names;
//                 zypper install|in|dist-upgrade|dup|patch, update|up with package names
// Commands are split on && || ; | & and newlines; quoting is not interpreted.
// Quotes, backticks and grouping around a word: `sh -c "apt-get update"` and `(apk update)`.
std::string_view unwrap(std::string_view w) {
  auto wrapper = [](char c) { return c == '"' || c == '\'' || c == '`' || c == '(' || c == ')' || c == '{' || c == '}'; };
  while (!w.empty() && wrapper(w.front())) w.remove_prefix(1);
  while (!w.empty() && wrapper(w.back())) w.remove_suffix(1);
  return w;
}

PackageStep classify_command(std::string_view command) {
  auto words = text::words(command);
  for (auto& w : words) {
    std::string_view bare = unwrap(w);
    if (!bare.empty()) w = bare;
  }
  std::size_t i = 0;
  // Skip shell keywords, sudo/env wrappers and VAR=value assignments.
  while (i < words.size()) {
    std::string_view w = words[i];
    bool assignment = w.find('=') != std::string_view::npos && w.front() != '-' && w.front() != '=';
    if (w == "sudo" || w == "env" || w == "exec" || w == "time" || w == "command" || w == "then" || w == "do" ||
        w == "else" || w == "if" || w == "!" || w == "(" || w == "{" || w == "\\" || assignment) {
      ++i;
      continue;
    }
    // A nested shell: `sh -c "apt-get update"` runs its argument.
    std::string_view base = w.substr(w.rfind('/') == std::string_view::npos ? 0 : w.rfind('/') + 1);
    bool shell = base == "sh" || base == "bash" || base == "ash" || base == "dash" || base == "zsh";
    if (shell && i + 1 < words.size() && words[i + 1].size() >= 2 && words[i + 1].front() == '-' &&
        words[i + 1][1] != '-' && words[i + 1].back() == 'c') {
      i += 2;
      continue;
    }
    break;
  }
  if (i >= words.size()) return PackageStep::none;
  std::string_view tool = words[i];
  if (auto slash = tool.rfind('/'); slash != std::string_view::npos) tool = tool.substr(slash + 1);
  bool apt = tool == "apt-get" || tool == "apt" || tool == "aptitude";
  bool apk = tool == "apk";
  bool rpm = tool == "yum" || tool == "dnf" || tool == "microdnf" || tool == "tdnf";
  bool zypper = tool == "zypper";
  if (!apt && !apk && !rpm && !zypper) return PackageStep::none;
  std::string_view sub;
  std::size_t operands = 0;  // non-option words after the subcommand
  for (std::size_t j = i + 1; j < words.size(); ++j) {
    std::string_view w = words[j];
    if (w == "\\") continue;
    if (w.front() == '-') {
      if (option_with_argument(tool, w)) ++j;
      continue;
    }
    if (sub.empty()) sub = w;
    else ++operands;
  }
  if (apt) {
    if (sub == "update") return PackageStep::index_update;
    if (sub == "install" || sub == "upgrade" || sub == "dist-upgrade" || sub == "full-upgrade" || sub == "reinstall") {
      return PackageStep::install;
    }
    return PackageStep::none;
  }
  if (apk) {
    if (sub == "update") return PackageStep::index_update;
    if (sub == "add" || sub == "upgrade" || sub == "fix") return PackageStep::install;
    return PackageStep::none;
  }
  if (rpm) {
    if (sub == "makecache" || sub == "check-update") return PackageStep::index_update;
    if (sub == "update") return operands == 0 ? PackageStep::index_update : PackageStep::install;
    if (sub == "install" || sub == "upgrade" || sub == "reinstall" || sub == "groupinstall" || sub == "localinstall") {
      return PackageStep::install;
    }
    return PackageStep::none;
  }
  if (sub == "refresh" || sub == "ref") return PackageStep::index_update;
  if (sub == "update" || sub == "up") return operands == 0 ? PackageStep::index_update : PackageStep::install;
  if (sub == "install" || sub == "in" || sub == "dist-upgrade" || sub == "dup" || sub == "patch") return PackageStep::install;
  return PackageStep::none;
}

}  // namespace

bool lone_index_update(std::string_view command) {
  bool pending = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= command.size(); ++i) {
    bool separator = i == command.size() || command[i] == ';' || command[i] == '|' || command[i] == '&' ||
                     command[i] == '\n';
    if (!separator) continue;
    switch (classify_command(command.substr(start, i - start))) {
      case PackageStep::index_update: pending = true; break;
      case PackageStep::install: pending = false; break;
      case PackageStep::none: break;
    }
    start = i + 1;
  }
  return pending;
}

}  // namespace ocigate::policy
