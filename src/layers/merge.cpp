// Stacking layer reports into final-filesystem facts, as overlayfs / containerd apply them.

#include "ocigate/layers/merge.hpp"

#include <algorithm>
#include <set>

namespace ocigate::layers {

namespace {

bool has_hash(const LayerReport& r, std::uint64_t hash) {
  return std::binary_search(r.path_hashes.begin(), r.path_hashes.end(), hash);
}

bool under(std::string_view path, std::string_view dir) {
  if (dir.empty()) return true;  // "" is the root
  return path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/';
}

// Whether layer `r` (above the one that wrote `path`) hides it: an entry at the same path, a
// whiteout of it or an ancestor, an opaque ancestor, or a non-directory at an ancestor.
bool hides(const LayerReport& r, const std::string& path) {
  std::uint64_t h = path_hash(path) & ~std::uint64_t{1};
  if (has_hash(r, h) || has_hash(r, h | 1)) return true;
  for (const auto& w : r.whiteouts) {
    if (w == path || under(path, w)) return true;
  }
  for (const auto& d : r.opaque_dirs) {
    if (under(path, d)) return true;
  }
  for (auto slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    if (has_hash(r, path_hash(std::string_view(path).substr(0, slash)) & ~std::uint64_t{1})) return true;
  }
  return false;
}

bool visible(const std::vector<LayerReport>& reports, std::size_t layer, const std::string& path) {
  for (std::size_t j = layer + 1; j < reports.size(); ++j) {
    if (hides(reports[j], path)) return false;
  }
  return true;
}

void add_files(const std::vector<LayerReport>& reports, std::size_t i, const std::vector<FileFact>& facts,
               std::vector<policy::FileFinding>& out) {
  for (const auto& f : facts) {
    if (visible(reports, i, f.path)) out.push_back({"/" + f.path, reports[i].digest, f.detail});
  }
}

void add_os(const std::vector<LayerReport>& reports, policy::FilesystemFacts& facts) {
  // /etc/os-release wins over /usr/lib/os-release (its usual symlink target) when both exist.
  const OsRelease* chosen = nullptr;
  for (std::size_t i = 0; i < reports.size(); ++i) {
    for (const auto& os : reports[i].os_release) {
      if (!visible(reports, i, os.path)) continue;
      if (!chosen || os.path == "etc/os-release") chosen = &os;
    }
  }
  if (!chosen) return;
  facts.os_id = chosen->id;
  facts.os_version_id = chosen->version_id;
  facts.os_pretty_name = chosen->pretty_name;
}

void add_layer_notes(const LayerReport& r, policy::FilesystemFacts& facts) {
  std::string name = r.digest.empty() ? std::string("(unnamed layer)") : r.digest;
  if (r.status != LayerReport::Status::ok) facts.not_inspected.push_back(name + ": " + r.error);
  for (const auto& db : r.package_dbs) {
    if (!db.error.empty()) {
      facts.not_inspected.push_back(name + ": /" + db.path + " could not be read (" + db.error + "); package list incomplete");
    } else if (db.truncated) {
      facts.not_inspected.push_back(name + ": /" + db.path + " exceeds the read limit; package list incomplete");
    }
  }
}

}  // namespace

policy::FilesystemFacts merge(const std::vector<LayerReport>& reports) {
  policy::FilesystemFacts facts;
  std::set<std::pair<std::string, std::string>> seen_packages;  // (format, name)
  for (std::size_t i = 0; i < reports.size(); ++i) {
    const LayerReport& r = reports[i];
    add_layer_notes(r, facts);
    add_files(reports, i, r.setuid_files, facts.setuid_files);
    add_files(reports, i, r.installers, facts.installers);
    for (const auto& s : r.secrets) facts.secret_files.push_back({"/" + s.path, r.digest, s.kind + ": " + s.evidence});
    if (r.passwd && visible(reports, i, "etc/passwd")) {
      facts.has_passwd = true;
      facts.users = r.passwd->users;
    }
    for (const auto& db : r.package_dbs) {
      if (!visible(reports, i, db.path)) continue;
      for (const auto& p : db.packages) {
        if (seen_packages.insert({p.format, p.name}).second) facts.packages.push_back(p);
      }
    }
  }
  add_os(reports, facts);
  return facts;
}

}  // namespace ocigate::layers
