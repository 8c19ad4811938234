#pragma once
// The pull flows: maps a request to an upstream and repository, answers from the cache or
// fetches through single-flight, verifies digests, and builds the Reply. Stream-agnostic: the
// session (plain or TLS) writes what this returns.

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>

#include "blob_fetch.hpp"
#include "flights.hpp"
#include "gate.hpp"
#include "names.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/layers/report.hpp"
#include "ocigate/signature/evaluate.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/oci/reference.hpp"
#include "ocigate/upstream/client.hpp"
#include "reply.hpp"
#include "stream_watch.hpp"

namespace ocigate::server {

// A manifest as served: exact bytes and how to label them.
struct ManifestData {
  std::string digest;
  std::string media_type;
  std::shared_ptr<const std::string> bytes;
  std::string cache = "miss";  // hit | miss | stale
  std::string warning;         // Warning header value when served stale
};

class Proxy {
 public:
  Proxy(const config::Config& config, cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy,
        boost::asio::any_io_executor executor);

  // client: the peer address, for the audit log.
  boost::asio::awaitable<Reply> handle(const http::request<http::empty_body>& request, const std::string& client);
  // The latest verdict stored for a manifest digest, as JSON.
  std::optional<std::string> verdict(const std::string& digest);
  // Drops verdicts no longer readable under the current policy (Gate::purge_stale).
  void purge_stale_verdicts() { gate_.purge_stale(); }
  // Fetches and judges one image the way a pull would (`ocigate check`). An index is resolved to
  // its platform entry for os/architecture.
  boost::asio::awaitable<Result<policy::Verdict>> inspect(const Target& target, const std::string& reference,
                                                          const std::string& os, const std::string& architecture);

  // Resolves a route's name (+ ?ns=) to an upstream and repository. Pure apart from the lookup.
  Result<Target> resolve(const oci::Route& route) const;

 private:
  boost::asio::awaitable<Reply> manifest(const http::request<http::empty_body>& req, const Target& target,
                                         const std::string& reference, const std::string& client);
  // scan_all: wait for every layer's scan whatever policy.layer_scan says (`ocigate check`).
  boost::asio::awaitable<policy::Verdict> judge_image(const Target& target, const std::string& reference,
                                                      const ManifestData& data, const oci::Manifest& manifest,
                                                      const std::string& client, bool scan_all = false);
  boost::asio::awaitable<std::optional<policy::FilesystemFacts>> judge_layers(const Target& target,
                                                                             const oci::Manifest& manifest,
                                                                             const policy::Policy& policy,
                                                                             bool scan_all);
  boost::asio::awaitable<std::optional<nlohmann::json>> load_config(const Target& target,
                                                                    const oci::Descriptor& descriptor);
  void remember_index_reference(const oci::Manifest& index, const std::string& index_digest,
                                const std::string& reference);
  // A small blob (config, signature payload, envelope) through the cache; nullopt when it cannot be had.
  boost::asio::awaitable<std::optional<std::string>> small_blob(const Target& target, const oci::Descriptor& descriptor,
                                                                std::int64_t max_size);
  // Signature lookups (signatures.cpp).
  boost::asio::awaitable<policy::SignatureFacts> verify_signatures(const Target& target, const ManifestData& data,
                                                                   const std::string& image,
                                                                   const signature::TrustStore& trust,
                                                                   const signature::FetchPlan& plan);
  boost::asio::awaitable<signature::Subject> signature_subject(const Target& target, const signature::FetchPlan& plan,
                                                               const std::string& digest, std::int64_t size,
                                                               bool via_index);
  boost::asio::awaitable<void> cosign_tag_signature(const Target& target, signature::Subject& subject);
  boost::asio::awaitable<void> referrer_envelopes(const Target& target, const signature::FetchPlan& plan,
                                                  signature::Subject& subject);
  void record_signature_metrics(const signature::Evaluation& evaluation, std::chrono::steady_clock::duration elapsed);
  // Layer inspection (layer_scan.cpp).
  boost::asio::awaitable<std::optional<policy::FilesystemFacts>> scan_layers(const Target& target,
                                                                            const oci::Manifest& manifest,
                                                                            std::chrono::seconds timeout);
  boost::asio::awaitable<std::optional<layers::LayerReport>> layer_report(
      const Target& target, const oci::Descriptor& layer, std::chrono::steady_clock::time_point deadline);
  boost::asio::awaitable<bool> wait_fetch(const std::shared_ptr<BlobFetch>& fetch,
                                          std::chrono::steady_clock::time_point deadline);
  boost::asio::awaitable<Result<layers::LayerReport>> scan_fetch(std::shared_ptr<BlobFetch> fetch,
                                                                 oci::Descriptor layer,
                                                                 std::chrono::steady_clock::time_point deadline);
  std::optional<layers::LayerReport> stored_report(const std::string& digest);
  void store_report(const layers::LayerReport& report);
  std::optional<policy::FilesystemFacts> stored_filesystem(const oci::Manifest& manifest);
  // Each layer's stored report (foreign layers reported without a fetch); nullopt where not scanned.
  std::vector<std::optional<layers::LayerReport>> stored_reports(const std::vector<oci::Descriptor>& layers);
  // Layer inspection while clients pull (stream_scan.cpp).
  void watch_stream(const Target& target, const policy::ImageFacts& facts, const oci::Manifest& manifest,
                    const std::string& client);
  bool watched(const policy::ImageFacts& facts) const;
  boost::asio::awaitable<std::optional<layers::LayerReport>> stream_report(Target target, oci::Descriptor layer);
  boost::asio::awaitable<std::optional<layers::LayerReport>> scan_following(Target target, oci::Descriptor layer);
  boost::asio::awaitable<bool> stream_allows(const std::string& digest);
  bool rejudge_streamed(const StreamImage& image, const std::string& layer);
  boost::asio::awaitable<Reply> gate_streamed_blob(Reply reply, const std::string& digest);
  boost::asio::awaitable<Reply> blob(const http::request<http::empty_body>& req, const Target& target,
                                     const std::string& digest);
  boost::asio::awaitable<Reply> tags_list(const Target& target, const std::string& query);
  boost::asio::awaitable<Reply> referrers(const Target& target, const std::string& digest, const std::string& query);
  boost::asio::awaitable<Reply> fetch_referrers(const Target& target, const std::string& digest,
                                                const std::string& query);

