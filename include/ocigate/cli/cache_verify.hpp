#pragma once
// `ocigate cache verify [--config FILE]`: rehashes every cached blob and manifest of the configured
// storage.path, prints and removes the bad ones. Refuses to run while a server holds the cache.
// Exit 0 clean, 1 bad entries were found (and removed), 2 usage, configuration or cache errors
// (including a cache in use by a running server).

#include "ocigate/config/config.hpp"

namespace ocigate::cli {

int verify_cache(const config::Config& config);

}  // namespace ocigate::cli
