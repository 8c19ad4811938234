#include "session/listener.hpp"

#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "ocigate/server/log.hpp"
#include "session/tls.hpp"

namespace ocigate::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

}  // namespace

bool benign(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == beast::error::timeout || ec == asio::error::broken_pipe ||
         ec == asio::error::bad_descriptor;
}

Status Listener::listen(const config::Endpoint& endpoint, bool metrics_only) {
  beast::error_code ec;
  auto address = asio::ip::make_address(endpoint.host, ec);
  if (ec) return Error{Errc::config_invalid, "bad listen address " + endpoint.host};
  tcp::endpoint ep(address, endpoint.port);
  auto acceptor = std::make_unique<tcp::acceptor>(ioc_);
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error{Errc::config_invalid,
                 "cannot listen on " + endpoint.host + ":" + std::to_string(endpoint.port) + ": " + ec.message()};
  }
  log::info("listening", {{"address", endpoint.host}, {"port", acceptor->local_endpoint().port()},
                          {"metrics_only", metrics_only}});
  asio::co_spawn(ioc_, accept_loop(*acceptor, metrics_only), asio::detached);
  acceptors_.push_back(std::move(acceptor));
  return ok_status();
}

void Listener::set_tls(std::shared_ptr<ssl::context> context) {
  std::lock_guard lock(tls_mutex_);
  tls_ = std::move(context);
}

std::shared_ptr<ssl::context> Listener::current_tls() {
  std::lock_guard lock(tls_mutex_);
  return tls_;
}

asio::awaitable<void> Listener::accept_loop(tcp::acceptor& acceptor, bool metrics_only) {
  for (;;) {
    auto& context = *session_contexts_[next_context_++ % session_contexts_.size()];
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(context), use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopped_) co_return;
      log::warn("accept failed", {{"error", ec.message()}});
      continue;
    }
    // Replies go out as header + body writes; Nagle would hold a small body back until the
    // client's delayed ACK (~40 ms per request).
    socket.set_option(tcp::no_delay(true), ec);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, connection(beast::tcp_stream(std::move(socket)), metrics_only), asio::detached);
  }
}

asio::awaitable<void> Listener::connection(beast::tcp_stream stream, bool metrics_only) {
  beast::error_code ec;
  auto remote = stream.socket().remote_endpoint(ec);
  Peer peer;
  peer.address = ec ? std::string("unknown") : remote.address().to_string();
  peer.metrics_only = metrics_only;
  const auto opened = front_.open_connection(peer.address);
  if (opened == FrontDoor::Opened::refused) {
    stream.close();
    co_return;
  }
  auto handle = std::make_shared<Handle>();
  handle->strand = stream.get_executor();
  handle->stream = &stream;
  const std::uint64_t id = add(handle);
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  try {
    beast::flat_buffer buffer(settings_.max_header_bytes + 8192);
    auto context = metrics_only ? nullptr : current_tls();
    if (!context) {
      Session session(stream, buffer, settings_, metrics_, responder_, peer, handle->in_request);
      co_await session.run();
    } else {
      // server-flex: one port, the first byte says whether the client speaks TLS.
      stream.expires_after(settings_.header_timeout);
      auto [detect_ec, is_tls] = co_await beast::async_detect_ssl(stream, buffer, use_tuple);
      if (detect_ec) {
        // silent peer or reset before the first byte: nothing to answer
      } else if (!is_tls) {
        peer.refuse_plain = !settings_.tls->allow_plain_http;
        Session session(stream, buffer, settings_, metrics_, responder_, peer, handle->in_request);
        co_await session.run();
      } else {
        tls_stream.emplace(std::move(stream), *context);
        handle->stream = &beast::get_lowest_layer(*tls_stream);
        beast::get_lowest_layer(*tls_stream).expires_after(settings_.header_timeout);
        auto [handshake_ec, used] =
            co_await tls_stream->async_handshake(ssl::stream_base::server, buffer.data(), use_tuple);
        if (handshake_ec) {
          metrics_.record_malformed("tls_handshake");
          log::debug("TLS handshake failed", {{"client", peer.address}, {"error", handshake_ec.message()}});
        } else {
          buffer.consume(used);
          peer.cert_user = certificate_user(tls_stream->native_handle(), *settings_.tls, peer.address);
          Session session(*tls_stream, buffer, settings_, metrics_, responder_, peer, handle->in_request);
          co_await session.run();
          beast::get_lowest_layer(*tls_stream).expires_after(std::chrono::seconds(5));
          auto [shutdown_ec] = co_await tls_stream->async_shutdown(use_tuple);
          (void)shutdown_ec;  // a client that just closes (most do) is fine
        }
      }
    }
  } catch (const std::exception& e) {
    // A broken invariant in one connection must not take the process down; log it loudly.
    log::error("session failed", {{"client", peer.address}, {"error", e.what()}});
  }
  remove(id);
  front_.close_connection(peer.address, opened);
  beast::tcp_stream& lowest = tls_stream ? beast::get_lowest_layer(*tls_stream) : stream;
  lowest.socket().shutdown(tcp::socket::shutdown_send, ec);
  lowest.close();
}

std::uint64_t Listener::add(const std::shared_ptr<Handle>& handle) {
  std::lock_guard lock(handles_mutex_);
  handles_.emplace(++next_handle_, handle);
  return next_handle_;
}

void Listener::remove(std::uint64_t id) {
  std::lock_guard lock(handles_mutex_);
  handles_.erase(id);
}

std::size_t Listener::open_connections() {
  std::lock_guard lock(handles_mutex_);
  return handles_.size();
}

void Listener::stop() {
  stopped_ = true;
  for (auto& acceptor : acceptors_) {
    beast::error_code ec;
    acceptor->close(ec);
  }
  std::lock_guard lock(handles_mutex_);
  for (auto& [id, handle] : handles_) {
    asio::post(handle->strand, [weak = std::weak_ptr<Handle>(handle), this, id = id] {
      std::lock_guard inner(handles_mutex_);
      auto h = weak.lock();
      if (h && handles_.count(id) && !h->in_request) h->stream->cancel();
    });
  }
}

}  // namespace ocigate::server
