#include "judge/stream_watch.hpp"

namespace ocigate::server {

std::string stream_key(const policy::ImageFacts& facts) {
  return facts.upstream + "/" + facts.repository + "@" + facts.digest + "/" + facts.reference;
}

void StreamWatch::add(std::shared_ptr<const StreamImage> image) {
  std::lock_guard lock(mutex_);
  const std::string key = image->key;
  forget(key);
  for (const auto& layer : image->layers) by_layer_[layer.digest].insert(key);
  images_[key] = Entry{std::move(image), ++adds_};
  order_.emplace_back(key, adds_);
  while (images_.size() > capacity_ && !order_.empty()) {
    auto [oldest, added] = std::move(order_.front());
    order_.pop_front();
    auto it = images_.find(oldest);
    if (it != images_.end() && it->second.added == added) forget(oldest);
  }
  // Removed and re-added keys leave stale entries behind; keep order_ from growing without bound.
  if (order_.size() > 2 * capacity_ + 16) {
    std::erase_if(order_, [&](const auto& entry) {
      auto it = images_.find(entry.first);
      return it == images_.end() || it->second.added != entry.second;
    });
  }
}

void StreamWatch::remove(const std::string& key) {
  std::lock_guard lock(mutex_);
  forget(key);
}

bool StreamWatch::watching(const std::string& key) const {
  std::lock_guard lock(mutex_);
  return images_.contains(key);
}

std::vector<std::shared_ptr<const StreamImage>> StreamWatch::with_layer(const std::string& digest) const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<const StreamImage>> out;
  auto it = by_layer_.find(digest);
  if (it == by_layer_.end()) return out;
  for (const auto& key : it->second) out.push_back(images_.at(key).image);
  return out;
}

std::size_t StreamWatch::size() const {
  std::lock_guard lock(mutex_);
  return images_.size();
}

void StreamWatch::forget(const std::string& key) {
  auto it = images_.find(key);
  if (it == images_.end()) return;
  for (const auto& layer : it->second.image->layers) {
    auto keys = by_layer_.find(layer.digest);
    if (keys == by_layer_.end()) continue;
    keys->second.erase(key);
    if (keys->second.empty()) by_layer_.erase(keys);
  }
  images_.erase(it);
}

}  // namespace ocigate::server
