#pragma once
// `ocigate check [--config FILE] [--format table|json] <reference>`: the mirror's verdict on one
// image, fetched straight from its upstream. Exit 0 allowed (warnings printed), 1 blocked,
// 2 usage, configuration or network errors.

#include <string>

#include "ocigate/config/config.hpp"
#include "ocigate/policy/policy.hpp"
#include "ocigate/signature/trust.hpp"

namespace ocigate::server {

struct CheckOptions {
  std::string reference;
  std::string format = "table";  // table | json
  std::string os = "linux";
  std::string architecture = "amd64";
};

int check_image(const config::Config& config, policy::Policy policy, signature::TrustStore trust,
                const CheckOptions& options);

}  // namespace ocigate::server
