#pragma once
// The mirror's own endpoints: /metrics (Prometheus text), /healthz (alive), /readyz (ready:
// cache open, config loaded, not stopping) and GET /ocigate/v1/verdicts/<digest> (the latest
// stored verdict of a manifest, with its package inventory).

#include <atomic>
#include <optional>
#include <string_view>

#include "ocigate/cache/store.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "pull/proxy.hpp"
#include "reply.hpp"

namespace ocigate::server {

class LocalRoutes {
 public:
  LocalRoutes(const config::Config& config, cache::Store& store, metrics::Metrics& metrics, Proxy& proxy,
              const std::atomic<bool>& stopping)
      : config_(config), store_(store), metrics_(metrics), proxy_(proxy), stopping_(stopping) {}

  static bool probe(std::string_view path) { return path == "/healthz" || path == "/readyz"; }
  // The answer for /metrics and the probes, which every listener serves; nullopt for other paths.
  std::optional<Reply> common(std::string_view path);
  // The verdict API (main listener only); nullopt for other paths.
  std::optional<Reply> api(std::string_view path);

 private:
  Reply metrics_reply();
  Reply verdict_reply(const std::string& digest);

  const config::Config& config_;
  cache::Store& store_;
  metrics::Metrics& metrics_;
  Proxy& proxy_;
  const std::atomic<bool>& stopping_;
};

}  // namespace ocigate::server
