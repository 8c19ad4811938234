#pragma once
// Parsers for the few file contents a layer scan reads (private to the module). Each takes the
// (possibly capped) bytes of one file and never throws.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/layers/report.hpp"

namespace ocigate::layers::content {

// What a path is to the scanner, decided from the normalised path alone.
enum class Kind {
  none,            // not read
  generic,         // small file: read for private keys within the budget
  passwd,          // etc/passwd
  os_release,      // etc/os-release, usr/lib/os-release
  apk_db,          // lib/apk/db/installed
  dpkg_status,     // var/lib/dpkg/status, var/lib/dpkg/status.d/<pkg>
  rpm_db,          // var/lib/rpm/rpmdb.sqlite, usr/lib/sysimage/rpm/rpmdb.sqlite
  env_file,        // .env, .env.production (not .env.example ...)
  aws_credentials, // .aws/credentials
  docker_config,   // .docker/config.json
  npmrc,           // .npmrc
  git_credentials, // .git-credentials
  ssh_key,         // id_rsa, id_dsa, id_ecdsa, id_ed25519 (flagged by name)
};
Kind kind_of(std::string_view path);
bool known_name(Kind kind);  // read whatever the byte budget says

// The installer's name when `path` is one at a usual bin path ("usr/bin/apt-get" -> "apt-get").
std::optional<std::string> installer(std::string_view path);

Passwd parse_passwd(std::string_view text);
OsRelease parse_os_release(std::string_view text);
std::vector<policy::Package> parse_apk(std::string_view text);
std::vector<policy::Package> parse_dpkg(std::string_view text);

// Secrets in a file of a known kind (or a generic file's PEM private key); empty when clean.
std::vector<SecretFile> secrets(Kind kind, std::string_view path, std::string_view text);
// "-----BEGIN <label> PRIVATE KEY-----" followed by base64 (so a string constant naming the
// header in source code is not a key): the label, e.g. "RSA PRIVATE KEY".
std::optional<std::string> private_key(std::string_view text);

}  // namespace ocigate::layers::content
