#include "local_routes.hpp"

#include "ocigate/oci/digest.hpp"

namespace ocigate::server {

std::optional<Reply> LocalRoutes::common(std::string_view path) {
  if (path == "/metrics") return metrics_reply();
  if (path == "/healthz") return text_reply(http::status::ok, "ok\n", "health");
  if (path == "/readyz") {
    return stopping_ ? text_reply(http::status::service_unavailable, "stopping\n", "health")
                     : text_reply(http::status::ok, "ready\n", "health");
  }
  return std::nullopt;
}

std::optional<Reply> LocalRoutes::api(std::string_view path) {
  constexpr std::string_view verdicts = "/ocigate/v1/verdicts/";
  if (path.starts_with(verdicts)) return verdict_reply(std::string(path.substr(verdicts.size())));
  return std::nullopt;
}

Reply LocalRoutes::verdict_reply(const std::string& digest) {
  if (!oci::Digest::parse(digest)) {
    Reply bad = error_reply(Errc::digest_invalid, "invalid digest: " + digest);
    bad.route = "verdict";
    return bad;
  }
  auto stored = proxy_.judge().verdicts().stored_verdict(digest);
  Reply reply = stored ? text_reply(http::status::ok, *stored, "verdict")
                       : error_reply(Errc::manifest_unknown, "no verdict recorded for " + digest);
  reply.route = "verdict";
  reply.head.set(http::field::content_type, "application/json");
  return reply;
}

Reply LocalRoutes::metrics_reply() {
  auto stats = store_.stats();
  metrics_.cache_size_bytes().Set(static_cast<double>(stats.size_bytes));
  metrics_.cache_blobs().Set(static_cast<double>(stats.blob_count));
  metrics_.cache_max_size_bytes().Set(static_cast<double>(config_.storage.max_size));
  metrics_.set_evictions(static_cast<double>(stats.evictions), static_cast<double>(stats.evicted_bytes));
  metrics_.set_lost_files(static_cast<double>(stats.lost_files));
  for (const auto& upstream : config_.upstreams) {
    if (upstream.max_concurrent_fetches == 0) continue;
    // The proxy owns the clients; resolving "?ns=<upstream>" is its public way to reach one.
    oci::Route route{oci::RouteKind::manifest, "probe", "latest", "ns=" + upstream.name};
    if (auto target = proxy_.resolve(route); target && target->client) {
      metrics_.set_fetch_slot_timeouts(upstream.name, static_cast<double>(target->client->stats().fetch_slot_timeouts));
    }
  }
  Reply reply = text_reply(http::status::ok, metrics_.render(), "metrics");
  reply.head.set(http::field::content_type, "text/plain; version=0.0.4");
  return reply;
}

}  // namespace ocigate::server
