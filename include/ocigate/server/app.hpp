#pragma once
// Runs the mirror: opens the cache, starts the listeners and the worker threads, and returns
// after SIGTERM/SIGINT once in-flight streams finished or the grace period ran out.

#include "ocigate/server/settings.hpp"

namespace ocigate::server {

// Returns the process exit code: 0 after a clean shutdown, 1 when start-up failed (the reason is
// logged), e.g. the cache cannot be opened or the port is taken. SIGHUP reloads the policy, TLS
// files and auth from the config file; what is invalid is logged and the old one stays.
int serve(Settings settings);

}  // namespace ocigate::server
