#pragma once
// policy.blob_access: referenced. The blobs of every image the judge allowed or warned (and of
// artifacts: signatures, attestations) are recorded as reachable; a blob nobody reached through
// such a manifest is refused, so nobody sidesteps the gate by pulling layers by digest.

#include <string>
#include <vector>

#include "judge/policy_holder.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/metrics/metrics.hpp"

namespace ocigate::server {

class BlobAccess {
 public:
  BlobAccess(cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy)
      : store_(store), metrics_(metrics), policy_(policy) {}

  // Records these blobs as reachable (kept in the cache's records: a restart keeps them).
  void allow(const std::vector<std::string>& digests);
  // Whether a blob may be served. A refusal is counted (ocigate_unreferenced_blob_requests_total);
  // audit mode counts and serves.
  bool allowed(const std::string& digest);

 private:
  cache::Store& store_;
  metrics::Metrics& metrics_;
  PolicyHolder& policy_;
};

}  // namespace ocigate::server
