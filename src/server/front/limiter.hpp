#pragma once
// Counts malformed requests per client address in one-minute windows. A client over the limit
// gets 429 and its connection closed, so garbage costs the sender more than it costs us.

#include <algorithm>
#include <chrono>
#include <cmath>
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

namespace ocigate::server {

// Requests per client address: a token bucket of `burst` tokens refilled at `rate` per second.
// take() answers how long the client must wait (0 = go ahead). Bounded memory: when the table is
// full, buckets that have refilled completely (idle clients) are dropped first.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimiter(double rate, unsigned burst, std::size_t max_clients = 100000)
      : rate_(rate), burst_(burst ? burst : std::max(1u, static_cast<unsigned>(rate * 2))), max_clients_(max_clients) {}

  bool enabled() const { return rate_ > 0; }

  // Whole seconds to wait before the next request would be accepted (Retry-After), 0 when
  // this one is accepted (and a token spent).
  unsigned take(const std::string& address, Clock::time_point now = Clock::now()) {
    if (!enabled()) return 0;
    std::lock_guard lock(mutex_);
    auto it = buckets_.find(address);
    if (it == buckets_.end()) {
      if (buckets_.size() >= max_clients_) prune(now);
      it = buckets_.emplace(address, Bucket{static_cast<double>(burst_), now}).first;
    }
    auto& bucket = it->second;
    refill(bucket, now);
    if (bucket.tokens >= 1.0) {
      bucket.tokens -= 1.0;
      return 0;
    }
    const double wait = (1.0 - bucket.tokens) / rate_;
    return static_cast<unsigned>(std::max(1.0, std::ceil(wait)));
  }

  // Addresses with a bucket; never above max_clients.
  std::size_t tracked() {
    std::lock_guard lock(mutex_);
    return buckets_.size();
  }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };

  void refill(Bucket& bucket, Clock::time_point now) const {
    const double elapsed = std::chrono::duration<double>(now - bucket.last).count();
    if (elapsed > 0) bucket.tokens = std::min(static_cast<double>(burst_), bucket.tokens + elapsed * rate_);
    bucket.last = now;
  }

  void prune(Clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      refill(it->second, now);
      it = it->second.tokens >= burst_ ? buckets_.erase(it) : std::next(it);
    }
    if (buckets_.size() >= max_clients_) buckets_.clear();  // under a flood from many addresses: start over
  }

  double rate_;
  unsigned burst_;
  std::size_t max_clients_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

// Open connections per client address. acquire() fails when the address is at its limit.
class ConnectionCounter {
 public:
  explicit ConnectionCounter(unsigned limit) : limit_(limit) {}

  bool acquire(const std::string& address) {
    std::lock_guard lock(mutex_);
    auto& count = counts_[address];
    if (limit_ && count >= limit_) {
      if (count == 0) counts_.erase(address);
      return false;
    }
    ++count;
    return true;
  }

  void release(const std::string& address) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(address);
    if (it == counts_.end()) return;
    if (--it->second == 0) counts_.erase(it);
  }

  unsigned count(const std::string& address) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(address);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  unsigned limit_;
  std::mutex mutex_;
  std::unordered_map<std::string, unsigned> counts_;
};

}  // namespace ocigate::server
