#include "ocigate/cli/healthcheck.hpp"

#include <cstdio>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace ocigate::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Result<HealthTarget> parse_health_url(std::string_view url) {
  HealthTarget target;
  if (url.starts_with("https://")) {
    target.tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return Error{Errc::config_invalid, "--url must start with http:// or https://"};
  }
  auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) target.path = std::string(url.substr(slash));
  if (target.path.find_first_of("?# \r\n") != std::string::npos) {
    return Error{Errc::config_invalid, "--url: a plain path only, no query, fragment or spaces"};
  }
  std::string_view port_text;
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return Error{Errc::config_invalid, "--url: unclosed [ in the host"};
    target.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return Error{Errc::config_invalid, "--url: expected :port after ]"};
      port_text = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.find(':');
    target.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (target.host.empty() || target.host.find('@') != std::string::npos) {
    return Error{Errc::config_invalid, "--url: a host is needed (and no user@)"};
  }
  target.port = target.tls ? 443 : 80;
  if (!port_text.empty()) {
    unsigned long port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || port > 65535) return Error{Errc::config_invalid, "--url: bad port"};
      port = port * 10 + static_cast<unsigned long>(c - '0');
    }
    if (port == 0 || port > 65535) return Error{Errc::config_invalid, "--url: bad port"};
    target.port = static_cast<std::uint16_t>(port);
  }
  return target;
}

HealthTarget health_target(const config::Config& config) {
  // The metrics listener is plain HTTP and answers probes: preferred, so a main listener that
  // wants client certificates does not fail the probe.
  const auto& endpoint = config.server.metrics_listen ? *config.server.metrics_listen : config.server.listen;
  HealthTarget target;
  target.tls = !config.server.metrics_listen && config.server.tls.has_value();
  target.host = endpoint.host;
  if (target.host == "0.0.0.0") target.host = "127.0.0.1";
  if (target.host == "::") target.host = "::1";
  target.port = endpoint.port;
  return target;
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

template <class Stream>
asio::awaitable<Result<unsigned>> get(Stream& stream, const HealthTarget& target) {
  http::request<http::empty_body> request(http::verb::get, target.path, 11);
  request.set(http::field::host, target.host);
  request.set(http::field::user_agent, "ocigate-healthcheck");
  request.keep_alive(false);
  auto [write_ec, written] = co_await http::async_write(stream, request, use_tuple);
  (void)written;
  if (write_ec) co_return Error{Errc::upstream_error, "sending the request: " + write_ec.message()};
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);
  auto [read_ec, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
  (void)read;
  if (read_ec) co_return Error{Errc::upstream_error, "reading the answer: " + read_ec.message()};
  co_return parser.get().result_int();
}

asio::awaitable<Result<unsigned>> probe(const HealthTarget& target, std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [resolve_ec, endpoints] = co_await resolver.async_resolve(target.host, std::to_string(target.port), use_tuple);
  if (resolve_ec) co_return Error{Errc::upstream_error, "cannot resolve " + target.host + ": " + resolve_ec.message()};
  beast::tcp_stream stream(executor);
  stream.expires_after(timeout);
  auto [connect_ec, endpoint] = co_await stream.async_connect(endpoints, use_tuple);
  (void)endpoint;
  if (connect_ec) co_return Error{Errc::upstream_error, "cannot connect: " + connect_ec.message()};
  if (!target.tls) co_return co_await get(stream, target);
  asio::ssl::context context(asio::ssl::context::tls_client);
  context.set_verify_mode(asio::ssl::verify_none);
  beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), context);
  auto [handshake_ec] = co_await tls.async_handshake(asio::ssl::stream_base::client, use_tuple);
  if (handshake_ec) co_return Error{Errc::upstream_error, "TLS handshake failed: " + handshake_ec.message()};
  co_return co_await get(tls, target);
}

asio::awaitable<void> probe_into(HealthTarget target, std::chrono::milliseconds timeout,
                                 std::optional<Result<unsigned>>* out) {
  out->emplace(co_await probe(target, timeout));
}

}  // namespace

int healthcheck(const HealthTarget& target, std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  std::optional<Result<unsigned>> answer;
  asio::co_spawn(ioc, probe_into(target, timeout, &answer), asio::detached);
  ioc.run_for(timeout);
  const std::string where = std::string(target.tls ? "https://" : "http://") + target.host + ":" +
                            std::to_string(target.port) + target.path;
  if (!answer) {
    std::fprintf(stderr, "ocigate healthcheck: %s: no answer within %lld ms\n", where.c_str(),
                 static_cast<long long>(timeout.count()));
    return 1;
  }
  const auto& status = *answer;
  if (!status) {
    std::fprintf(stderr, "ocigate healthcheck: %s: %s\n", where.c_str(), status.error().message.c_str());
    return 1;
  }
  if (*status != 200) {
    std::fprintf(stderr, "ocigate healthcheck: %s: HTTP %u\n", where.c_str(), *status);
    return 1;
  }
  return 0;
}

}  // namespace ocigate::cli
