#include "pull/routing.hpp"

namespace ocigate::server {

Result<Target> resolve_target(const config::Config& config, const oci::Route& route) {
  Target target;
  target.name = route.name;
  std::string repo = route.name;
  const config::Upstream* upstream = nullptr;
  auto ns = oci::query_param(route.query, "ns");
  if (ns) {
    upstream = config.find_upstream(*ns);
    target.ns = *ns;
  } else if (auto slash = route.name.find('/'); slash != std::string::npos) {
    upstream = config.find_upstream(route.name.substr(0, slash));
    if (upstream) repo = route.name.substr(slash + 1);
  }
  // Grammar first: a malformed name is the client's mistake (400) whatever it maps to.
  if (!oci::valid_repository_name(repo)) return Error{Errc::name_invalid, "invalid repository name: " + route.name};
  if (ns && !upstream) return Error{Errc::name_unknown, "no upstream is configured for ns=" + *ns};
  if (!upstream && !config.default_upstream.empty()) upstream = config.find_upstream(config.default_upstream);
  if (!upstream) return Error{Errc::name_unknown, "repository " + route.name + " matches no configured upstream"};
  if (upstream->implicit_library && repo.find('/') == std::string::npos) repo = "library/" + repo;
  target.upstream = upstream;
  target.repo = repo;
  target.repo_key = upstream->name + "/" + repo;
  return target;
}

}  // namespace ocigate::server
