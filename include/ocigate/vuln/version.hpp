#pragma once
// Package version orders, one per package format, each as its own tool defines it:
//   dpkg: deb-version(7), dpkg's parseversion and verrevcmp (epoch, upstream, revision, `~`);
//   apk:  apk-tools' version.c (digit/letter tokens, _alpha.._p suffixes, ~hash, -rN);
//   rpm:  rpm's rpmvercmp over epoch:version-release (`~` sorts first, `^` after the base).
// Pure functions on strings; a version that its tool would refuse is an error, never a crash.

#include <cstdint>
#include <string>
#include <string_view>

#include "ocigate/common/result.hpp"

namespace ocigate::vuln {

enum class Scheme { dpkg, apk, rpm };
const char* scheme_text(Scheme scheme);  // "dpkg" | "apk" | "rpm"

namespace dpkg {

struct Version {
  std::uint32_t epoch = 0;
  std::string upstream, revision;  // revision "" when absent
};

// Leading and trailing blanks are ignored; an empty, blank-containing, non-numeric-epoch,
// empty-upstream, upstream not starting with a digit, or bad-character version is an error.
Result<Version> parse(std::string_view text);
bool valid(std::string_view text);  // parse() would succeed (without allocating)
// dpkg's verrevcmp on one part: <0, 0, >0.
int compare_part(std::string_view a, std::string_view b);
int compare(const Version& a, const Version& b);
// compare() on strings parse() accepts, without allocating.
int compare_valid(std::string_view a, std::string_view b);

}  // namespace dpkg

namespace apk {

// apk_version_validate: digit{.digit}...{letter}{_suf{#}}...{~hash}{-r#}.
bool valid(std::string_view version);
// apk_version_compare: -1, 0, 1; defined (as apk's is) for invalid strings too.
int compare(std::string_view a, std::string_view b);

}  // namespace apk

namespace rpm {

struct Version {
  std::uint32_t epoch = 0;
  std::string version, release;  // release "" when absent
  bool has_epoch = false;
};

// [epoch:]version[-release]; an empty version, a non-numeric epoch or a control character is an error.
Result<Version> parse(std::string_view text);
bool valid(std::string_view text);  // parse() would succeed (without allocating)
// rpmvercmp: -1, 0, 1.
int vercmp(std::string_view a, std::string_view b);
// Epoch, then version, then release when both have one (a bare "1.2" in an advisory matches any
// release of 1.2, as rpm's dependency ranges do).
int compare(const Version& a, const Version& b);
// compare() on strings parse() accepts, without allocating.
int compare_valid(std::string_view a, std::string_view b);

}  // namespace rpm

// Orders two version strings of one scheme: <0, 0, >0; an error when either does not parse.
Result<int> compare(Scheme scheme, std::string_view a, std::string_view b);
// compare() for strings already known to be valid (the database checks each version once, at
// load), without allocating; on other strings the order is defined but meaningless.
int compare_valid(Scheme scheme, std::string_view a, std::string_view b);
// Whether the scheme's parser accepts the string.
bool valid(Scheme scheme, std::string_view version);

}  // namespace ocigate::vuln
