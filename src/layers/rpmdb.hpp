#pragma once
// The rpm package database of RHEL 9 / UBI 9 / Fedora / Rocky / Alma images: an SQLite file
// (var/lib/rpm/rpmdb.sqlite, or usr/lib/sysimage/rpm/rpmdb.sqlite) whose Packages table holds
// one rpm header blob per installed package. Private to the layers module; never throws.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"
#include "ocigate/policy/filesystem.hpp"

namespace ocigate::layers::rpmdb {

// The installed packages (gpg-pubkey pseudo-packages left out): name, "[epoch:]version-release",
// format "rpm", source = the source rpm's name when it differs. An error when the bytes are not
// a readable SQLite database with a Packages table, or a header blob is malformed.
Result<std::vector<policy::Package>> parse_sqlite(std::string bytes);

// One header blob as the Packages table stores it: entry count and data size (big-endian),
// the index entries (tag, type, offset, count), then the data. nullopt when malformed.
struct Header {
  std::string name, version, release, arch, source_rpm;
  std::optional<std::uint32_t> epoch;
};
std::optional<Header> parse_header(std::string_view blob);

// "openssl-3.0.7-27.el9.src.rpm" -> "openssl"; "" when it does not have that shape.
std::string source_name(std::string_view source_rpm);

}  // namespace ocigate::layers::rpmdb
