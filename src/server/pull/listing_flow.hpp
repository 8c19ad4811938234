#pragma once
// Listings passed through from the upstream: tags (GET /v2/<name>/tags/list, paginated with a Link
// rewritten into the client's namespace) and referrers (GET /v2/<name>/referrers/<digest>, or the
// `sha256-<hex>` tag fallback where the upstream lacks the API). Both are kept in the cache's
// records and served stale, with a Warning, when the upstream fails.

#include <string>

#include <boost/asio/awaitable.hpp>

#include "ocigate/cache/store.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "pull/manifest_flow.hpp"
#include "pull/routing.hpp"

namespace ocigate::server {

class ListingFlow {
 public:
  ListingFlow(cache::Store& store, metrics::Metrics& metrics, ManifestFlow& manifests)
      : store_(store), metrics_(metrics), manifests_(manifests) {}

  boost::asio::awaitable<Reply> tags(const Target& target, const std::string& query);
  // Kept for the upstream's tag_ttl (signature lookups ask for them on every verdict).
  boost::asio::awaitable<Reply> referrers(const Target& target, const std::string& digest, const std::string& query);

 private:
  boost::asio::awaitable<Reply> fetch_referrers(const Target& target, const std::string& digest,
                                                const std::string& query);

  cache::Store& store_;
  metrics::Metrics& metrics_;
  ManifestFlow& manifests_;
};

}  // namespace ocigate::server
