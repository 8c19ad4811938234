#pragma once
// Pull-ahead (upstreams[].pull_ahead): once a client GETs a layer of an image whose manifest it was
// served, the image's other layers are fetched into the cache ahead of it, a few at a time, through
// the same single-flight fetches a client would join. A client that takes one layer after the
// other (skopeo, `ctr` with one download at a time) then finds the next one cached or under way,
// and the upstream's round trips overlap the client's own work. A manifest alone starts nothing:
// tools that only read manifests and configs (inspect, digest lookups) cost no layer bytes. With
// upstreams[].max_concurrent_fetches, pull-ahead leaves half of the slots to clients' own requests
// and yields its walk when they are taken.

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "judge/image_judge.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/common/lru_map.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/oci/manifest.hpp"
#include "pull/blob_fetch.hpp"
#include "pull/routing.hpp"

namespace ocigate::server {

class PullAhead {
 public:
  // Images remembered at once, and how long one waits for its first layer request.
  static constexpr std::size_t remembered_layers = 16384;
  static constexpr std::chrono::minutes remembered_for{10};
  // Images being pulled ahead at once, over every upstream; more are left to their clients.
  static constexpr std::size_t max_walks = 16;

  PullAhead(cache::Store& store, metrics::Metrics& metrics, BlobFetches& fetches, ImageJudge& judge,
            boost::asio::any_io_executor executor)
      : store_(store), metrics_(metrics), fetches_(fetches), judge_(judge), executor_(std::move(executor)) {}

  // A client was served this image manifest (GET, allowed): its layers may be pulled ahead.
  void remember(const Target& target, const std::vector<oci::Descriptor>& layers);
  // A client GETs this blob: when it is a layer of a remembered image of the same repository, the
  // image's other layers are pulled ahead, once per manifest request.
  void layer_requested(const Target& target, const std::string& digest);

 private:
  struct Image;
  struct Walk;
  boost::asio::awaitable<void> run(std::shared_ptr<Walk> walk);
  boost::asio::awaitable<Status> fetch(const Target& target, const oci::Descriptor& layer);
  static std::string key(const Target& target, const std::string& digest);

  cache::Store& store_;
  metrics::Metrics& metrics_;
  BlobFetches& fetches_;
  ImageJudge& judge_;
  boost::asio::any_io_executor executor_;
  std::mutex mutex_;
  LruMap<std::shared_ptr<Image>> images_{remembered_layers};  // "<upstream>/<repo>@<layer>" → image
  std::size_t walks_ = 0;
};

// The order a walk takes an image's layers in when the client asked for layers[asked]: the ones
// after it first (clients take layers in manifest order), then those before it; never asked.
std::vector<std::size_t> pull_ahead_order(std::size_t layers, std::size_t asked);

// Whether a pull-ahead fetch may take one of the upstream's max_concurrent_fetches slots now: only
// while at least half of them (rounded up) stay idle for clients besides it. Always without a limit.
bool spare_fetch_slot(const upstream::Client& client);

}  // namespace ocigate::server
