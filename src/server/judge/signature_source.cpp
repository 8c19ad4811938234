// SignatureSource (judge/sources.hpp): fetching what policy.trust asks for, and counting the results.

#include <algorithm>
#include <chrono>

#include "ocigate/oci/digest.hpp"
#include "ocigate/server/log.hpp"
#include "ocigate/signature/evaluate.hpp"
#include "judge/sources.hpp"
#include "records.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

constexpr std::int64_t max_signature_blob = 4 << 20;  // payloads and envelopes are small
constexpr std::size_t max_signature_layers = 16;
constexpr std::size_t max_referrers = 64;

bool not_found(const Error& error) {
  return error.code == Errc::manifest_unknown || error.code == Errc::name_unknown ||
         error.code == Errc::blob_unknown;
}

}  // namespace

asio::awaitable<void> SignatureSource::cosign_tag(const Target& target, signature::Subject& subject) {
  auto found = co_await content_.manifest_by_tag(target, signature::FetchPlan::cosign_tag(subject.digest));
  if (!found) {
    if (!not_found(found.error())) subject.lookup_error = found.error().message;
    co_return;
  }
  signature::CosignTagSignature tag{*found->bytes, {}};
  auto parsed = oci::parse_manifest(*found->bytes, found->media_type);
  if (parsed) {
    for (std::size_t i = 0; i < parsed->layers.size() && i < max_signature_layers; ++i) {
      auto bytes = co_await content_.small_blob(target, parsed->layers[i], max_signature_blob);
      if (bytes) tag.blobs[parsed->layers[i].digest] = std::move(*bytes);
    }
  }
  subject.cosign_tag = std::move(tag);
}

asio::awaitable<void> SignatureSource::referrer_envelopes(const Target& target, const signature::FetchPlan& plan,
                                                signature::Subject& subject) {
  Reply listing = co_await content_.referrers(target, subject.digest);
  if (listing.head.result() != http::status::ok) {
    subject.lookup_error = "referrers of " + subject.digest + ": " + listing.error;
    co_return;
  }
  auto index = nlohmann::json::parse(listing.body, nullptr, false);
  if (!index.is_object() || !index["manifests"].is_array()) co_return;
  std::size_t seen = 0;
  for (const auto& entry : index["manifests"]) {
    if (!entry.is_object() || ++seen > max_referrers) break;
    const std::string type = entry.value("artifactType", std::string());
    const std::string digest = entry.value("digest", std::string());
    if (std::find(plan.artifact_types.begin(), plan.artifact_types.end(), type) == plan.artifact_types.end()) continue;
    if (!oci::Digest::parse(digest)) continue;
    auto artifact = co_await content_.manifest_by_digest(target, digest);
    if (!artifact) {
      if (!not_found(artifact.error())) subject.lookup_error = artifact.error().message;
      continue;
    }
    auto parsed = oci::parse_manifest(*artifact->bytes, artifact->media_type);
    if (!parsed || parsed->layers.empty()) continue;
    const oci::Descriptor& layer = parsed->layers.front();
    auto bytes = co_await content_.small_blob(target, layer, max_signature_blob);
    if (bytes) subject.envelopes.push_back({digest, type, layer.media_type, std::move(*bytes)});
  }
}

asio::awaitable<signature::Subject> SignatureSource::subject(const Target& target, const signature::FetchPlan& plan,
                                                             const std::string& digest, std::int64_t size,
                                                             bool via_index) {
  signature::Subject found;
  found.digest = digest;
  found.size = size;
  found.via_index = via_index;
  if (plan.cosign) co_await cosign_tag(target, found);
  if (!plan.artifact_types.empty()) co_await referrer_envelopes(target, plan, found);
  co_return found;
}

std::optional<std::chrono::seconds> SignatureSource::max_age(const ImageRequest& image) const {
  const auto plan = signature::fetch_plan(*policy_.trust(), image.target.repo_key);
  if (!plan.required) return std::nullopt;
  return image.target.upstream->tag_ttl;
}

asio::awaitable<void> SignatureSource::gather(const ImageRequest& image, policy::ImageFacts& facts) {
  const auto trust = policy_.trust();  // one snapshot for the plan and the verification
  const std::string& name = image.target.repo_key;
  const auto plan = signature::fetch_plan(*trust, name);
  if (!plan.required) {
    facts.signature = signature::not_required();
    co_return;
  }
  const auto started = std::chrono::steady_clock::now();
  signature::Candidates candidates;
  const auto& data = image.data;
  const auto size = static_cast<std::int64_t>(data.bytes->size());
  candidates.subjects.push_back(co_await subject(image.target, plan, data.digest, size, false));
  if (auto index = store_.get_record(records::index_digest, data.digest)) {
    std::int64_t index_size = -1;
    if (auto cached = store_.get_manifest(*index)) index_size = static_cast<std::int64_t>(cached->bytes.size());
    candidates.subjects.push_back(co_await subject(image.target, plan, *index, index_size, true));
  }
  auto evaluation = signature::evaluate(*trust, name, candidates, std::chrono::system_clock::now());
  count(evaluation, std::chrono::steady_clock::now() - started);
  if (evaluation.facts.incomplete) {
    log::warn("signature lookup failed; the signature check fails closed and is retried on the next pull",
              {{"image", name}, {"digest", data.digest}, {"error", evaluation.facts.message}});
  }
  facts.signature = std::move(evaluation.facts);
}

void SignatureSource::count(const signature::Evaluation& evaluation, std::chrono::steady_clock::duration elapsed) {
  metrics_.record_signature_seconds(std::chrono::duration<double>(elapsed).count());
  bool any = false;
  for (const auto& entry : evaluation.entries) {
    for (const auto& result : entry.results) {
      metrics_.record_signature(signature::format_text(result.format), result.valid() ? "valid" : "invalid");
      any = true;
    }
  }
  if (evaluation.facts.incomplete) {
    metrics_.record_signature("any", "lookup_error");
  } else if (!any) {
    metrics_.record_signature("any", "none_found");
  }
}

}  // namespace ocigate::server
