// LayerReport <-> JSON, for the per-layer-digest cache.

#include "ocigate/layers/report.hpp"

namespace ocigate::layers {

namespace {

using nlohmann::json;

json fact_json(const FileFact& f) { return {{"path", f.path}, {"mode", f.mode}, {"uid", f.uid}, {"detail", f.detail}}; }

json package_json(const policy::Package& p) {
  json out = {{"name", p.name}, {"version", p.version}, {"format", p.format}};
  if (!p.source.empty()) out["source"] = p.source;
  if (!p.source_version.empty()) out["source_version"] = p.source_version;
  return out;
}

template <class T, class Fn>
json list_json(const std::vector<T>& items, Fn fn) {
  json out = json::array();
  for (const auto& item : items) out.push_back(fn(item));
  return out;
}

// Reading is strict about types; nlohmann's get<> throws on a mismatch, which stays inside
// from_json (cached bytes are ours, but a corrupt cache entry must read as "absent", not crash).
FileFact fact_from(const json& j) {
  return FileFact{j.at("path").get<std::string>(), j.at("mode").get<std::uint32_t>(), j.at("uid").get<std::uint64_t>(),
                  j.at("detail").get<std::string>()};
}

policy::Package package_from(const json& j) {
  policy::Package p(j.at("name").get<std::string>(), j.at("version").get<std::string>(),
                    j.at("format").get<std::string>());
  p.source = j.value("source", std::string());
  p.source_version = j.value("source_version", std::string());
  return p;
}

template <class T, class Fn>
std::vector<T> list_from(const json& j, Fn fn) {
  if (!j.is_array()) throw json::type_error::create(302, "not an array", &j);
  std::vector<T> out;
  for (const auto& item : j) out.push_back(fn(item));
  return out;
}

LayerReport::Status status_from(const std::string& text) {
  if (text == "ok") return LayerReport::Status::ok;
  if (text == "foreign") return LayerReport::Status::foreign;
  if (text == "error") return LayerReport::Status::error;
  throw json::other_error::create(501, "unknown status", nullptr);
}

}  // namespace

const char* status_text(LayerReport::Status status) {
  switch (status) {
    case LayerReport::Status::foreign: return "foreign";
    case LayerReport::Status::error: return "error";
    case LayerReport::Status::ok: break;
  }
  return "ok";
}

std::uint64_t path_hash(std::string_view path) {
  // FNV-1a: stable across builds and platforms, which a cached report needs.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : path) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

json LayerReport::to_json() const {
  json passwd_json = nullptr;
  if (passwd) passwd_json = passwd->users;
  return {
      {"format_version", format_version},
      {"digest", digest},
      {"media_type", media_type},
      {"status", status_text(status)},
      {"error", error},
      {"compression", compression},
      {"entries", entries},
      {"compressed_bytes", compressed_bytes},
      {"uncompressed_bytes", uncompressed_bytes},
      {"path_hashes", path_hashes},
      {"whiteouts", whiteouts},
      {"opaque_dirs", opaque_dirs},
      {"setuid_files", list_json(setuid_files, fact_json)},
      {"installers", list_json(installers, fact_json)},
      {"secrets", list_json(secrets, [](const SecretFile& s) {
         return json{{"path", s.path}, {"kind", s.kind}, {"evidence", s.evidence}};
       })},
      {"passwd", passwd_json},
      {"os_release", list_json(os_release, [](const OsRelease& o) {
         return json{{"path", o.path}, {"id", o.id}, {"version_id", o.version_id}, {"pretty_name", o.pretty_name}};
       })},
      {"package_dbs", list_json(package_dbs, [](const PackageDb& db) {
         return json{{"path", db.path}, {"format", db.format}, {"truncated", db.truncated}, {"error", db.error},
                     {"packages", list_json(db.packages, package_json)}};
       })},
      {"secrets_budget_exhausted", secrets_budget_exhausted},
  };
}

std::optional<LayerReport> LayerReport::from_json(const json& j) {
  try {
    if (j.at("format_version").get<int>() != format_version) return std::nullopt;
    LayerReport r;
    r.digest = j.at("digest").get<std::string>();
    r.media_type = j.at("media_type").get<std::string>();
    r.status = status_from(j.at("status").get<std::string>());
    r.error = j.at("error").get<std::string>();
    r.compression = j.at("compression").get<std::string>();
    r.entries = j.at("entries").get<std::uint64_t>();
    r.compressed_bytes = j.at("compressed_bytes").get<std::uint64_t>();
    r.uncompressed_bytes = j.at("uncompressed_bytes").get<std::uint64_t>();
    r.path_hashes = j.at("path_hashes").get<std::vector<std::uint64_t>>();
    r.whiteouts = j.at("whiteouts").get<std::vector<std::string>>();
    r.opaque_dirs = j.at("opaque_dirs").get<std::vector<std::string>>();
    r.setuid_files = list_from<FileFact>(j.at("setuid_files"), fact_from);
    r.installers = list_from<FileFact>(j.at("installers"), fact_from);
    r.secrets = list_from<SecretFile>(j.at("secrets"), [](const json& s) {
      return SecretFile{s.at("path").get<std::string>(), s.at("kind").get<std::string>(), s.at("evidence").get<std::string>()};
    });
    if (!j.at("passwd").is_null()) r.passwd = Passwd{j.at("passwd").get<std::map<std::string, long long>>()};
    r.os_release = list_from<OsRelease>(j.at("os_release"), [](const json& o) {
      return OsRelease{o.at("path").get<std::string>(), o.at("id").get<std::string>(),
                       o.at("version_id").get<std::string>(), o.at("pretty_name").get<std::string>()};
    });
    r.package_dbs = list_from<PackageDb>(j.at("package_dbs"), [](const json& db) {
      return PackageDb{db.at("path").get<std::string>(), db.at("format").get<std::string>(),
                       list_from<policy::Package>(db.at("packages"), package_from), db.at("truncated").get<bool>(),
                       db.at("error").get<std::string>()};
    });
    r.secrets_budget_exhausted = j.at("secrets_budget_exhausted").get<bool>();
    std::sort(r.path_hashes.begin(), r.path_hashes.end());  // merge relies on the order
    return r;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace ocigate::layers
