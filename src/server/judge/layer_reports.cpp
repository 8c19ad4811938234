// Layer inspection's reports (judge/layer_reports.hpp). Under policy.layer_scan: prefetch, whatever
// is not done by prefetch_timeout is left out: the manifest is then judged on what is known, the
// filesystem checks say "unknown", and the stream scan takes over (judge/stream_scans.cpp).

#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "ocigate/layers/merge.hpp"
#include "ocigate/layers/scan.hpp"
#include "ocigate/server/log.hpp"
#include "judge/layer_reports.hpp"
#include "records.hpp"
#include "pull/upstream_call.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

layers::LayerReport failed_report(const oci::Descriptor& layer, std::string why) {
  layers::LayerReport report;
  report.digest = layer.digest;
  report.media_type = layer.media_type;
  report.status = layers::LayerReport::Status::error;
  report.error = std::move(why);
  return report;
}

// Reads a committed blob from the cache through the scanner. Runs on the scan thread: a big
// layer takes seconds of CPU, which must not stall the I/O threads.
layers::LayerReport scan_cached(cache::Store& store, const oci::Descriptor& layer) {
  auto reader = store.open_blob(layer.digest);
  if (!reader) return failed_report(layer, "layer not in the cache");
  layers::LayerScanner scanner(layer.digest, layer.media_type);
  std::string piece;
  for (std::uint64_t offset = 0; offset < reader->size();) {
    auto n = reader->read(offset, 1 << 20, piece);
    if (!n || *n == 0) return failed_report(layer, "cache read failed while scanning");
    offset += *n;
    if (!scanner.feed(std::string_view(piece))) break;  // the report says why
  }
  return scanner.finish();
}

asio::awaitable<bool> feed_scanner(layers::LayerScanner* scanner, const std::string* piece) {
  co_return scanner->feed(std::string_view(*piece));
}

asio::awaitable<layers::LayerReport> finish_scanner(layers::LayerScanner* scanner) { co_return scanner->finish(); }

}  // namespace

// Scans a layer while its fetch streams in (from the cache once committed), feeding the scan
// thread piece by piece, so the report is ready soon after the last byte rather than a whole
// scan later. Stores the report. An error when the fetch fails or the deadline passes first.
asio::awaitable<Result<layers::LayerReport>> LayerReports::scan_fetch(std::shared_ptr<BlobFetch> fetch,
                                                               oci::Descriptor layer, Clock::time_point deadline) {
  auto source = fetches_.follow(fetch, deadline);
  layers::LayerScanner scanner(layer.digest, layer.media_type);
  std::string piece;
  for (bool more = true; more;) {
    auto n = co_await source->next(piece);
    if (!n) co_return n.error();
    if (*n == 0) break;
    more = co_await asio::co_spawn(scan_pool_, feed_scanner(&scanner, &piece), asio::use_awaitable);
  }
  // A scan that stopped early (a bad archive) still needs the verified blob before its report counts
  // (not its commit: the report is about the bytes, which match).
  if (!co_await wait_fetch(fetch, deadline)) co_return Error{Errc::upstream_timeout, "deadline passed"};
  auto snap = fetch->snapshot();
  if (snap.phase == BlobFetch::Phase::failed) co_return snap.error;
  layers::LayerReport report = co_await asio::co_spawn(scan_pool_, finish_scanner(&scanner), asio::use_awaitable);
  store_report(report);
  co_return report;
}

std::optional<layers::LayerReport> LayerReports::stored_report(const std::string& digest) {
  auto record = store_.get_record(records::layer_report, digest);
  if (!record) return std::nullopt;
  auto json = nlohmann::json::parse(*record, nullptr, false);
  if (json.is_discarded()) return std::nullopt;
  return layers::LayerReport::from_json(json);
}

