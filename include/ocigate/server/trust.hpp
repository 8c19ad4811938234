#pragma once
// Loading the keys and certificates policy.trust names, at start and on every reload.

#include "ocigate/common/result.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/policy/policy.hpp"
#include "ocigate/signature/trust.hpp"

namespace ocigate::server {

// Relative paths are resolved from the config file's directory (the working directory for the
// built-in default). An unreadable or unparsable key refuses the configuration.
Result<signature::TrustStore> load_trust(const config::Config& config, const policy::Policy& policy);

}  // namespace ocigate::server
