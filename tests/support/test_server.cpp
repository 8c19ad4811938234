#include "test_server.hpp"

#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

namespace ocigate::upstream::test {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string serialize(const Reply& reply, bool head) {
  std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " +
                    std::string(http::obsolete_reason(static_cast<http::status>(reply.status))) + "\r\n";
  bool framed = false;
  for (const auto& [name, value] : reply.headers) {
    out += name + ": " + value + "\r\n";
    if (name == "Content-Length" || name == "Transfer-Encoding") framed = true;
  }
  if (!framed) out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
  if (reply.close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!head) out += reply.body;
  return out;
}

}  // namespace

TestServer::TestServer(Handler handler, asio::ssl::context* tls, const std::string& address)
    : handler_(std::move(handler)), tls_(tls), address_(address), acceptor_(io_) {
  tcp::endpoint endpoint(asio::ip::make_address(address), 0);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(io_, accept_loop(), asio::detached);
  thread_ = std::thread([this] { io_.run(); });
}

TestServer::~TestServer() {
  io_.stop();
  thread_.join();
}

std::string TestServer::origin() const {
  const std::string host = address_.find(':') != std::string::npos ? "[" + address_ + "]" : address_;
  return std::string(tls_ ? "https" : "http") + "://" + host + ":" + std::to_string(port_);
}

std::vector<ServerRequest> TestServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

Reply TestServer::dispatch(const ServerRequest& request) {
  std::lock_guard lock(mutex_);
  requests_.push_back(request);
  return handler_(request);
}

asio::awaitable<void> TestServer::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (ec) co_return;
    ++connections_;
    if (tls_) {
      asio::co_spawn(io_, serve_tls(std::move(socket)), asio::detached);
    } else {
      asio::co_spawn(io_, serve_plain(std::move(socket)), asio::detached);
    }
  }
}

asio::awaitable<void> TestServer::serve_plain(tcp::socket socket) {
  co_await serve(socket);
  boost::system::error_code ec;
  socket.close(ec);
  ++closed_;
}

asio::awaitable<void> TestServer::serve_tls(tcp::socket socket) {
  asio::ssl::stream<tcp::socket> stream(std::move(socket), *tls_);
  auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
  if (!ec) co_await serve(stream);  // else the client refused our certificate
  boost::system::error_code close_ec;
  stream.next_layer().close(close_ec);
  ++closed_;
}

template <class Stream>
asio::awaitable<void> TestServer::serve(Stream& stream) {
  boost::beast::flat_buffer buffer;
  for (;;) {
    ServerRequest request;
    auto [ec, n] = co_await http::async_read(stream, buffer, request, use_tuple);
    if (ec) co_return;
    const Reply reply = dispatch(request);
    if (reply.silent) {
      // Silent until the client gives up and closes (or the server stops).
      char byte = 0;
      co_await stream.async_read_some(asio::buffer(&byte, 1), use_tuple);
      co_return;
    }
    const std::string bytes = reply.raw ? *reply.raw : serialize(reply, request.method() == http::verb::head);
    auto [wec, written] = co_await asio::async_write(stream, asio::buffer(bytes), use_tuple);
    if (wec || reply.close) co_return;
  }
}

config::Upstream upstream_for(const TestServer& server) {
  config::Upstream u;
  u.name = "test.local";
  u.url = server.origin();
  u.tls = false;
  u.host = "127.0.0.1";
  u.port = server.port();
  u.connect_timeout = std::chrono::seconds(2);
  u.response_timeout = std::chrono::seconds(2);
  u.idle_timeout = std::chrono::seconds(2);
  return u;
}

}  // namespace ocigate::upstream::test
