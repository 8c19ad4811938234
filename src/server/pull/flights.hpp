#pragma once
// Single-flight: concurrent callers asking for the same key share one execution of the work.
// The first caller runs it; the others wait for its result.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>

#include "pull/notifier.hpp"

namespace ocigate::server {

template <class T>
class FlightMap {
 public:
  // Runs work() unless a flight for key is under way, in which case its result is shared.
  // on_follow is called when this caller joined someone else's flight (for metrics).
  boost::asio::awaitable<T> run(const std::string& key, std::function<boost::asio::awaitable<T>()> work,
                                std::function<void(bool following)> on_follow = {}) {
    std::shared_ptr<Flight> flight;
    bool leader = false;
    {
      std::lock_guard lock(mutex_);
      auto& slot = flights_[key];
      if (!slot) {
        slot = std::make_shared<Flight>();
        leader = true;
      }
      flight = slot;
    }
    if (leader) {
      T result = co_await work();
      {
        std::lock_guard lock(mutex_);
        flight->result = result;
        flights_.erase(key);
      }
      flight->notifier.notify_all();
      co_return result;
    }
    if (on_follow) on_follow(true);
    for (;;) {
      auto seen = flight->notifier.generation();
      {
        std::lock_guard lock(mutex_);
        if (flight->result) {
          if (on_follow) on_follow(false);
          co_return *flight->result;
        }
      }
      co_await flight->notifier.wait(seen, std::chrono::seconds(1));
    }
  }

 private:
  struct Flight {
    Notifier notifier;
    std::optional<T> result;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
};

}  // namespace ocigate::server
