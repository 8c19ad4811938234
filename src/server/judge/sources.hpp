#pragma once
// The fact sources of today's judge, in the order it runs them: the image config, signatures
// (policy.trust), and layer inspection (policy.layer_scan).

#include <memory>

#include <boost/asio/awaitable.hpp>

#include "judge/fact_source.hpp"
#include "judge/layer_reports.hpp"
#include "judge/policy_holder.hpp"
#include "judge/stream_scans.hpp"
#include "judge/verdicts.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/signature/evaluate.hpp"

namespace ocigate::server {

// facts.config: the image config blob, through the cache (verified like any blob); left unset
// (checks say "unknown") when it cannot be had or is not a JSON object.
class ConfigSource final : public FactSource {
 public:
  explicit ConfigSource(Content& content) : content_(content) {}
  boost::asio::awaitable<void> gather(const ImageRequest& image, policy::ImageFacts& facts) override;

 private:
  Content& content_;
};

// facts.signature: the signatures policy.trust asks for (cosign `.sig` tags, sigstore bundles and
// Notation envelopes among the referrers), fetched through the cache and judged by the signature
// module. A platform manifest reached through an index is also accepted on the index's
// signatures (cosign signs the index). A verdict that depends on signatures follows the tag TTL,
// so a signature added later counts.
class SignatureSource final : public FactSource {
 public:
  SignatureSource(Content& content, cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy)
      : content_(content), store_(store), metrics_(metrics), policy_(policy) {}
  std::optional<std::chrono::seconds> max_age(const ImageRequest& image) const override;
  boost::asio::awaitable<void> gather(const ImageRequest& image, policy::ImageFacts& facts) override;

 private:
  boost::asio::awaitable<signature::Subject> subject(const Target& target, const signature::FetchPlan& plan,
                                                     const std::string& digest, std::int64_t size, bool via_index);
  boost::asio::awaitable<void> cosign_tag(const Target& target, signature::Subject& subject);
  boost::asio::awaitable<void> referrer_envelopes(const Target& target, const signature::FetchPlan& plan,
                                                  signature::Subject& subject);
  void count(const signature::Evaluation& evaluation, std::chrono::steady_clock::duration elapsed);

  Content& content_;
  cache::Store& store_;
  metrics::Metrics& metrics_;
  PolicyHolder& policy_;
};

// facts.filesystem: layer inspection. prefetch scans every layer before the verdict, bounded by
// prefetch_timeout; stream uses only what is already scanned. An image judged without its
// layers is watched, so a client's pull of a layer finishes the judgement (StreamScans).
class LayerSource final : public FactSource {
 public:
  LayerSource(LayerReports& reports, StreamScans& streams, Verdicts& verdicts, PolicyHolder& policy)
      : reports_(reports), streams_(streams), verdicts_(verdicts), policy_(policy) {}
  bool pending(const ImageRequest& image, const policy::ImageFacts& facts) const override;
  boost::asio::awaitable<void> gather(const ImageRequest& image, policy::ImageFacts& facts) override;
  void judged(const ImageRequest& image, const policy::ImageFacts& facts, const policy::Verdict& verdict) override;

 private:
  LayerReports& reports_;
  StreamScans& streams_;
  Verdicts& verdicts_;
  PolicyHolder& policy_;
};

}  // namespace ocigate::server
