#include "judge/sources.hpp"

namespace ocigate::server {

namespace {

std::string image_name(const policy::ImageFacts& facts) { return facts.upstream + "/" + facts.repository; }

}  // namespace

// A verdict reached before the layers were scanned holds while its image is watched for stream
// scanning; after a restart the image is judged again, which watches it again. The inventory
// lookup (a RocksDB get) comes last: it is the only one that touches the disk.
bool LayerSource::pending(const ImageRequest&, const policy::ImageFacts& facts) const {
  auto current = policy_.get();
  return current->layer_scan != policy::LayerScan::off && policy::any_check_on(*current, image_name(facts)) &&
         !streams_.watched(facts) && !verdicts_.has_inventory(facts.digest);
}

// prefetch: scan now, bounded by prefetch_timeout; stream: only what is already scanned; both
// leave the rest to the stream scan (facts.filesystem unset). `ocigate check` waits for every layer.
boost::asio::awaitable<void> LayerSource::gather(const ImageRequest& image, policy::ImageFacts& facts) {
  constexpr std::chrono::hours check_timeout{1};
  auto current = policy_.get();
  if (image.scan_all) {
    facts.filesystem = co_await reports_.scan(image.target, image.manifest, check_timeout);
  } else if (current->layer_scan == policy::LayerScan::stream) {
    facts.filesystem = reports_.stored_filesystem(image.manifest);
  } else if (current->layer_scan == policy::LayerScan::prefetch) {
    facts.filesystem = co_await reports_.scan(image.target, image.manifest, current->prefetch_timeout);
  }
}

void LayerSource::judged(const ImageRequest& image, const policy::ImageFacts& facts, const policy::Verdict& verdict) {
  if (policy_.get()->layer_scan != policy::LayerScan::off && !facts.filesystem &&
      verdict.decision != policy::Decision::block) {
    streams_.watch(image.target, facts, image.manifest, image.client);
  }
}

}  // namespace ocigate::server
