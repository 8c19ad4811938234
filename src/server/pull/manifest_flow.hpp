#pragma once
// A manifest pull (GET|HEAD /v2/<name>/manifests/<ref>): by digest from the cache, by tag while
// the tag is younger than tag_ttl (else revalidated with a HEAD), otherwise fetched once per
// reference (single-flight), verified against the digest asked for, parsed and cached; then
// judged (ImageJudge) before any byte of it is served. Stale tags are served when the upstream fails.

#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>

#include "judge/image_judge.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "pull/content.hpp"
#include "pull/flights.hpp"
#include "pull/pull_ahead.hpp"

namespace ocigate::server {

// True for manifests that are not runnable images: cosign signatures and attestations, SBOMs,
// referrers artifacts. They pass the gate so that signing tools keep working through the mirror.
bool is_artifact(const oci::Manifest& manifest, const std::string& reference);

class ManifestFlow {
 public:
  ManifestFlow(cache::Store& store, metrics::Metrics& metrics, ImageJudge& judge, PullAhead& pull_ahead)
      : store_(store), metrics_(metrics), judge_(judge), pull_ahead_(pull_ahead) {}

  // client: the peer address, for the audit log.
  boost::asio::awaitable<Reply> answer(const http::request<http::empty_body>& request, const Target& target,
                                       const std::string& reference, const std::string& client);
  boost::asio::awaitable<Result<ManifestData>> by_digest(const Target& target, const std::string& digest);
  boost::asio::awaitable<Result<ManifestData>> by_tag(const Target& target, const std::string& tag);
  // Fetches and judges one image the way a pull would (`ocigate check`), waiting for every layer.
  // An index is resolved to its platform entry for os/architecture.
  boost::asio::awaitable<Result<policy::Verdict>> inspect(const Target& target, const std::string& reference,
                                                          const std::string& os, const std::string& architecture);

 private:
  boost::asio::awaitable<Result<ManifestData>> revalidate_tag(const Target& target, const std::string& tag);
  boost::asio::awaitable<Result<ManifestData>> fetch(const Target& target, const std::string& reference,
                                                     const std::string& expected_digest);
  void remember_index_reference(const oci::Manifest& index, const std::string& index_digest,
                                const std::string& reference);

  cache::Store& store_;
  metrics::Metrics& metrics_;
  ImageJudge& judge_;
  PullAhead& pull_ahead_;
  FlightMap<Result<ManifestData>> flights_;
};

}  // namespace ocigate::server
