#pragma once
// Name lookups for one upstream client: getaddrinfo on a small pool of its own (asio's resolver
// runs one lookup at a time per io_context, so one slow answer held every other lookup), each wait
// bounded by connect_timeout, and answers reused by new connections for a while. Internal to
// ocigate_upstream.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include "ocigate/common/lru_map.hpp"
#include "ocigate/upstream/client.hpp"

namespace ocigate::upstream::detail {

using Endpoints = std::vector<boost::asio::ip::tcp::endpoint>;

class NameLookups {
 public:
  // resolve: how names are looked up (tests give their own); empty: the system's getaddrinfo.
  NameLookups(boost::asio::any_io_executor executor, std::chrono::seconds timeout, Resolve resolve);

  // A fresh cached answer, else a lookup. getaddrinfo cannot be interrupted: the wait ends after
  // the timeout (an upstream_timeout error), and an answer that comes later is dropped.
  boost::asio::awaitable<Result<Endpoints>> resolve(const std::string& host, std::uint16_t port);
  // Forgets an answer (a connect to it failed): the next connection looks the name up again.
  void forget(const std::string& host, std::uint16_t port);

 private:
  struct Answer {
    Endpoints endpoints;
    std::chrono::steady_clock::time_point expires;
  };
  std::optional<Endpoints> cached(const std::string& key);
  void remember(const std::string& key, const Endpoints& endpoints);

  boost::asio::any_io_executor executor_;
  std::chrono::seconds timeout_;
  std::unique_ptr<boost::asio::thread_pool> pool_;  // for the system's lookups (no Resolve given)
  Resolve resolve_;
  std::mutex mutex_;
  LruMap<Answer> answers_;  // by host:port
};

}  // namespace ocigate::upstream::detail
