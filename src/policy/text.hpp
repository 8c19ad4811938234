#pragma once
// Small string helpers shared by the policy sources (private to the module).

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ocigate/common/utf8.hpp"

namespace ocigate::policy::text {

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
inline bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
inline bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alnum(char c) { return is_upper(c) || is_lower(c) || is_digit(c); }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

inline bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

inline std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (is_lower(c)) c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// Splits on runs of whitespace.
inline std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    std::size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// First `limit` bytes of s, with "..." when cut; keeps evidence and messages one readable line.
inline std::string shorten(std::string_view s, std::size_t limit = 120) {
  std::string out;
  for (char c : s.substr(0, limit)) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (s.size() > limit) out += "...";
  return out;
}

// Valid UTF-8 on one line: image data ends up in JSON (whose serializer throws on invalid UTF-8)
// and in log lines. Invalid bytes become '?', control characters a space.
inline std::string clean(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
      ++i;
    } else if (std::size_t len = utf8::sequence_length(s, i)) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

// A check parameter that is a list of strings (non-strings skipped; empty when absent).
inline std::vector<std::string> string_list(const nlohmann::json& params, const char* key) {
  std::vector<std::string> out;
  auto it = params.find(key);
  if (it == params.end() || !it->is_array()) return out;
  for (const auto& item : *it) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace ocigate::policy::text
