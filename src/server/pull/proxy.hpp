#pragma once
// The pull side of the distribution API: maps a request to an upstream and repository (routing)
// and hands it to its flow (manifests, blobs, listings), each of which answers from the cache or
// fetches through single-flight and verifies digests; image manifests are judged (ImageJudge)
// before any byte is served. Stream-agnostic: the session (plain or TLS) writes what this returns.

#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>

#include "judge/image_judge.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/oci/reference.hpp"
#include "ocigate/upstream/client.hpp"
#include "pull/blob_fetch.hpp"
#include "pull/blob_flow.hpp"
#include "pull/content.hpp"
#include "pull/listing_flow.hpp"
#include "pull/manifest_flow.hpp"
#include "pull/pull_ahead.hpp"
#include "reply.hpp"

namespace ocigate::server {

class Proxy final : public Content {
 public:
  Proxy(const config::Config& config, cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy,
        boost::asio::any_io_executor executor);

  // client: the peer address, for the audit log.
  boost::asio::awaitable<Reply> handle(const http::request<http::empty_body>& request, const std::string& client);
  // Resolves a route's name (+ ?ns=) to an upstream and repository, with the upstream's client.
  Result<Target> resolve(const oci::Route& route) const;
  // Fetches and judges one image the way a pull would (`ocigate check`).
  boost::asio::awaitable<Result<policy::Verdict>> inspect(const Target& target, const std::string& reference,
                                                          const std::string& os, const std::string& architecture);
  ImageJudge& judge() { return judge_; }

  // Content, for the judge's fact sources: the flows' own paths.
  boost::asio::awaitable<Result<ManifestData>> manifest_by_tag(const Target& target, const std::string& tag) override;
  boost::asio::awaitable<Result<ManifestData>> manifest_by_digest(const Target& target,
                                                                  const std::string& digest) override;
  boost::asio::awaitable<std::optional<std::string>> small_blob(const Target& target, const oci::Descriptor& descriptor,
                                                                std::int64_t max_size) override;
  boost::asio::awaitable<Reply> referrers(const Target& target, const std::string& digest) override;

 private:
  const config::Config& config_;
  std::map<std::string, std::shared_ptr<upstream::Client>, std::less<>> clients_;
  BlobFetches fetches_;
  ImageJudge judge_;
  PullAhead pull_ahead_;
  ManifestFlow manifests_;
  BlobFlow blobs_;
  ListingFlow listings_;
};

}  // namespace ocigate::server
