#pragma once
// Verdicts: the policy evaluated on an image's facts, kept per (policy version and trust keys,
// image, tag or "by digest") in the cache's records for the UTC day it was reached on, audited
// (one JSON line per decision) and counted. Also what was learnt with them: the image's package
// inventory, and layers refused after their manifest was served (stream scanning).

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ocigate/cache/store.hpp"
#include "ocigate/common/lru_map.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/policy/engine.hpp"
#include "judge/policy_holder.hpp"
#include "ocigate/signature/trust.hpp"

namespace ocigate::server {

class Verdicts {
 public:
  Verdicts(cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy)
      : store_(store), metrics_(metrics), policy_(policy) {}

  // The cached verdict for these facts under the policy in force, if any, and no older than
  // max_age when given (verdicts that depend on signatures follow the tag's TTL).
  std::optional<policy::Verdict> cached(const policy::ImageFacts& facts,
                                        std::optional<std::chrono::seconds> max_age = std::nullopt);
  // Evaluates, stores, audits and counts. facts.config may be missing (checks say "unknown").
  policy::Verdict decide(const policy::ImageFacts& facts, const std::string& client, double started_seconds_ago);
  // The latest stored verdict for a manifest digest (the verdict API), with the image's package
  // inventory when its layers were inspected.
  std::optional<std::string> stored_verdict(const std::string& digest);
  // Whether a verdict with inspected layers (and so an inventory) was ever stored for the digest.
  bool has_inventory(const std::string& digest);
  // Layers that broke the policy after their manifest was served (layer_scan: stream) are
  // refused under the policy version in force; `why` is the 403's message.
  void block_layer(const std::string& digest, const std::string& why);
  std::optional<std::string> blocked_layer(const std::string& digest);
  // Verdicts and layer refusals kept under another policy version or other trust keys can never be
  // read again: drops them. Call at start and after each reload.
  void purge_stale();
  // Audit line for a served request whose verdict came from the cache.
  void audit(const policy::Verdict& verdict, const std::string& client, bool cached);

  std::shared_ptr<const policy::Policy> policy() const { return policy_.get(); }
  std::shared_ptr<const signature::TrustStore> trust() const { return policy_.trust(); }

 private:
  // A stored verdict as read back: the UTC day it holds for, when it was reached, the verdict.
  struct Remembered {
    std::string day;
    long long judged_at = 0;
    policy::Verdict verdict;
  };

  std::string cache_key(const policy::Policy& policy, const policy::ImageFacts& facts) const;
  static std::optional<Remembered> parse_record(std::string_view record);
  std::optional<Remembered> recall(const std::string& key);
  void remember(const std::string& key, Remembered entry, bool replace);
  void forget_all();

  cache::Store& store_;
  metrics::Metrics& metrics_;
  PolicyHolder& policy_;
  // Parsed verdict records by cache key, in front of the store: a verdict-cache hit is a map
  // lookup, not a RocksDB get and a JSON parse. Mirrors what judge() stores; bounded (the least
  // recently used goes) and cleared with the records of other policy versions.
  std::mutex memo_mutex_;
  LruMap<Remembered> memo_{4096};
};

}  // namespace ocigate::server
