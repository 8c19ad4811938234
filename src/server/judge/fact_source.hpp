#pragma once
// A fact source adds what it learns about an image to policy::ImageFacts before the policy is
// evaluated: the image config, signatures, layer inspection, and the sources to come
// (vulnerabilities, keyless identities, provenance). The judge runs them in order, the way a
// proxy runs a filter chain; a new kind of fact is a new source, not a change to the pull flows.

#include <chrono>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "ocigate/oci/manifest.hpp"
#include "ocigate/policy/engine.hpp"
#include "pull/content.hpp"
#include "pull/routing.hpp"

namespace ocigate::server {

// The image being judged, as the manifest flow found it.
struct ImageRequest {
  const Target& target;
  const std::string& reference;  // tag or digest the client asked for
  const ManifestData& data;      // the manifest as served
  const oci::Manifest& manifest;
  const std::string& client;     // for the audit log
  bool scan_all = false;         // `ocigate check`: every layer, whatever policy.layer_scan says
};

class FactSource {
 public:
  virtual ~FactSource() = default;
  // How long a cached verdict holds when this source's facts can change upstream within its
  // day (signatures: the tag TTL); nullopt: the verdict's UTC day.
  virtual std::optional<std::chrono::seconds> max_age(const ImageRequest&) const { return std::nullopt; }
  // True when a cached verdict lacks facts this source could add now (layers not yet inspected).
  virtual bool pending(const ImageRequest&, const policy::ImageFacts&) const { return false; }
  // Adds this source's facts; may fetch through the cache. Runs only when some check is on.
  virtual boost::asio::awaitable<void> gather(const ImageRequest& image, policy::ImageFacts& facts) = 0;
  // The verdict reached on the gathered facts.
  virtual void judged(const ImageRequest&, const policy::ImageFacts&, const policy::Verdict&) {}
};

}  // namespace ocigate::server
