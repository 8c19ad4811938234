#pragma once
// Layer inspection's reports: each layer of an image fetched into the cache through the same
// single-flight, verified blob fetches that serve clients, scanned once on the scan thread, and its
// report kept per layer digest, so a base layer shared by many images is read once.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "ocigate/cache/store.hpp"
#include "ocigate/layers/report.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/oci/manifest.hpp"
#include "ocigate/policy/filesystem.hpp"
#include "pull/blob_fetch.hpp"
#include "pull/routing.hpp"

namespace ocigate::server {

class LayerReports {
 public:
  using Clock = std::chrono::steady_clock;

  LayerReports(cache::Store& store, metrics::Metrics& metrics, BlobFetches& fetches)
      : store_(store), metrics_(metrics), fetches_(fetches) {}

  // policy.layer_scan: prefetch. Every layer fetched (in parallel) and scanned within timeout,
  // merged into the final filesystem; nullopt when they were not all in by then.
  boost::asio::awaitable<std::optional<policy::FilesystemFacts>> scan(const Target& target,
                                                                      const oci::Manifest& manifest,
                                                                      std::chrono::seconds timeout);
  // One layer's report: stored, or scanned now from the cache or from its fetch; nullopt when the
  // deadline passed first.
  boost::asio::awaitable<std::optional<layers::LayerReport>> report(const Target& target, const oci::Descriptor& layer,
                                                                    Clock::time_point deadline);
  // Scans a layer while its fetch streams in, and stores the report. An error when the fetch
  // fails or the deadline passes first.
  boost::asio::awaitable<Result<layers::LayerReport>> scan_fetch(std::shared_ptr<BlobFetch> fetch,
                                                                 oci::Descriptor layer, Clock::time_point deadline);

  std::optional<layers::LayerReport> stored_report(const std::string& digest);
  // Each layer's stored report (foreign layers reported without a fetch); nullopt where not scanned.
  std::vector<std::optional<layers::LayerReport>> stored_reports(const std::vector<oci::Descriptor>& layers);
  // The merged facts when every layer's report is stored already, else nullopt.
  std::optional<policy::FilesystemFacts> stored_filesystem(const oci::Manifest& manifest);

  BlobFetches& fetches() { return fetches_; }

 private:
  boost::asio::awaitable<bool> wait_fetch(const std::shared_ptr<BlobFetch>& fetch, Clock::time_point deadline);
  void store_report(const layers::LayerReport& report);

  cache::Store& store_;
  metrics::Metrics& metrics_;
  BlobFetches& fetches_;
  boost::asio::thread_pool scan_pool_{1};  // layer scans: CPU work kept off the I/O threads
};

}  // namespace ocigate::server
