#pragma once
// Repository names, tags and the routes of the pull side of the distribution API.

#include <optional>
#include <string>
#include <string_view>

namespace ocigate::oci {

// Repository name grammar of the distribution spec:
//   [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
// at most 255 characters. Rejects "..", empty components, upper case, "%", "//" and so on.
bool valid_repository_name(std::string_view name);

// Tag grammar: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
bool valid_tag(std::string_view tag);

// True when text looks like a digest ("alg:encoded"), valid or not. Used to decide whether a
// manifest reference is a digest (then it must parse) or a tag.
bool looks_like_digest(std::string_view text);

enum class RouteKind {
  base,        // /v2/ or /v2
  manifest,    // /v2/<name>/manifests/<reference>
  blob,        // /v2/<name>/blobs/<digest>
  tags_list,   // /v2/<name>/tags/list
  referrers,   // /v2/<name>/referrers/<digest>
  blob_upload, // /v2/<name>/blobs/uploads/... (push side: answered 405 UNSUPPORTED)
  catalog,     // /v2/_catalog (not offered: 405 UNSUPPORTED)
  unknown,     // anything else under /v2 or outside it
};

struct Route {
  RouteKind kind = RouteKind::unknown;
  std::string name;       // repository name as sent (not validated by parse_route)
  std::string reference;  // tag or digest for manifest; digest for blob/referrers
  std::string query;      // raw query string without '?', may be empty
};

// Splits a request target ("/v2/library/alpine/manifests/3.19?ns=docker.io") into a Route.
// Only the path structure is checked here; names and references are validated separately.
// Percent-encoded paths are not decoded (the name grammar has no '%', so they are rejected later).
Route parse_route(std::string_view target);

// Value of one query parameter (first occurrence), percent-decoded; nullopt when absent.
std::optional<std::string> query_param(std::string_view query, std::string_view key);

}  // namespace ocigate::oci
