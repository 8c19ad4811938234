#pragma once
// What judging an image needs from the pull side: manifests, small blobs and referrers, fetched
// through the cache and verified exactly as a client's pull would be. The flows provide it; the
// judge's fact sources use it, and tests give them a fake.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "ocigate/common/result.hpp"
#include "ocigate/oci/manifest.hpp"
#include "pull/routing.hpp"
#include "reply.hpp"

namespace ocigate::server {

// A manifest as served: exact bytes and how to label them.
struct ManifestData {
  std::string digest;
  std::string media_type;
  std::shared_ptr<const std::string> bytes;
  std::string cache = "miss";  // hit | miss | stale
  std::string warning;         // Warning header value when served stale
};

class Content {
 public:
  virtual ~Content() = default;
  virtual boost::asio::awaitable<Result<ManifestData>> manifest_by_tag(const Target& target, const std::string& tag) = 0;
  virtual boost::asio::awaitable<Result<ManifestData>> manifest_by_digest(const Target& target,
                                                                          const std::string& digest) = 0;
  // A small blob (an image config, a signature payload or envelope) of at most max_size bytes;
  // nullopt when it cannot be had (logged).
  virtual boost::asio::awaitable<std::optional<std::string>> small_blob(const Target& target,
                                                                        const oci::Descriptor& descriptor,
                                                                        std::int64_t max_size) = 0;
  // The referrers index of a digest, as a client would get it (the tag fallback where the upstream
  // lacks the API); a non-200 reply says why it could not be had.
  virtual boost::asio::awaitable<Reply> referrers(const Target& target, const std::string& digest) = 0;
};

}  // namespace ocigate::server
