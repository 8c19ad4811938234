#include "judge/image_judge.hpp"

#include <chrono>

#include "judge/sources.hpp"
#include "ocigate/oci/reference.hpp"
#include "records.hpp"

namespace ocigate::server {

ImageJudge::ImageJudge(cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy, Content& content,
                       BlobFetches& fetches, boost::asio::any_io_executor executor)
    : ImageJudge(store, metrics, policy, fetches, std::move(executor), {}) {
  sources_.push_back(std::make_unique<ConfigSource>(content));
  sources_.push_back(std::make_unique<SignatureSource>(content, store, metrics, policy));
  sources_.push_back(std::make_unique<LayerSource>(reports_, streams_, verdicts_, policy));
}

ImageJudge::ImageJudge(cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy, BlobFetches& fetches,
                       boost::asio::any_io_executor executor, std::vector<std::unique_ptr<FactSource>> sources)
    : store_(store),
      policy_(policy),
      verdicts_(store, metrics, policy),
      blob_access_(store, metrics, policy),
      reports_(store, metrics, fetches),
      streams_(store, metrics, reports_, verdicts_, std::move(executor)),
      sources_(std::move(sources)) {}

// What the names alone tell. A platform manifest pulled by digest after its index was pulled by
// tag is judged under that tag (pinned-reference reads it).
policy::ImageFacts ImageJudge::names(const ImageRequest& image) const {
  policy::ImageFacts facts;
  facts.upstream = image.target.upstream->name;
  facts.repository = image.target.repo;
  facts.reference = image.reference;
  if (oci::looks_like_digest(image.reference)) {
    if (auto via_index = store_.get_record(records::index_reference, image.data.digest)) facts.reference = *via_index;
  }
  facts.digest = image.data.digest;
  facts.manifest_annotations = image.manifest.annotations;
  facts.now = std::chrono::system_clock::now();
  return facts;
}

boost::asio::awaitable<policy::Verdict> ImageJudge::judge(const ImageRequest& image) {
  const auto started = std::chrono::steady_clock::now();
  policy::ImageFacts facts = names(image);
  std::optional<std::chrono::seconds> max_age;
  for (const auto& source : sources_) {
    auto age = source->max_age(image);
    if (age && (!max_age || *age < *max_age)) max_age = age;
  }
  if (auto cached = verdicts_.cached(facts, max_age)) {
    bool pending = false;
    for (const auto& source : sources_) pending = pending || source->pending(image, facts);
    if (!pending) {
      verdicts_.audit(*cached, image.client, true);
      co_return *cached;
    }
  }
  const bool checks_on = policy::any_check_on(*policy_.get(), image.target.repo_key);
  if (checks_on) {
    for (const auto& source : sources_) co_await source->gather(image, facts);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  policy::Verdict verdict = verdicts_.decide(facts, image.client, seconds);
  if (checks_on) {
    for (const auto& source : sources_) source->judged(image, facts, verdict);
  }
  co_return verdict;
}

std::optional<std::string> ImageJudge::refused_layer(const std::string& digest) {
  if (policy_.get()->layer_scan == policy::LayerScan::off) return std::nullopt;
  return verdicts_.blocked_layer(digest);
}

boost::asio::awaitable<Reply> ImageJudge::gate_blob(Reply reply, const std::string& digest) {
  co_return co_await streams_.gate_blob(std::move(reply), digest);
}

}  // namespace ocigate::server
