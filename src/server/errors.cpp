#include "ocigate/server/errors.hpp"

#include <nlohmann/json.hpp>

namespace ocigate::server {

unsigned http_status(Errc code) {
  switch (code) {
    case Errc::ok: return 200;
    case Errc::name_invalid:
    case Errc::manifest_invalid:
    case Errc::digest_invalid:
    case Errc::size_invalid: return 400;
    case Errc::unauthorized: return 401;
    case Errc::denied: return 403;
    case Errc::name_unknown:
    case Errc::manifest_unknown:
    case Errc::blob_unknown: return 404;
    case Errc::unsupported: return 405;
    case Errc::range_invalid: return 416;
    case Errc::too_many_requests: return 429;
    case Errc::upstream_error:
    case Errc::digest_mismatch: return 502;
    case Errc::upstream_busy:
    case Errc::cancelled:
    case Errc::storage_error: return 503;
    case Errc::upstream_timeout: return 504;
    case Errc::config_invalid:
    case Errc::internal: return 500;
  }
  return 500;
}

std::string_view oci_code(Errc code) {
  switch (code) {
    case Errc::name_invalid: return "NAME_INVALID";
    case Errc::name_unknown: return "NAME_UNKNOWN";
    case Errc::manifest_invalid: return "MANIFEST_INVALID";
    case Errc::manifest_unknown: return "MANIFEST_UNKNOWN";
    case Errc::blob_unknown: return "BLOB_UNKNOWN";
    case Errc::digest_invalid: return "DIGEST_INVALID";
    case Errc::size_invalid: return "SIZE_INVALID";
    case Errc::range_invalid: return "RANGE_INVALID";
    case Errc::unsupported: return "UNSUPPORTED";
    case Errc::unauthorized: return "UNAUTHORIZED";
    case Errc::denied: return "DENIED";
    case Errc::too_many_requests: return "TOOMANYREQUESTS";
    case Errc::upstream_busy:
    case Errc::upstream_timeout:
    case Errc::upstream_error:
    case Errc::digest_mismatch:
    case Errc::cancelled:
    case Errc::storage_error:
    case Errc::config_invalid:
    case Errc::internal:
    case Errc::ok: return "UNAVAILABLE";
  }
  return "UNAVAILABLE";
}

std::string error_body(Errc code, std::string_view message, const nlohmann::json* detail) {
  nlohmann::json error = {{"code", oci_code(code)}, {"message", message}};
  if (detail) error["detail"] = *detail;
  return nlohmann::json{{"errors", nlohmann::json::array({error})}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace ocigate::server
