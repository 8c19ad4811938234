#pragma once
// The whole judgement of an image manifest, before any byte of it is served: the verdict cache is
// consulted, the fact sources (config, signatures, layers) fill policy::ImageFacts, the policy is
// evaluated, and the verdict is stored, audited and counted (Verdicts). Also what follows from
// verdicts on the blob side: which blobs may be served (BlobAccess) and the gate on layers pulled
// before their image was fully inspected (StreamScans).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "judge/blob_access.hpp"
#include "judge/fact_source.hpp"
#include "judge/layer_reports.hpp"
#include "judge/policy_holder.hpp"
#include "judge/stream_scans.hpp"
#include "judge/verdicts.hpp"
#include "pull/blob_fetch.hpp"
#include "pull/content.hpp"

namespace ocigate::server {

class ImageJudge {
 public:
  // content: how sources fetch manifests and small blobs; fetches: the single-flight blob fetches
  // layer inspection follows. Both must outlive the judge.
  ImageJudge(cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy, Content& content,
             BlobFetches& fetches, boost::asio::any_io_executor executor);
  // With other sources, in the order they run (tests).
  ImageJudge(cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy, BlobFetches& fetches,
             boost::asio::any_io_executor executor, std::vector<std::unique_ptr<FactSource>> sources);

  boost::asio::awaitable<policy::Verdict> judge(const ImageRequest& image);

  // A layer refused under the policy in force (its image broke the policy while it streamed): the
  // 403's message.
  std::optional<std::string> refused_layer(const std::string& digest);
  // Wraps a blob answer: a layer of an image still being inspected is held or cut on its report.
  boost::asio::awaitable<Reply> gate_blob(Reply reply, const std::string& digest);

  Verdicts& verdicts() { return verdicts_; }
  BlobAccess& blob_access() { return blob_access_; }
  LayerReports& layer_reports() { return reports_; }
  StreamScans& stream_scans() { return streams_; }

 private:
  policy::ImageFacts names(const ImageRequest& image) const;

  cache::Store& store_;
  PolicyHolder& policy_;
  Verdicts verdicts_;
  BlobAccess blob_access_;
  LayerReports reports_;
  StreamScans streams_;
  std::vector<std::unique_ptr<FactSource>> sources_;
};

}  // namespace ocigate::server
