#pragma once
// Name mapping, the three ways users configure a mirror:
//   /v2/<upstream-name>/<repo>/...   an explicit upstream prefix (e.g. /v2/docker.io/library/alpine)
//   ?ns=<upstream-name>              containerd's hosts.toml mirrors; the whole name is the repository
//   /v2/<repo>/...                   anything else goes to default_upstream (Docker's registry-mirrors)
// Docker Hub's implicit "library/" is added where the upstream says so. A name that maps to no
// configured upstream is NAME_UNKNOWN: client input never makes ocigate contact another host.

#include <string>

#include "ocigate/common/result.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/oci/reference.hpp"

namespace ocigate::upstream {
class Client;
}

namespace ocigate::server {

struct Target {
  const config::Upstream* upstream = nullptr;
  upstream::Client* client = nullptr;  // set by the proxy
  std::string name;      // as the client sent it
  std::string repo;      // repository at the upstream (library/ added for Docker Hub)
  std::string repo_key;  // "<upstream>/<repo>": cache keys, policy globs
  std::string ns;        // ?ns= value the client sent, echoed in Link headers
};

Result<Target> resolve_target(const config::Config& config, const oci::Route& route);

}  // namespace ocigate::server
