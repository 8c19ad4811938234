#pragma once
// What layer inspection learned about an image's filesystem, as the policy checks read it.
// A plain struct so the policy stays pure (facts in, verdict out): the layers module fills it
// (layers::merge), the policy module only reads it. Every finding names the layer digest and
// path that introduced it.

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ocigate::policy {

struct FileFinding {
  std::string path;    // absolute, e.g. "/usr/bin/passwd"
  std::string layer;   // digest of the layer that introduced it
  std::string detail;  // "setuid, mode 4755", "apk", "private key (RSA)", ...
  bool operator==(const FileFinding&) const = default;
};

struct Package {
  Package() = default;
  // Most packages are their own source: Package{name, version, format}.
  Package(std::string name, std::string version, std::string format, std::string source = {},
          std::string source_version = {})
      : name(std::move(name)),
        version(std::move(version)),
        format(std::move(format)),
        source(std::move(source)),
        source_version(std::move(source_version)) {}

  std::string name, version;
  std::string format;  // "apk" | "dpkg" | "rpm": which ecosystem the version belongs to
  // The source the binary package was built from, as vulnerability databases name it: dpkg's
  // `Source:` field, apk's origin (`o:`), the rpm's SOURCERPM name. "" when the database does
  // not say (the package is then its own source). source_version only when it differs from
  // version (dpkg's `Source: name (version)`, binNMUs).
  std::string source, source_version;
  bool operator==(const Package&) const = default;
};

struct FilesystemFacts {
  // Judged on the final filesystem (whiteouts, opaque directories and overrides applied).
  std::vector<FileFinding> setuid_files;  // regular files with mode bits 04000 or 02000
  std::vector<FileFinding> installers;    // package installers at the usual bin paths
  bool has_passwd = false;                // the final filesystem has /etc/passwd
  std::map<std::string, long long> users; // /etc/passwd: user name -> uid
  std::string os_id, os_version_id, os_pretty_name;  // /etc/os-release ("" when absent)
  std::vector<Package> packages;          // from the final filesystem's package databases
  // Judged in every layer: a file deleted by a later layer still ships in the earlier blob.
  std::vector<FileFinding> secret_files;
  // "<digest>: <why>" for each layer that could not be (fully) inspected: foreign layers,
  // malformed or truncated archives. Checks that find nothing say "unknown" when this is set.
  std::vector<std::string> not_inspected;
  bool operator==(const FilesystemFacts&) const = default;

  // {"setuid_files":[{path,layer,detail}],"installers":[...],"secret_files":[...],
  //  "passwd":{"present":bool,"users":{name:uid}},"os":{"id","version_id","pretty_name"},
  //  "packages":[{name,version,format[,source][,source_version]}],"not_inspected":[...]}
  // (source and source_version are written only when set, and read when present).
  nlohmann::json to_json() const;
  // Inverse of to_json; nullopt on anything malformed.
  static std::optional<FilesystemFacts> from_json(const nlohmann::json& json);
};

}  // namespace ocigate::policy
