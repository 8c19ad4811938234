#pragma once
// Images whose manifest was answered before their layers were scanned (policy.layer_scan: stream,
// or prefetch past prefetch_timeout), found by layer digest when a client pulls one of their
// layers. In memory and bounded: past the capacity the oldest image is forgotten, and a later
// manifest request for it judges it again (which watches it again).

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "pull/routing.hpp"
#include "ocigate/oci/manifest.hpp"
#include "ocigate/policy/engine.hpp"

namespace ocigate::server {

struct StreamImage {
  std::string key;                      // upstream/repo@digest/reference, as the verdict cache keys it
  Target target;
  policy::ImageFacts facts;             // as judged without layers: names, config, signatures
  std::vector<oci::Descriptor> layers;  // manifest order
  std::string client;                   // who pulled the manifest, for the audit log
};

std::string stream_key(const policy::ImageFacts& facts);

class StreamWatch {
 public:
  explicit StreamWatch(std::size_t capacity = 4096) : capacity_(capacity) {}

  // Watches an image (replacing an earlier entry under the same key).
  void add(std::shared_ptr<const StreamImage> image);
  void remove(const std::string& key);
  bool watching(const std::string& key) const;
  // Images that have this layer.
  std::vector<std::shared_ptr<const StreamImage>> with_layer(const std::string& digest) const;
  std::size_t size() const;

 private:
  void forget(const std::string& key);  // mutex_ held

  mutable std::mutex mutex_;
  std::size_t capacity_;
  struct Entry {
    std::shared_ptr<const StreamImage> image;
    std::uint64_t added = 0;  // which add() of this key; older order_ entries of it are stale
  };
  std::unordered_map<std::string, Entry> images_;
  std::unordered_map<std::string, std::set<std::string>> by_layer_;  // layer digest -> image keys
  std::deque<std::pair<std::string, std::uint64_t>> order_;  // oldest first; may hold stale entries
  std::uint64_t adds_ = 0;
};

}  // namespace ocigate::server
