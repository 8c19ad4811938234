#pragma once
// `ocigate check [--config FILE] [--format table|json] <reference>`: the mirror's verdict on one
// image, fetched straight from its upstream. Exit 0 allowed (warnings printed), 1 blocked,
// 2 usage, configuration or network errors.

#include <string>

#include "ocigate/server/settings.hpp"

namespace ocigate::cli {

struct CheckOptions {
  std::string reference;
  std::string format = "table";  // table | json
  std::string os = "linux";
  std::string architecture = "amd64";
};

int check_image(server::Settings settings, const CheckOptions& options);

}  // namespace ocigate::cli
