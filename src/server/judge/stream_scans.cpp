// Stream scanning (judge/stream_scans.hpp): if an image now breaks the policy because of a layer,
// the connection is cut before the last byte, the verdict flips to block (later manifest requests
// get the 403), and the layer is refused from then on under this policy version.

#include <charconv>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "ocigate/layers/merge.hpp"
#include "ocigate/layers/scan.hpp"
#include "ocigate/server/log.hpp"
#include "judge/stream_scans.hpp"
#include "pull/upstream_call.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

// Passes a blob through and asks `allows` before handing out the piece that completes it.
class GatedSource final : public BodySource {
 public:
  GatedSource(std::unique_ptr<BodySource> inner, std::uint64_t length, std::function<asio::awaitable<bool>()> allows)
      : inner_(std::move(inner)), length_(length), allows_(std::move(allows)) {}

  const char* source() const override { return inner_->source(); }

  asio::awaitable<Result<std::size_t>> next(std::string& out) override {
    auto n = co_await inner_->next(out);
    if (!n || *n == 0) co_return n;
    sent_ += *n;
    if (sent_ >= length_ && !judged_) {
      judged_ = true;
      if (!co_await allows_()) {
        out.clear();
        co_return Error{Errc::denied, "layer breaks the policy; transfer cut before its last byte"};
      }
    }
    co_return n;
  }

 private:
  std::unique_ptr<BodySource> inner_;
  std::uint64_t length_;
  std::function<asio::awaitable<bool>()> allows_;
  std::uint64_t sent_ = 0;
  bool judged_ = false;
};

// Whether a blocking violation names this layer (findings say "layer sha256:<12 hex>").
bool introduced_by(const policy::Verdict& verdict, const std::string& layer) {
  const auto colon = layer.find(':');
  const std::string short_digest = layer.substr(0, std::min(layer.size(), colon + 1 + 12));
  for (const auto* finding : verdict.violations()) {
    if (finding->action == policy::Action::block && finding->evidence.find(short_digest) != std::string::npos) return true;
  }
  return false;
}

// Facts from the layers scanned so far that no layer still unscanned can change: secret files
// (judged in every layer) and final-filesystem findings of layers above the highest unscanned one.
// Users and packages wait for the complete picture.
policy::FilesystemFacts certain_facts(const std::vector<layers::LayerReport>& reports, std::size_t highest_unscanned) {
  policy::FilesystemFacts facts = layers::merge(reports);
  auto below_unscanned = [&](const policy::FileFinding& f) {
    for (std::size_t i = highest_unscanned + 1; i < reports.size(); ++i) {
      if (reports[i].digest == f.layer) return false;
    }
    return true;
  };
  std::erase_if(facts.setuid_files, below_unscanned);
  std::erase_if(facts.installers, below_unscanned);
  facts.has_passwd = false;
  facts.users.clear();
  facts.packages.clear();
  return facts;
}

}  // namespace

void StreamScans::watch(const Target& target, const policy::ImageFacts& facts, const oci::Manifest& manifest,
                         const std::string& client) {
  auto image = std::make_shared<StreamImage>();
  image->key = stream_key(facts);
  image->target = target;
  image->facts = facts;
  image->layers = manifest.layers;
  image->client = client;
  watch_.add(std::move(image));
}

bool StreamScans::watched(const policy::ImageFacts& facts) const { return watch_.watching(stream_key(facts)); }

// One scan per layer digest at a time; a stored report answers at once.
asio::awaitable<std::optional<layers::LayerReport>> StreamScans::stream_report(Target target, oci::Descriptor layer) {
  if (layers::foreign_layer(layer.media_type)) co_return layers::foreign_report(layer.digest, layer.media_type);
  if (auto stored = reports_.stored_report(layer.digest)) co_return stored;
  // A named function object: GCC 12 destroys a capturing temporary in a co_await argument twice.
  std::function<asio::awaitable<std::optional<layers::LayerReport>>()> work = [this, target, layer]() {
    return scan_following(target, layer);
  };
  co_return co_await scan_flights_.run(layer.digest, work);
}

asio::awaitable<void> StreamScans::scan_ahead(Target target, oci::Descriptor layer) {
  auto scan = stream_report(std::move(target), std::move(layer));  // by-value arguments outside the co_await (GCC 12)
  (void)co_await std::move(scan);
}

