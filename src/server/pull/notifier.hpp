#pragma once
// Wakes coroutines that wait for shared state to change (a fetch's progress). Each waiter parks on
// a timer bound to its own strand; notify_all() posts a cancel to each, so wake-ups run on the
// waiter's strand and never race its other operations. The generation counter closes the gap
// between "checked the state" and "started waiting": a waiter passes the generation it saw, and a
// wait that starts after a newer notify returns at once.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ocigate::server {

class Notifier {
 public:
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // Returns when notified after `seen`, or after timeout.
  boost::asio::awaitable<void> wait(std::uint64_t seen, std::chrono::steady_clock::duration timeout) {
    namespace asio = boost::asio;
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor, timeout);
    {
      std::lock_guard lock(mutex_);
      if (generation_.load(std::memory_order_acquire) != seen) co_return;
      waiters_.push_back(timer);
    }
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  }

  void notify_all() {
    std::vector<std::weak_ptr<boost::asio::steady_timer>> waiters;
    {
      std::lock_guard lock(mutex_);
      generation_.fetch_add(1, std::memory_order_acq_rel);
      waiters.swap(waiters_);
    }
    for (auto& weak : waiters) {
      if (auto timer = weak.lock()) {
        boost::asio::post(timer->get_executor(), [timer] { timer->cancel(); });
      }
    }
  }

 private:
  std::mutex mutex_;
  std::atomic<std::uint64_t> generation_{0};
  std::vector<std::weak_ptr<boost::asio::steady_timer>> waiters_;
};

}  // namespace ocigate::server
