#pragma once
// The one place that turns an internal Error into what a registry client expects:
// an HTTP status and an OCI error body {"errors":[{"code":...,"message":...,"detail":...}]}.

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "ocigate/common/result.hpp"

namespace ocigate::server {

unsigned http_status(Errc code);
std::string_view oci_code(Errc code);
// detail may be null (omitted).
std::string error_body(Errc code, std::string_view message, const nlohmann::json* detail = nullptr);

}  // namespace ocigate::server
