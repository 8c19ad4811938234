#pragma once
// The policy gate: judges an image manifest before any byte of it is served. Verdicts are cached
// per (policy version, manifest digest, tag or "by digest") in the cache's records, every decision
// goes to the audit log and the metrics, and blobs of allowed images are recorded so that
// `blob_access: referenced` can refuse blobs nobody reached through an allowed manifest.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ocigate/cache/store.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/oci/manifest.hpp"
#include "ocigate/policy/engine.hpp"
#include "ocigate/policy/policy.hpp"

namespace ocigate::server {

// The policy in force; swapped whole on SIGHUP.
class PolicyHolder {
 public:
  explicit PolicyHolder(policy::Policy initial) : policy_(std::make_shared<const policy::Policy>(std::move(initial))) {}
  std::shared_ptr<const policy::Policy> get() const {
    std::lock_guard lock(mutex_);
    return policy_;
  }
  void set(policy::Policy next) {
    auto fresh = std::make_shared<const policy::Policy>(std::move(next));
    std::lock_guard lock(mutex_);
    policy_ = std::move(fresh);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const policy::Policy> policy_;
};

// True for manifests that are not runnable images: cosign signatures and attestations, SBOMs,
// referrers artifacts. They pass the gate so that signing tools keep working through the mirror.
bool is_artifact(const oci::Manifest& manifest, const std::string& reference);

class Gate {
 public:
  Gate(cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy) : store_(store), metrics_(metrics), policy_(policy) {}

  // The cached verdict for these facts under the policy in force, if any.
  std::optional<policy::Verdict> cached(const policy::ImageFacts& facts);
  // Evaluates, stores, audits and counts. facts.config may be missing (checks say "unknown").
  policy::Verdict judge(const policy::ImageFacts& facts, const std::string& client, double started_seconds_ago);
  // Records an allowed or warned image's blobs as reachable (blob_access: referenced).
  void allow_blobs(const std::vector<std::string>& digests);
  // Whether a blob may be served under blob_access (audit mode serves and counts).
  bool blob_allowed(const std::string& digest);
  // The latest stored verdict for a manifest digest (the verdict API).
  std::optional<std::string> stored_verdict(const std::string& digest);
  // Audit line for a served request whose verdict came from the cache.
  void audit(const policy::Verdict& verdict, const std::string& client, bool cached);

  std::shared_ptr<const policy::Policy> policy() const { return policy_.get(); }

 private:
  static std::string cache_key(const policy::Policy& policy, const policy::ImageFacts& facts);

  cache::Store& store_;
  metrics::Metrics& metrics_;
  PolicyHolder& policy_;
};

}  // namespace ocigate::server
