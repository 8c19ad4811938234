#pragma once
// A scriptable HTTP/1.1 server for the client tests: listens on a loopback address, port 0, plain or
// TLS, on its own thread. One handler decides every answer: a normal response, raw bytes (for
// broken or hand-framed answers), or silence.

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "ocigate/config/config.hpp"

namespace ocigate::upstream::test {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

using ServerRequest = http::request<http::string_body>;

struct Reply {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<std::string> raw;  // written verbatim instead of a serialized response
  bool close = false;              // close the connection after answering
  bool silent = false;             // do not answer; wait for the client to hang up

  static Reply ok(std::string body) {
    Reply reply;
    reply.body = std::move(body);
    return reply;
  }
  // 200 with body, then the server hangs up: every request needs a new connection.
  static Reply ok_then_close(std::string body) {
    Reply reply = ok(std::move(body));
    reply.close = true;
    return reply;
  }
  static Reply with_status(unsigned status,
                           std::initializer_list<std::pair<std::string, std::string>> headers = {}) {
    Reply reply;
    reply.status = status;
    reply.headers.assign(headers.begin(), headers.end());
    return reply;
  }
  // Raw bytes; with close_after the server hangs up right after them, otherwise it keeps reading.
  static Reply bytes(std::string raw, bool close_after) {
    Reply reply;
    reply.raw = std::move(raw);
    reply.close = close_after;
    return reply;
  }
  static Reply never() {
    Reply reply;
    reply.silent = true;
    return reply;
  }
};

using Handler = std::function<Reply(const ServerRequest&)>;

class TestServer {
 public:
  // Throws when the address cannot be bound (a test may skip then). With tls, every connection
  // is TLS with that context's certificate; the context must outlive the server.
  explicit TestServer(Handler handler, asio::ssl::context* tls = nullptr, const std::string& address = "127.0.0.1");
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string origin() const;  // "http://127.0.0.1:<port>"
  std::vector<ServerRequest> requests() const;
  int connections() const { return connections_.load(); }
  // Connections the server has closed (after a reply that closes, or the client's hang-up).
  int closed() const { return closed_.load(); }

 private:
  asio::awaitable<void> accept_loop();
  template <class Stream>
  asio::awaitable<void> serve(Stream& stream);
  asio::awaitable<void> serve_plain(tcp::socket socket);
  asio::awaitable<void> serve_tls(tcp::socket socket);
  Reply dispatch(const ServerRequest& request);

  Handler handler_;
  asio::ssl::context* tls_;
  std::string address_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  mutable std::mutex mutex_;  // guards requests_ and calls into handler_
  std::vector<ServerRequest> requests_;
  std::atomic<int> connections_{0};
  std::atomic<int> closed_{0};
  std::thread thread_;
};

// A plain-HTTP upstream "test.local" at server's address, with 2 s connect, response and idle timeouts.
config::Upstream upstream_for(const TestServer& server);

}  // namespace ocigate::upstream::test
