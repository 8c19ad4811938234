#pragma once
// Repository globs, matched against "<upstream>/<repository>" (e.g. "docker.io/library/alpine").
//
//   *    any run of characters within one path segment (never crosses '/')
//   **   any run of characters across segments, including none; "a/**/b" also matches "a/b"
//   ?    exactly one character other than '/'
// Everything else matches itself. A valid glob is non-empty and uses only the repository-name
// charset (a-z 0-9 . _ -), the upstream separators '/', ':' and '@', and the wildcards '*' and '?'.
// Three or more '*' in a row are malformed. Matching is case-sensitive: names are lowercase.

#include <optional>
#include <string>
#include <string_view>

namespace ocigate {

bool glob_match(std::string_view glob, std::string_view text);

// nullopt when the glob is valid, else why it is not.
std::optional<std::string> glob_error(std::string_view glob);

}  // namespace ocigate
