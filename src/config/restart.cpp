// restart_only_changes (ocigate/config/config.hpp): what a SIGHUP leaves for a restart.

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "ocigate/config/config.hpp"

namespace ocigate::config {

namespace {

// A node's value as text that layout, comments and key order do not change.
std::string canonical(const YAML::Node& node) {
  if (!node || node.IsNull()) return "~";
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  std::vector<std::string> items;
  if (node.IsSequence()) {
    for (const auto& item : node) items.push_back(canonical(item));
    std::string text = "[";
    for (const auto& item : items) text += item + ",";
    return text + "]";
  }
  for (const auto& entry : node) items.push_back(entry.first.Scalar() + ":" + canonical(entry.second));
  std::sort(items.begin(), items.end());
  std::string text = "{";
  for (const auto& item : items) text += item + ",";
  return text + "}";
}

// The key's value; a null node where the map or the key is missing (never yaml-cpp's invalid node,
// which throws when asked its type).
YAML::Node child(const YAML::Node& map, const std::string& key) {
  if (!map || !map.IsMap()) return YAML::Node();
  const YAML::Node found = map[key];
  return found ? found : YAML::Node();
}

std::set<std::string> keys_of(const YAML::Node& map) {
  std::set<std::string> keys;
  if (map && map.IsMap()) {
    for (const auto& entry : map) keys.insert(entry.first.Scalar());
  }
  return keys;
}

// The sections a reload applies, and server's one key that it applies.
const std::set<std::string> reloaded_sections = {"policy", "auth", "notify", "vulnerabilities"};
const std::set<std::string> reloaded_server_keys = {"trusted_proxies"};

}  // namespace

std::vector<std::string> restart_only_changes(const Config& running, const Config& next) {
  const YAML::Node before = running.document ? *running.document : YAML::Node();
  const YAML::Node after = next.document ? *next.document : YAML::Node();
  std::set<std::string> sections = keys_of(before);
  sections.merge(keys_of(after));
  std::vector<std::string> changed;
  for (const auto& section : sections) {
    if (reloaded_sections.count(section)) continue;
    const YAML::Node was = child(before, section), is = child(after, section);
    if (section == "upstreams" || section == "default_upstream" || !(was.IsMap() || is.IsMap())) {
      if (canonical(was) != canonical(is)) changed.push_back(section);
      continue;
    }
    std::set<std::string> keys = keys_of(was);
    keys.merge(keys_of(is));
    for (const auto& key : keys) {
      if (section == "server" && reloaded_server_keys.count(key)) continue;
      if (canonical(child(was, key)) != canonical(child(is, key))) changed.push_back(section + "." + key);
    }
  }
  // A password is read from its file at load: the same path with new content counts too.
  if (std::find(changed.begin(), changed.end(), "upstreams") == changed.end()) {
    for (const auto& upstream : next.upstreams) {
      const auto* was = running.find_upstream(upstream.name);
      if (was && was->password != upstream.password) changed.push_back("upstreams." + upstream.name + ".password_file");
    }
  }
  std::sort(changed.begin(), changed.end());
  return changed;
}

}  // namespace ocigate::config
