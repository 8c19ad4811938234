#pragma once
// WWW-Authenticate challenges (RFC 9110 §11.6.1), as registries send them:
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"
//   Basic realm="Registry Realm"

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ocigate::oci {

struct Challenge {
  std::string scheme;                         // lower-cased: "bearer", "basic", ...
  std::map<std::string, std::string> params;  // keys lower-cased, values unquoted and unescaped
};

// Parses one header value that may hold several challenges. Malformed parts are skipped;
// never throws.
std::vector<Challenge> parse_challenges(std::string_view header);

}  // namespace ocigate::oci
