#include "connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ocigate::upstream::detail {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::uint16_t default_port(bool tls) { return tls ? 443 : 80; }

}  // namespace

std::string Endpoint::key() const { return (tls ? "https://[" : "http://[") + host + "]:" + std::to_string(port); }

std::string Endpoint::host_header() const {
  std::string name = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port == default_port(tls)) return name;
  return name + ":" + std::to_string(port);
}

Result<Location> split_url(boost::urls::url_view url) {
  const std::string scheme(url.scheme());
  if (scheme != "http" && scheme != "https") return Error{Errc::upstream_error, "URL scheme is not http(s)"};
  if (url.has_userinfo()) return Error{Errc::upstream_error, "URL with embedded credentials refused"};
  Location location;
  location.endpoint.tls = scheme == "https";
  location.endpoint.host = url.host_address();
  if (location.endpoint.host.empty() || !header_safe(location.endpoint.host)) {
    return Error{Errc::upstream_error, "URL without a usable host"};
  }
  location.endpoint.port = default_port(location.endpoint.tls);
  if (url.has_port()) {
    const std::string_view digits = url.port();
    unsigned long port = 0;
    for (char c : digits) {
      port = port * 10 + static_cast<unsigned long>(c - '0');  // Boost.URL admits digits only
      if (port > 65535) break;
    }
    if (digits.empty() || port == 0 || port > 65535) return Error{Errc::upstream_error, "URL with an invalid port"};
    location.endpoint.port = static_cast<std::uint16_t>(port);
  }
  location.target = url.encoded_path();
  if (location.target.empty()) location.target = "/";
  if (url.has_query()) location.target += "?" + std::string(url.encoded_query());
  if (!header_safe(location.target)) return Error{Errc::upstream_error, "URL with an unusable path"};
  return location;
}

bool is_loopback(std::string_view host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

asio::awaitable<beast::error_code> write_request(Connection& connection, http::request<http::empty_body>& request) {
  if (connection.plain) {
    auto [ec, n] = co_await http::async_write(*connection.plain, request, use_tuple);
    co_return ec;
  }
  auto [ec, n] = co_await http::async_write(*connection.tls, request, use_tuple);
  co_return ec;
}

asio::awaitable<beast::error_code> read_header(Connection& connection, Parser& parser) {
  if (connection.plain) {
    auto [ec, n] = co_await http::async_read_header(*connection.plain, connection.buffer, parser, use_tuple);
    co_return ec;
  }
  auto [ec, n] = co_await http::async_read_header(*connection.tls, connection.buffer, parser, use_tuple);
  co_return ec;
}

asio::awaitable<beast::error_code> read_body_step(Connection& connection, Parser& parser) {
  // Beast reads at most the buffer's spare capacity (512 bytes minimum); after a header that is
  // a few hundred bytes, so a body would cost a system call per half kilobyte. A chunked body is
  // read in steps of up to this size; a Content-Length body skips the parser and is read straight
  // into the caller's buffer (read_raw).
  constexpr std::size_t body_read_size = 256 * 1024;
  if (connection.buffer.capacity() < body_read_size) connection.buffer.reserve(body_read_size);
  if (connection.plain) {
    auto [ec, n] = co_await http::async_read_some(*connection.plain, connection.buffer, parser, use_tuple);
    co_return ec;
  }
  auto [ec, n] = co_await http::async_read_some(*connection.tls, connection.buffer, parser, use_tuple);
  co_return ec;
}

asio::awaitable<std::pair<beast::error_code, std::size_t>> read_raw(Connection& connection,
                                                                    asio::mutable_buffer buffer) {
  if (connection.plain) {
    auto [ec, n] = co_await connection.plain->async_read_some(buffer, use_tuple);
    co_return std::pair{ec, n};
  }
  auto [ec, n] = co_await connection.tls->async_read_some(buffer, use_tuple);
  co_return std::pair{ec, n};
}

// An idle connection must have nothing to read: bytes that arrived after the last response (an
// upstream that sent more than Content-Length) would be taken as the next answer. Such a
// connection, or one with a socket error, is dropped.
std::unique_ptr<Connection> Pool::take(const Endpoint& endpoint) {
  std::lock_guard lock(mutex_);
  auto it = idle_.find(endpoint.key());
  while (it != idle_.end() && !it->second.empty()) {
    auto connection = std::move(it->second.back());
    it->second.pop_back();
    beast::error_code ec;
    const auto pending = connection->lowest().socket().available(ec);
    if (!ec && pending == 0) return connection;
  }
  return nullptr;
}

void Pool::give_back(std::unique_ptr<Connection> connection) {
  // No timer may close a connection that waits in the pool.
  connection->lowest().expires_never();
  connection->reused = true;
  std::lock_guard lock(mutex_);
  auto& idle = idle_[connection->endpoint.key()];
  if (idle.size() < max_idle_) idle.push_back(std::move(connection));
}

std::size_t Pool::idle_count(const Endpoint& endpoint) {
  std::lock_guard lock(mutex_);
  auto it = idle_.find(endpoint.key());
  return it == idle_.end() ? 0 : it->second.size();
}

std::string base64(std::string_view in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t at) { return static_cast<unsigned>(static_cast<unsigned char>(in[at])); };
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += {table[v >> 18], table[(v >> 12) & 63], table[(v >> 6) & 63], table[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = byte(i) << 16;
    out += {table[v >> 18], table[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += {table[v >> 18], table[(v >> 12) & 63], table[(v >> 6) & 63], '='};
  }
  return out;
}

bool header_safe(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace ocigate::upstream::detail
