#pragma once
// Layer inspection while clients pull (policy.layer_scan: stream, and prefetch's fallback after
// prefetch_timeout). An image whose manifest was answered before its layers were scanned is
// watched; when a client pulls one of its layers, a scanner follows the same single-flight fetch
// and the client's last piece is held back until that layer's report is in.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "judge/layer_reports.hpp"
#include "judge/stream_watch.hpp"
#include "judge/verdicts.hpp"
#include "pull/flights.hpp"
#include "reply.hpp"

namespace ocigate::server {

class StreamScans {
 public:
  StreamScans(cache::Store& store, metrics::Metrics& metrics, LayerReports& reports, Verdicts& verdicts,
              boost::asio::any_io_executor executor)
      : store_(store), metrics_(metrics), reports_(reports), verdicts_(verdicts), executor_(std::move(executor)) {}

  // Recomputes facts that follow from the filesystem (ImageJudge: every source's refine) before
  // each re-judgement. Set once, before any image is watched.
  void set_refine(std::function<void(policy::ImageFacts&)> refine) { refine_ = std::move(refine); }
  // Watches an image judged without its layers.
  void watch(const Target& target, const policy::ImageFacts& facts, const oci::Manifest& manifest,
             const std::string& client);
  bool watched(const policy::ImageFacts& facts) const;
  // Wraps a blob answer of a watched layer: a range is judged before its first byte, a whole blob
  // before its last; an image that now breaks the policy cuts the transfer.
  boost::asio::awaitable<Reply> gate_blob(Reply reply, const std::string& digest);
  // A layer of a watched image (pull-ahead): fetched and scanned as it streams in, the way a
  // client's pull of it would be; the image is judged again when a client asks for the layer.
  bool watched_layer(const std::string& digest) const { return !watch_.with_layer(digest).empty(); }
  boost::asio::awaitable<void> scan_ahead(Target target, oci::Descriptor layer);

 private:
  boost::asio::awaitable<std::optional<layers::LayerReport>> stream_report(Target target, oci::Descriptor layer);
  boost::asio::awaitable<std::optional<layers::LayerReport>> scan_following(Target target, oci::Descriptor layer);
  boost::asio::awaitable<bool> allows(const std::string& digest);
  bool rejudge(const StreamImage& image, const std::string& layer);

  cache::Store& store_;
  metrics::Metrics& metrics_;
  LayerReports& reports_;
  Verdicts& verdicts_;
  boost::asio::any_io_executor executor_;
  std::function<void(policy::ImageFacts&)> refine_;
  FlightMap<std::optional<layers::LayerReport>> scan_flights_;
  StreamWatch watch_;
};

}  // namespace ocigate::server