// Scans the layer from the fetch clients follow (or from the cache when it is already there).
asio::awaitable<std::optional<layers::LayerReport>> StreamScans::scan_following(Target target, oci::Descriptor layer) {
  if (store_.blob_size(layer.digest)) {
    co_return co_await reports_.report(target, layer, std::chrono::steady_clock::time_point::max());
  }
  auto fetch = reports_.fetches().join(layer.digest, *target.client, target.repo, scope_for(target.repo));
  auto scan = reports_.scan_fetch(fetch, layer, std::chrono::steady_clock::time_point::max());
  auto report = co_await std::move(scan);
  if (!report) {
    log::warn("layer scan stopped: the fetch failed", {{"layer", layer.digest}, {"error", report.error().message}});
    co_return std::nullopt;
  }
  metrics_.record_layer_scan(layers::status_text(report->status));
  co_return std::move(*report);
}

// Re-judges every watched image with this layer once its report is in. False when the layer
// must not be delivered: a blocking violation names it.
asio::awaitable<bool> StreamScans::allows(const std::string& digest) {
  bool allow = true;
  for (const auto& image : watch_.with_layer(digest)) {
    auto layer = std::find_if(image->layers.begin(), image->layers.end(),
                              [&](const oci::Descriptor& d) { return d.digest == digest; });
    auto scan = stream_report(image->target, *layer);  // by-value arguments outside the co_await (GCC 12)
    auto report = co_await std::move(scan);
    if (!report) co_return false;  // the fetch failed: the client is cut anyway
    if (!rejudge(*image, digest)) allow = false;
  }
  // Refused while this transfer ran, by another layer's judgement of its image.
  if (verdicts_.blocked_layer(digest)) allow = false;
  co_return allow;
}

bool StreamScans::rejudge(const StreamImage& image, const std::string& layer) {
  std::vector<layers::LayerReport> reports;
  std::optional<std::size_t> highest_unscanned;
  auto stored = reports_.stored_reports(image.layers);
  for (std::size_t i = 0; i < stored.size(); ++i) {
    auto& report = stored[i];
    if (!report) {
      highest_unscanned = i;
      report.emplace();
      report->digest = image.layers[i].digest;
      report->status = layers::LayerReport::Status::error;
      report->error = "not scanned yet";
    }
    reports.push_back(std::move(*report));
  }
  policy::ImageFacts facts = image.facts;
  facts.filesystem = highest_unscanned ? certain_facts(reports, *highest_unscanned) : layers::merge(reports);
  facts.now = std::chrono::system_clock::now();
  if (refine_) refine_(facts);
  const bool blocked = policy::evaluate(*verdicts_.policy(), facts).decision == policy::Decision::block;
  if (!blocked && highest_unscanned) return true;
  // The final or flipped verdict replaces the one the manifest was answered with.
  policy::Verdict verdict = verdicts_.decide(facts, image.client, 0.0);
  watch_.remove(image.key);
  if (verdict.decision != policy::Decision::block) return true;
  // The image is blocked: this transfer is cut, so no client completes the image. Every layer
  // that itself carries a blocking violation is refused from now on, whichever layer's transfer
  // found it: the image is no longer watched, and a client may be on that layer or ask for it
  // later (another client's concurrent download, or a layer scanned as it was pulled ahead).
  bool culprit = false;
  for (const auto& each : image.layers) {
    if (!introduced_by(verdict, each.digest)) continue;
    verdicts_.block_layer(each.digest, verdict.denied_message());
    culprit = culprit || each.digest == layer;
  }
  log::warn("image breaks the policy after its manifest was served; cutting a layer transfer",
            {{"image", verdict.image}, {"digest", verdict.digest}, {"layer", layer}, {"layer_refused", culprit},
             {"checks", nlohmann::json(verdict.violated_checks(policy::Action::block))}});
  return false;
}

// Wraps a blob answer of a watched layer. A range is judged before its first byte; a whole blob
// before its last.
asio::awaitable<Reply> StreamScans::gate_blob(Reply reply, const std::string& digest) {
  auto images = watch_.with_layer(digest);
  if (images.empty() || !reply.stream) co_return reply;
  std::uint64_t length = 0;
  const auto header = reply.head[http::field::content_length];
  const bool whole = reply.head.result() == http::status::ok &&
                     std::from_chars(header.data(), header.data() + header.size(), length).ec == std::errc{};
  if (!whole) {
    if (co_await allows(digest)) co_return reply;
    co_return error_reply(Errc::denied, verdicts_.blocked_layer(digest).value_or(
                                            "layer " + digest + " could not be inspected; retry the pull"));
  }
  const auto& layers_of = images.front()->layers;
  auto layer = *std::find_if(layers_of.begin(), layers_of.end(), [&](const oci::Descriptor& d) { return d.digest == digest; });
  // Start scanning now, alongside the transfer.
  asio::co_spawn(executor_, stream_report(images.front()->target, layer), asio::detached);
  reply.stream = std::make_unique<GatedSource>(std::move(reply.stream), length,
                                               [this, digest]() { return allows(digest); });
  co_return reply;
}

}  // namespace ocigate::server
