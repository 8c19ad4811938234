// JSON form of FilesystemFacts: stored with the verdict (the package inventory) and cached.

#include "ocigate/policy/filesystem.hpp"

namespace ocigate::policy {

namespace {

nlohmann::json findings_json(const std::vector<FileFinding>& findings) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& f : findings) out.push_back({{"path", f.path}, {"layer", f.layer}, {"detail", f.detail}});
  return out;
}

bool read_string(const nlohmann::json& object, const char* key, std::string& out) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

bool read_findings(const nlohmann::json& json, const char* key, std::vector<FileFinding>& out) {
  auto it = json.find(key);
  if (it == json.end() || !it->is_array()) return false;
  for (const auto& item : *it) {
    FileFinding f;
    if (!item.is_object() || !read_string(item, "path", f.path) || !read_string(item, "layer", f.layer) ||
        !read_string(item, "detail", f.detail)) {
      return false;
    }
    out.push_back(std::move(f));
  }
  return true;
}

bool read_passwd(const nlohmann::json& json, FilesystemFacts& facts) {
  auto it = json.find("passwd");
  if (it == json.end() || !it->is_object()) return false;
  auto present = it->find("present");
  auto users = it->find("users");
  if (present == it->end() || !present->is_boolean() || users == it->end() || !users->is_object()) return false;
  facts.has_passwd = present->get<bool>();
  for (const auto& [name, uid] : users->items()) {
    if (!uid.is_number_integer()) return false;
    facts.users[name] = uid.get<long long>();
  }
  return true;
}

bool read_os(const nlohmann::json& json, FilesystemFacts& facts) {
  auto it = json.find("os");
  return it != json.end() && it->is_object() && read_string(*it, "id", facts.os_id) &&
         read_string(*it, "version_id", facts.os_version_id) && read_string(*it, "pretty_name", facts.os_pretty_name);
}

bool read_packages(const nlohmann::json& json, FilesystemFacts& facts) {
  auto it = json.find("packages");
  if (it == json.end() || !it->is_array()) return false;
  for (const auto& item : *it) {
    Package p;
    if (!item.is_object() || !read_string(item, "name", p.name) || !read_string(item, "version", p.version) ||
        !read_string(item, "format", p.format)) {
      return false;
    }
    // Optional (inventories stored before they existed lack them).
    if (item.contains("source") && !read_string(item, "source", p.source)) return false;
    if (item.contains("source_version") && !read_string(item, "source_version", p.source_version)) return false;
    facts.packages.push_back(std::move(p));
  }
  return true;
}

nlohmann::json package_json(const Package& p) {
  nlohmann::json out = {{"name", p.name}, {"version", p.version}, {"format", p.format}};
  if (!p.source.empty()) out["source"] = p.source;
  if (!p.source_version.empty()) out["source_version"] = p.source_version;
  return out;
}

}  // namespace

nlohmann::json FilesystemFacts::to_json() const {
  nlohmann::json users_json = nlohmann::json::object();
  for (const auto& [name, uid] : users) users_json[name] = uid;
  nlohmann::json packages_json = nlohmann::json::array();
  for (const auto& p : packages) packages_json.push_back(package_json(p));
  return {{"setuid_files", findings_json(setuid_files)},
          {"installers", findings_json(installers)},
          {"secret_files", findings_json(secret_files)},
          {"passwd", {{"present", has_passwd}, {"users", users_json}}},
          {"os", {{"id", os_id}, {"version_id", os_version_id}, {"pretty_name", os_pretty_name}}},
          {"packages", packages_json},
          {"not_inspected", not_inspected}};
}

std::optional<FilesystemFacts> FilesystemFacts::from_json(const nlohmann::json& json) {
  if (!json.is_object()) return std::nullopt;
  FilesystemFacts facts;
  if (!read_findings(json, "setuid_files", facts.setuid_files) || !read_findings(json, "installers", facts.installers) ||
      !read_findings(json, "secret_files", facts.secret_files) || !read_passwd(json, facts) || !read_os(json, facts) ||
      !read_packages(json, facts)) {
    return std::nullopt;
  }
  auto it = json.find("not_inspected");
  if (it == json.end() || !it->is_array()) return std::nullopt;
  for (const auto& item : *it) {
    if (!item.is_string()) return std::nullopt;
    facts.not_inspected.push_back(item.get<std::string>());
  }
  return facts;
}

}  // namespace ocigate::policy