  boost::asio::awaitable<Result<ManifestData>> manifest_by_digest(const Target& target, const std::string& digest);
  boost::asio::awaitable<Result<ManifestData>> manifest_by_tag(const Target& target, const std::string& tag);
  boost::asio::awaitable<Result<ManifestData>> revalidate_tag(const Target& target, const std::string& tag);
  boost::asio::awaitable<Result<ManifestData>> fetch_manifest(const Target& target, const std::string& reference,
                                                              const std::string& expected_digest);
  boost::asio::awaitable<Result<std::unique_ptr<upstream::Response>>> send_upstream(const Target& target,
                                                                                    upstream::Request request);

  Reply blob_from_cache(const http::request<http::empty_body>& req, const std::string& digest);
  Reply blob_from_cache(const http::request<http::empty_body>& req, const std::string& digest,
                        std::unique_ptr<cache::BlobReader> reader);
  std::optional<ReadCheck> read_check(const std::string& digest);
  boost::asio::awaitable<Reply> blob_head_upstream(const Target& target, const std::string& digest);

  const config::Config& config_;
  cache::Store& store_;
  metrics::Metrics& metrics_;
  boost::asio::any_io_executor executor_;
  Gate gate_;
  std::map<std::string, std::shared_ptr<upstream::Client>, std::less<>> clients_;
  FlightMap<Result<ManifestData>> manifest_flights_;
  BlobFetches blob_fetches_;
  FlightMap<std::optional<layers::LayerReport>> scan_flights_;
  StreamWatch stream_watch_;
  boost::asio::thread_pool scan_pool_{1};  // layer scans: CPU work kept off the I/O threads
};

// An OCI error answer (status and JSON body from server/errors).
Reply error_reply(const Error& error);
Reply error_reply(Errc code, std::string message);

// "repository:<repo>:pull", the token scope of a pull.
std::string scope_for(const std::string& repo);

}  // namespace ocigate::server
