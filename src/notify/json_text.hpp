#pragma once
// Reading the event's JSON fields (violations) as text, for the notify module's own use.

#include <string>

#include <nlohmann/json.hpp>

namespace ocigate::notify::detail {

// object[key] when object is an object and that member a string; empty otherwise.
inline std::string text_field(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace ocigate::notify::detail