// True once the fetch's bytes are verified (its commit may still run) or it failed; false when the
// deadline passed first.
asio::awaitable<bool> LayerReports::wait_fetch(const std::shared_ptr<BlobFetch>& fetch, Clock::time_point deadline) {
  for (;;) {
    auto seen = fetch->notifier().generation();
    auto snap = fetch->snapshot();
    if (snap.verified || snap.phase == BlobFetch::Phase::failed) co_return true;
    auto now = Clock::now();
    if (now >= deadline) co_return false;
    co_await fetch->notifier().wait(seen, std::min<Clock::duration>(deadline - now, std::chrono::seconds(1)));
  }
}

asio::awaitable<std::optional<layers::LayerReport>> LayerReports::report(const Target& target,
                                                                          const oci::Descriptor& layer,
                                                                          Clock::time_point deadline) {
  if (layers::foreign_layer(layer.media_type)) co_return layers::foreign_report(layer.digest, layer.media_type);
  if (auto stored = stored_report(layer.digest)) co_return stored;
  if (!store_.blob_size(layer.digest)) {
    auto fetch = fetches_.join(layer.digest, *target.client, target.repo, scope_for(target.repo));
    auto following = scan_fetch(fetch, layer, deadline);
    auto scanned = co_await std::move(following);
    if (scanned) co_return std::move(*scanned);
    if (Clock::now() >= deadline) co_return std::nullopt;
    co_return failed_report(layer, "layer could not be fetched: " + scanned.error().message);
  }
  if (Clock::now() >= deadline) co_return std::nullopt;
  auto from_cache = [this, layer]() -> asio::awaitable<layers::LayerReport> { co_return scan_cached(store_, layer); };
  layers::LayerReport scanned = co_await asio::co_spawn(scan_pool_, from_cache(), asio::use_awaitable);
  if (scanned.status != layers::LayerReport::Status::error || scanned.error != "layer not in the cache") {
    store_report(scanned);
  }
  co_return scanned;
}

void LayerReports::store_report(const layers::LayerReport& report) {
  (void)store_.put_record(records::layer_report, report.digest,
                          report.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// The merged facts when every layer's report is stored already, else nullopt.
std::vector<std::optional<layers::LayerReport>> LayerReports::stored_reports(const std::vector<oci::Descriptor>& layers) {
  std::vector<std::optional<layers::LayerReport>> reports;
  reports.reserve(layers.size());
  for (const auto& layer : layers) {
    reports.push_back(layers::foreign_layer(layer.media_type) ? layers::foreign_report(layer.digest, layer.media_type)
                                                              : stored_report(layer.digest));
  }
  return reports;
}

std::optional<policy::FilesystemFacts> LayerReports::stored_filesystem(const oci::Manifest& manifest) {
  std::vector<layers::LayerReport> reports;
  for (auto& report : stored_reports(manifest.layers)) {
    if (!report) return std::nullopt;
    reports.push_back(std::move(*report));
  }
  return layers::merge(reports);
}

// nullopt when the scan did not finish by policy.prefetch_timeout.
asio::awaitable<std::optional<policy::FilesystemFacts>> LayerReports::scan(const Target& target,
                                                                          const oci::Manifest& manifest,
                                                                          std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  // Start every fetch at once so layers download in parallel while earlier ones are scanned.
  for (const auto& layer : manifest.layers) {
    // Presence is enough here; report() parses the stored report once.
    if (layers::foreign_layer(layer.media_type) || store_.blob_size(layer.digest) ||
        store_.get_record(records::layer_report, layer.digest)) {
      continue;
    }
    (void)fetches_.join(layer.digest, *target.client, target.repo, scope_for(target.repo));
  }
  std::vector<layers::LayerReport> reports;
  for (const auto& layer : manifest.layers) {
    auto found = co_await report(target, layer, deadline);
    if (!found) {
      log::warn("layer scan unfinished at prefetch_timeout; judged without layers",
                {{"repository", target.repo}, {"layer", layer.digest}, {"timeout_s", timeout.count()}});
      metrics_.record_layer_scan("timeout");
      co_return std::nullopt;
    }
    metrics_.record_layer_scan(layers::status_text(found->status));
    reports.push_back(std::move(*found));
  }
  co_return layers::merge(reports);
}

}  // namespace ocigate::server
