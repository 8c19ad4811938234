#pragma once
// The listeners and their connections: accepts on the first io_context and spreads connections
// over every I/O thread (round-robin), so a stream's coroutine, socket and buffers stay on one
// core. With server.tls one port serves both: the first byte says whether the client speaks TLS
// (Beast's server-flex). Each connection runs a Session; shutdown closes idle ones at once.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "front/front_door.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "session/session.hpp"

namespace ocigate::server {

class Listener {
 public:
  Listener(const config::Server& settings, metrics::Metrics& metrics, FrontDoor& front, Responder& responder,
           boost::asio::io_context& ioc, std::vector<boost::asio::io_context*> session_contexts)
      : settings_(settings),
        metrics_(metrics),
        front_(front),
        responder_(responder),
        ioc_(ioc),
        session_contexts_(std::move(session_contexts)) {}

  // An error (Errc::config_invalid) when the address cannot be bound.
  Status listen(const config::Endpoint& endpoint, bool metrics_only);
  // The TLS context new connections get (open ones keep theirs); null: plain HTTP only.
  void set_tls(std::shared_ptr<boost::asio::ssl::context> context);
  // Stops accepting; idle keep-alive connections are closed at once, requests in flight finish.
  void stop();
  std::size_t open_connections();

 private:
  // The state stop() needs to reach an idle connection on its own strand.
  struct Handle {
    boost::asio::any_io_executor strand;
    boost::beast::tcp_stream* stream = nullptr;
    std::atomic<bool> in_request{false};
  };

  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor, bool metrics_only);
  boost::asio::awaitable<void> connection(boost::beast::tcp_stream stream, bool metrics_only);
  std::shared_ptr<boost::asio::ssl::context> current_tls();
  std::uint64_t add(const std::shared_ptr<Handle>& handle);
  void remove(std::uint64_t id);

  const config::Server& settings_;
  metrics::Metrics& metrics_;
  FrontDoor& front_;
  Responder& responder_;
  boost::asio::io_context& ioc_;
  const std::vector<boost::asio::io_context*> session_contexts_;
  std::size_t next_context_ = 0;  // only the accept loops (on ioc_'s one thread) touch it
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::mutex tls_mutex_;  // guards tls_, swapped whole on SIGHUP
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::atomic<bool> stopped_{false};
  std::mutex handles_mutex_;
  std::map<std::uint64_t, std::shared_ptr<Handle>> handles_;
  std::uint64_t next_handle_ = 0;
};

}  // namespace ocigate::server
