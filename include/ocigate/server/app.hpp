#pragma once
// Runs the mirror: opens the cache, starts the listeners and the worker threads, and returns
// after SIGTERM/SIGINT once in-flight streams finished or the grace period ran out.

#include "ocigate/config/config.hpp"

namespace ocigate::server {

// Returns the process exit code: 0 after a clean shutdown, 1 when start-up failed (the reason is
// logged), e.g. the cache cannot be opened or the port is taken.
int serve(const config::Config& config);

}  // namespace ocigate::server
