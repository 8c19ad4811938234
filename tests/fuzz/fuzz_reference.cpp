// Repository names, tags, request targets and query parameters: everything a client puts in a URL.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ocigate/oci/reference.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace ocigate::oci;

  const bool name_ok = valid_repository_name(text);
  // The grammar admits neither "..", "//", upper case nor anything past 255 characters.
  if (name_ok && (text.size() > 255 || text.find("..") != std::string_view::npos ||
                  text.find("//") != std::string_view::npos || text.find('%') != std::string_view::npos)) {
    std::abort();
  }
  if (valid_tag(text) && (text.empty() || text.size() > 128)) std::abort();
  (void)looks_like_digest(text);

  const Route route = parse_route(text);
  if (route.kind == RouteKind::manifest || route.kind == RouteKind::blob) {
    (void)valid_repository_name(route.name);
    (void)looks_like_digest(route.reference);
    (void)valid_tag(route.reference);
  }
  (void)query_param(route.query, "ns");
  (void)query_param(text, "n");
  (void)query_param(text, "");
  return 0;
}
