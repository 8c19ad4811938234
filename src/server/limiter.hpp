#pragma once
// Counts malformed requests per client address in one-minute windows. A client over the limit
// gets 429 and its connection closed, so garbage costs the sender more than it costs us.

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ocigate::server {

class MalformedLimiter {
 public:
  explicit MalformedLimiter(unsigned per_minute) : per_minute_(per_minute) {}

  // Records one malformed request; returns true when the address is now over its budget.
  bool record(const std::string& address) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    if (counts_.size() > 100000) counts_.clear();  // bounded memory under address churn
    auto& entry = counts_[address];
    if (now - entry.window_start > std::chrono::minutes(1)) entry = {now, 0};
    return ++entry.count > per_minute_;
  }

  bool over(const std::string& address) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    auto it = counts_.find(address);
    return it != counts_.end() && now - it->second.window_start <= std::chrono::minutes(1) &&
           it->second.count > per_minute_;
  }

 private:
  struct Entry {
    std::chrono::steady_clock::time_point window_start;
    unsigned count = 0;
  };
  unsigned per_minute_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> counts_;
};

}  // namespace ocigate::server
