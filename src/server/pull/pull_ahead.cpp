// PullAhead (pull/pull_ahead.hpp).

#include "pull/pull_ahead.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>

#include "ocigate/layers/scan.hpp"
#include "ocigate/server/log.hpp"
#include "pull/upstream_call.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

struct PullAhead::Image {
  Target target;
  std::vector<oci::Descriptor> layers;
  std::chrono::steady_clock::time_point remembered;
  bool started = false;
};

// One image's layers, taken in order by pull_ahead workers on one strand.
struct PullAhead::Walk {
  std::shared_ptr<Image> image;
  std::vector<std::size_t> order;
  std::size_t next = 0;
  unsigned workers = 0;  // still running
};

std::vector<std::size_t> pull_ahead_order(std::size_t layers, std::size_t asked) {
  std::vector<std::size_t> order;
  for (std::size_t i = asked + 1; i < layers; ++i) order.push_back(i);
  for (std::size_t i = 0; i < asked && i < layers; ++i) order.push_back(i);
  return order;
}

// With max_concurrent_fetches, a pull-ahead fetch starts only while, with it, at least half of the
// upstream's slots (rounded up) stay idle for clients: optional work must not make a client's own
// request wait for a slot, or run out of fetch_slot_timeout behind it.
bool spare_fetch_slot(const upstream::Client& client) {
  const auto idle = client.idle_fetch_slots();
  if (!idle) return true;
  const unsigned limit = client.upstream().max_concurrent_fetches;
  return *idle >= 1 + (limit + 1) / 2;
}

std::string PullAhead::key(const Target& target, const std::string& digest) { return target.repo_key + "@" + digest; }

void PullAhead::remember(const Target& target, const std::vector<oci::Descriptor>& layers) {
  if (target.upstream->pull_ahead == 0 || layers.size() < 2) return;
  auto image = std::make_shared<Image>(Image{target, layers, std::chrono::steady_clock::now()});
  std::lock_guard lock(mutex_);
  for (const auto& layer : layers) images_.put(key(target, layer.digest), image);
}

void PullAhead::layer_requested(const Target& target, const std::string& digest) {
  if (target.upstream->pull_ahead == 0) return;
  std::shared_ptr<Walk> walk;
  {
    std::lock_guard lock(mutex_);
    auto* found = images_.find(key(target, digest));
    if (!found) return;
    auto image = *found;
    if (image->started || std::chrono::steady_clock::now() - image->remembered > remembered_for) return;
    image->started = true;
    if (walks_ >= max_walks) {
      log::debug("pull-ahead skipped: enough images are being pulled ahead", {{"repository", target.repo_key}});
      return;
    }
    std::size_t asked = 0;
    while (asked < image->layers.size() && image->layers[asked].digest != digest) ++asked;
    walk = std::make_shared<Walk>(Walk{image, pull_ahead_order(image->layers.size(), asked)});
    walk->workers = static_cast<unsigned>(std::min<std::size_t>(target.upstream->pull_ahead, walk->order.size()));
    if (walk->workers == 0) return;
    ++walks_;
  }
  auto strand = asio::make_strand(executor_);
  for (unsigned i = 0; i < walk->workers; ++i) asio::co_spawn(strand, run(walk), asio::detached);
}

// Fetches one layer into the cache the way a client's pull would: through the single-flight
// fetch, and for a layer of an image judged without its layers, scanned as it streams in.
asio::awaitable<Status> PullAhead::fetch(const Target& target, const oci::Descriptor& layer) {
  if (judge_.stream_scans().watched_layer(layer.digest)) {
    auto scan = judge_.stream_scans().scan_ahead(target, layer);  // arguments outside the co_await (GCC 12)
    co_await std::move(scan);
    // The scan followed the fetch to its last byte; the commit may still be running.
  }
  if (store_.blob_size(layer.digest)) co_return ok_status();
  auto joined = fetches_.join(layer.digest, *target.client, target.repo, scope_for(target.repo));
  auto done = co_await fetches_.wait_finished(joined);
  if (done.phase == BlobFetch::Phase::done) co_return ok_status();
  // failed, or verified but not cached (a disk problem)
  co_return done.error.code == Errc::ok ? Error{Errc::storage_error, "the cache did not take it"} : done.error;
}

// One worker: takes the walk's next layer until none is left or a fetch fails (the upstream is
// then left alone: the client's own request says what went wrong).
asio::awaitable<void> PullAhead::run(std::shared_ptr<Walk> walk) {
  const Target& target = walk->image->target;
  const std::string& upstream = target.upstream->name;
  while (walk->next < walk->order.size()) {
    const oci::Descriptor& layer = walk->image->layers[walk->order[walk->next++]];
    // The same checks a client's request meets: an image judged since may have refused a layer.
    if (!judge_.blob_access().allowed(layer.digest) || judge_.refused_layer(layer.digest)) continue;
    if (layers::foreign_layer(layer.media_type)) continue;  // not the upstream's to serve
    if (store_.blob_size(layer.digest)) {
      metrics_.record_pull_ahead(upstream, "cached");
      continue;
    }
    if (!spare_fetch_slot(*target.client)) {
      // The rest is left to the clients, which fetch what they ask for.
      for (std::size_t left = walk->order.size() - walk->next + 1; left > 0; --left) {
        metrics_.record_pull_ahead(upstream, "yielded");
      }
      log::debug("pull-ahead yielded: the upstream's fetch slots are wanted by clients",
                 {{"upstream", upstream}, {"repository", target.repo}});
      walk->next = walk->order.size();
      break;
    }
    auto fetched = co_await fetch(target, layer);
    if (!fetched) {
      metrics_.record_pull_ahead(upstream, "failed");
      log::warn("pull-ahead stopped: a layer could not be fetched into the cache",
                {{"upstream", upstream}, {"repository", target.repo}, {"layer", layer.digest},
                 {"error", fetched.error().message}});
      walk->next = walk->order.size();
      break;
    }
    metrics_.record_pull_ahead(upstream, "fetched");
  }
  if (--walk->workers == 0) {
    std::lock_guard lock(mutex_);
    --walks_;
  }
}

}  // namespace ocigate::server
