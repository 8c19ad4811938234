#pragma once
// JSON reading shared by the signature formats (private to the signature module): parse without
// throwing, and typed fields that are "" / nullptr when absent or of another type.

#include <algorithm>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "ocigate/signature/verify.hpp"

namespace ocigate::signature::detail {

inline std::optional<nlohmann::json> parse_json(std::string_view text) {
  nlohmann::json out = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (out.is_discarded()) return std::nullopt;
  return out;
}

inline std::string string_at(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

inline const nlohmann::json* object_at(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? &*it : nullptr;
}

// The value at a path of object keys; nullptr where one is missing or not an object.
inline const nlohmann::json* at(const nlohmann::json& j, std::initializer_list<const char*> path) {
  const nlohmann::json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

inline std::string text_at(const nlohmann::json& j, std::initializer_list<const char*> path) {
  const nlohmann::json* v = at(j, path);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// "sha256:" and the first 12 hex digits, for what a result is about.
inline std::string short_digest(std::string_view digest) {
  return std::string(digest.substr(0, std::min<std::size_t>(digest.size(), 19)));
}

inline SignatureResult make_result(Format format, std::string what, Reason reason, std::string detail) {
  SignatureResult r;
  r.format = format;
  r.what = std::move(what);
  r.reason = reason;
  r.detail = std::move(detail);
  return r;
}

}  // namespace ocigate::signature::detail
