#pragma once
// One image judged straight from its upstream by the mirror's own pull path and judge (the same
// fetches, digest checks, fact sources and policy as a pull), on a private io_context with a
// throw-away cache, so it runs beside a live mirror. `ocigate check` prints what this returns.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "ocigate/common/result.hpp"
#include "ocigate/policy/engine.hpp"
#include "ocigate/server/settings.hpp"

namespace ocigate::server {

struct Inspection {
  policy::Verdict verdict;
  // {"os", "packages", "complete", "not_inspected"} as the verdict API shows it; nullopt when the
  // layers were not inspected.
  std::optional<nlohmann::json> inventory;
};

// reference: "[<upstream>/]<repo>[:tag|@digest]" ("alpine" is the default upstream's
// library/alpine:latest); an index is resolved to its os/architecture entry. Every layer is
// inspected, whatever policy.layer_scan says. Errors: a reference that names no configured
// upstream, the upstream's failures, a scratch cache that cannot be opened.
Result<Inspection> inspect_image(Settings settings, const std::string& reference, const std::string& os,
                                 const std::string& architecture);

}  // namespace ocigate::server
