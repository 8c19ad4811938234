#pragma once
// A blob pull (GET|HEAD /v2/<name>/blobs/<digest>): refused unless an allowed image refers to it
// (BlobAccess), served from the cache's file when committed (Range: 206/416), otherwise through
// the single-flight fetch (BlobFetches) whose last byte waits for the digest; a layer of an image
// still being inspected is gated by the judge.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>

#include "judge/image_judge.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "pull/blob_fetch.hpp"
#include "pull/pull_ahead.hpp"
#include "pull/routing.hpp"

namespace ocigate::server {

class BlobFlow {
 public:
  BlobFlow(const config::Config& config, cache::Store& store, metrics::Metrics& metrics, BlobFetches& fetches,
           ImageJudge& judge, PullAhead& pull_ahead)
      : config_(config), store_(store), metrics_(metrics), fetches_(fetches), judge_(judge), pull_ahead_(pull_ahead) {}

  boost::asio::awaitable<Reply> answer(const http::request<http::empty_body>& request, const Target& target,
                                       const std::string& digest);
  // A small blob (config, signature payload, envelope) through the cache, followed like a client
  // would; nullopt when it cannot be had or is larger than max_size.
  boost::asio::awaitable<std::optional<std::string>> small_blob(const Target& target, const oci::Descriptor& descriptor,
                                                                std::int64_t max_size);

 private:
  Reply from_cache(const http::request<http::empty_body>& request, const std::string& digest);
  Reply from_cache(const http::request<http::empty_body>& request, const std::string& digest,
                   std::unique_ptr<cache::BlobReader> reader);
  std::optional<ReadCheck> read_check(const std::string& digest);
  boost::asio::awaitable<Reply> head_upstream(const Target& target, const std::string& digest);

  const config::Config& config_;
  cache::Store& store_;
  metrics::Metrics& metrics_;
  BlobFetches& fetches_;
  ImageJudge& judge_;
  PullAhead& pull_ahead_;
};

}  // namespace ocigate::server
