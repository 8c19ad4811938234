#pragma once
// Plumbing under the client: where to connect, one plain or TLS connection, the idle pool, and
// the few I/O steps that differ only by stream type.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/url_view.hpp>

#include "ocigate/common/result.hpp"

namespace ocigate::upstream::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

struct Endpoint {
  std::string host;  // IPv6 without brackets
  std::uint16_t port = 0;
  bool tls = false;

  std::string key() const;
  // Value of the Host header: the port only when it is not the scheme's default.
  std::string host_header() const;
  bool operator==(const Endpoint&) const = default;
};

struct Location {
  Endpoint endpoint;
  std::string target;  // origin-form: path and query
};

// An absolute http(s) URL → where to connect and what to ask for. Messages never repeat the URL:
// redirect targets may carry signed query strings.
Result<Location> split_url(boost::urls::url_view url);

bool is_loopback(std::string_view host);

using Parser = http::response_parser<http::buffer_body>;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// A plain or TLS connection: exactly one of the two streams is set.
struct Connection {
  Endpoint endpoint;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<TlsStream> tls;
  beast::flat_buffer buffer;  // bytes read past the parsed message; must be empty to reuse
  bool reused = false;        // came from the pool, so a failure may mean the peer closed it idle

  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*tls); }
};

asio::awaitable<beast::error_code> write_request(Connection& connection, http::request<http::empty_body>& request);
asio::awaitable<beast::error_code> read_header(Connection& connection, Parser& parser);
// One read step: returns once some bytes were parsed, the body buffer is full (need_buffer) or
// the message is complete.
asio::awaitable<beast::error_code> read_body_step(Connection& connection, Parser& parser);
// Some bytes straight from the stream into `buffer`, bypassing the parser and the connection's
// buffer (which must be empty): for the rest of a body whose length the caller tracks.
asio::awaitable<std::pair<beast::error_code, std::size_t>> read_raw(Connection& connection,
                                                                    asio::mutable_buffer buffer);

// Idle keep-alive connections per endpoint, most recently used first out.
class Pool {
 public:
  explicit Pool(std::size_t max_idle) : max_idle_(max_idle) {}
  std::unique_ptr<Connection> take(const Endpoint& endpoint);
  void give_back(std::unique_ptr<Connection> connection);
  std::size_t idle_count(const Endpoint& endpoint);

 private:
  std::size_t max_idle_;
  std::mutex mutex_;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;
};

std::string base64(std::string_view in);

// True when text may go into a header value or request line as is: no control characters.
bool header_safe(std::string_view text);

}  // namespace ocigate::upstream::detail
