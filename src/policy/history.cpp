// Image history: classify each created_by text and tell the base image's entries apart.

#include <array>

#include "ocigate/policy/checks.hpp"
#include "text.hpp"

namespace ocigate::policy {

namespace {

using text::starts_with;
using text::trim;

constexpr std::array<std::string_view, 18> instructions = {
    "ADD",    "ARG",     "CMD",  "COPY",        "ENTRYPOINT", "ENV",    "EXPOSE",      "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "FROM"};

bool known_instruction(std::string_view word) {
  for (auto i : instructions) {
    if (i == word) return true;
  }
  return false;
}

// "|2 A=x B=y rest" -> build args and rest. Docker records the values unquoted and
// space-separated, so a value with a space cannot be told apart; we take one word per arg.
std::string_view take_build_args(std::string_view s, HistoryEntry& entry) {
  if (s.size() < 2 || s[0] != '|' || !text::is_digit(s[1])) return s;
  std::size_t i = 1;
  std::size_t count = 0;
  while (i < s.size() && text::is_digit(s[i]) && count < 10000) count = count * 10 + (s[i++] - '0');
  s = trim(s.substr(i));
  for (std::size_t n = 0; n < count && !s.empty(); ++n) {
    std::size_t end = 0;
    while (end < s.size() && !text::is_space(s[end])) ++end;
    std::string_view arg = s.substr(0, end);
    auto eq = arg.find('=');
    if (eq == std::string_view::npos) break;  // not an arg: leave it to the command
    entry.build_args.emplace_back(std::string(arg.substr(0, eq)), std::string(arg.substr(eq + 1)));
    s = trim(s.substr(end));
  }
  return s;
}

std::pair<std::string_view, std::string_view> first_word(std::string_view s) {
  std::size_t end = 0;
  while (end < s.size() && !text::is_space(s[end])) ++end;
  return {s.substr(0, end), trim(s.substr(end))};
}

// "/bin/sh -c cmd", "/bin/bash -o pipefail -c cmd", "sh -c cmd" -> "cmd"; nullopt otherwise.
std::optional<std::string_view> strip_shell(std::string_view s) {
  std::size_t end = 0;
  while (end < s.size() && !text::is_space(s[end])) ++end;
  std::string_view shell = s.substr(0, end);
  auto slash = shell.rfind('/');
  std::string_view base = slash == std::string_view::npos ? shell : shell.substr(slash + 1);
  if (base != "sh" && base != "bash" && base != "ash" && base != "dash" && base != "zsh") return std::nullopt;
  // Skip options up to "-c" (a handful at most); "-o pipefail" takes an argument.
  std::string_view rest = trim(s.substr(end));
  for (int i = 0; i < 8 && !rest.empty() && (rest[0] == '-' || rest[0] == '+'); ++i) {
    auto [opt, after] = first_word(rest);
    rest = after;
    if (opt == "-o" || opt == "+o") {
      rest = first_word(rest).second;
      continue;
    }
    if (opt.size() > 1 && opt[0] == '-' && opt[1] != '-' && opt.back() == 'c') return rest;  // -c, -ec, -exc
  }
  return std::nullopt;
}

// Sources and destination of an ADD/COPY body, without flags ("--chown=1", "--link").
std::vector<std::string> add_arguments(std::string_view body) {
  std::vector<std::string> out;
  body = trim(body);
  if (!body.empty() && body.front() == '[') {
    auto json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_array()) {
      for (const auto& item : json) {
        if (item.is_string()) out.push_back(item.get<std::string>());
      }
      return out;
    }
  }
  for (auto word : text::words(body)) {
    if (out.empty() && starts_with(word, "--")) continue;
    out.emplace_back(word);
  }
  return out;
}

bool tarball(std::string_view name) {
  for (std::string_view ext : {".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar.zst"}) {
    if (text::ends_with(name, ext)) return true;
  }
  return false;
}

bool rootfs_entry(const HistoryEntry& entry) {
  if (entry.instruction != "ADD" && entry.instruction != "COPY") return false;
  auto args = add_arguments(entry.body);
  // Classic builder: "file:<hash> in /" (also "multi:" / "dir:").
  if (args.size() == 3 && args[1] == "in" && args[2] == "/" &&
      (starts_with(args[0], "file:") || starts_with(args[0], "multi:") || starts_with(args[0], "dir:"))) {
    return true;
  }
  // Buildkit: ADD of a local root filesystem tarball into "/".
  return entry.instruction == "ADD" && args.size() == 2 && args[1] == "/" && tarball(args[0]) &&
         args[0].find("://") == std::string::npos;
}

}  // namespace

std::vector<std::string> add_sources(std::string_view body) {
  auto args = add_arguments(body);
  if (!args.empty()) args.pop_back();  // the destination
  if (args.size() >= 2 && args.back() == "in") args.pop_back();  // classic "file:<hash> in <dest>"
  return args;
}

HistoryEntry classify_created_by(std::string_view created_by) {
  HistoryEntry entry;
  entry.created_by = std::string(created_by);
  std::string_view s = trim(created_by);
  if (text::ends_with(s, "# buildkit")) s = trim(s.substr(0, s.size() - std::string_view("# buildkit").size()));
  if (starts_with(s, "/bin/sh -c #(nop)")) {
    auto [word, rest] = first_word(trim(s.substr(std::string_view("/bin/sh -c #(nop)").size())));
    entry.instruction = text::upper(word);
    entry.body = std::string(rest);
    if (!known_instruction(entry.instruction)) entry.instruction.clear();
    return entry;
  }
  bool run = false;
  if (starts_with(s, "RUN ")) {
    run = true;
    s = trim(s.substr(4));
  }
  if (starts_with(s, "|")) {
    std::string_view after = take_build_args(s, entry);
    run = run || after != s;
    s = after;
  }
  if (auto command = strip_shell(s)) {
    entry.instruction = "RUN";
    entry.body = std::string(*command);
    return entry;
  }
  if (run) {
    entry.instruction = "RUN";  // exec form, e.g. `RUN apt-get update # buildkit`
    entry.body = std::string(s);
    return entry;
  }
  auto [word, rest] = first_word(s);
  if (known_instruction(word)) {
    entry.instruction = std::string(word);
    entry.body = std::string(rest);
  } else {
    entry.body = std::string(s);
  }
  return entry;
}

std::optional<std::vector<HistoryEntry>> parse_history(const std::optional<nlohmann::json>& config) {
  if (!config || !config->is_object()) return std::nullopt;
  auto it = config->find("history");
  if (it == config->end() || !it->is_array() || it->empty()) return std::nullopt;
  std::vector<HistoryEntry> entries;
  for (std::size_t i = 0; i < it->size(); ++i) {
    const auto& item = (*it)[i];
    std::string created_by;
    if (item.is_object()) {
      auto cb = item.find("created_by");
      if (cb != item.end() && cb->is_string()) created_by = cb->get<std::string>();
    }
    HistoryEntry entry = classify_created_by(created_by);
    entry.index = i;
    entries.push_back(std::move(entry));
  }
  std::optional<std::size_t> last_rootfs;
  for (const auto& entry : entries) {
    if (rootfs_entry(entry)) last_rootfs = entry.index;
  }
  if (last_rootfs) {
    for (auto& entry : entries) entry.base = entry.index <= *last_rootfs;
  }
  return entries;
}

}  // namespace ocigate::policy
