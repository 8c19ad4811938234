#pragma once
// Runs the mirror: opens the cache, starts the listeners and the worker threads, and returns
// after SIGTERM/SIGINT once in-flight streams finished or the grace period ran out.

#include "ocigate/config/config.hpp"
#include "ocigate/policy/policy.hpp"
#include "ocigate/signature/trust.hpp"

namespace ocigate::server {

// Returns the process exit code: 0 after a clean shutdown, 1 when start-up failed (the reason is
// logged), e.g. the cache cannot be opened or the port is taken. SIGHUP reloads the policy from
// the config file; an invalid new policy is logged and the old one stays.
int serve(const config::Config& config, policy::Policy policy, signature::TrustStore trust);

}  // namespace ocigate::server
