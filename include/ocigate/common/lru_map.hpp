#pragma once
// A map bounded by entry count that drops its least recently used entry to make room. Not
// thread-safe: callers hold their own lock. Used for the in-memory caches in front of slower
// lookups (verdict records, password checks), where dropping one cold entry beats dropping all.

#include <cstddef>
#include <iterator>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>

namespace ocigate {

template <class Value>
class LruMap {
 public:
  explicit LruMap(std::size_t capacity) : capacity_(capacity) {}

  // The entry's value, now the most recently used, or nullptr. Valid until the next change.
  Value* find(const std::string& key) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return nullptr;
    order_.splice(order_.end(), order_, it->second.position);
    return &it->second.value;
  }

  bool contains(const std::string& key) const { return entries_.contains(key); }

  // Sets the entry (the most recently used), dropping the least recently used ones past capacity.
  // A map of capacity 0 keeps nothing.
  void put(const std::string& key, Value value) {
    if (Value* existing = find(key)) {
      *existing = std::move(value);
      return;
    }
    if (capacity_ == 0) return;
    while (entries_.size() >= capacity_) erase(order_.front());
    order_.push_back(key);
    entries_.emplace(key, Entry{std::move(value), std::prev(order_.end())});
  }

  void erase(const std::string& key) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    order_.erase(it->second.position);
    entries_.erase(it);
  }

  void clear() {
    entries_.clear();
    order_.clear();
  }

  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Value value;
    std::list<std::string>::iterator position;
  };
  std::size_t capacity_;
  std::list<std::string> order_;  // least recently used first
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace ocigate
