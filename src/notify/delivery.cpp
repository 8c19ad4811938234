#include "delivery.hpp"

#include <ctime>
#include <memory>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "ocigate/notify/payload.hpp"
#include "ocigate/common/address.hpp"

namespace ocigate::notify::detail {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Endpoints = std::vector<tcp::endpoint>;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t max_answer_header = 16 * 1024;
constexpr std::size_t max_answer_body = 64 * 1024;  // read only to finish the exchange; never kept

Attempt retry(std::string reason) { return Attempt{Attempt::Result::retry, std::move(reason), std::nullopt}; }
Attempt give_up(std::string reason) { return Attempt{Attempt::Result::give_up, std::move(reason), std::nullopt}; }

std::string duration_text(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + "s";
  return std::to_string(duration.count()) + "ms";
}

std::optional<asio::ip::address> literal_address(const std::string& host) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  return address;
}

// "host:port", IPv6 in brackets, for messages; never the path, which may be a credential.
std::string where(const config::Webhook& webhook) {
  const bool v6 = webhook.host.find(':') != std::string::npos;
  return (v6 ? "[" + webhook.host + "]" : webhook.host) + ":" + std::to_string(webhook.port);
}

std::string host_header(const config::Webhook& webhook) {
  const bool v6 = webhook.host.find(':') != std::string::npos;
  std::string host = v6 ? "[" + webhook.host + "]" : webhook.host;
  if (webhook.port != (webhook.tls ? 443 : 80)) host += ":" + std::to_string(webhook.port);
  return host;
}

// A lookup's answer, handed back through a timer so that the wait for it is bounded: getaddrinfo
// cannot be interrupted, and an answer that comes after the deadline is dropped.
struct LookupWait {
  explicit LookupWait(asio::any_io_executor executor) : timer(std::move(executor)) {}
  asio::steady_timer timer;
  std::optional<Result<Endpoints>> result;
};

asio::awaitable<void> run_lookup(upstream::Resolve resolve, std::shared_ptr<LookupWait> wait, std::string host,
                                 std::string service) {
  auto result = co_await resolve(std::move(host), std::move(service));
  asio::post(wait->timer.get_executor(), [wait, result = std::move(result)]() mutable {
    wait->result = std::move(result);
    wait->timer.cancel();
  });
}

asio::awaitable<Result<Endpoints>> lookup(const config::Webhook& webhook, const upstream::Resolve& resolve,
                                          Clock::time_point deadline) {
  if (auto address = literal_address(webhook.host)) co_return Endpoints{tcp::endpoint(*address, webhook.port)};
  auto executor = co_await asio::this_coro::executor;
  auto wait = std::make_shared<LookupWait>(executor);
  wait->timer.expires_at(deadline);
  asio::co_spawn(executor, run_lookup(resolve, wait, webhook.host, std::to_string(webhook.port)), asio::detached);
  co_await wait->timer.async_wait(use_tuple);
  if (!wait->result) {
    co_return Error{Errc::upstream_timeout, "looking up " + webhook.host + " took longer than " +
                                                duration_text(webhook.timeout)};
  }
  co_return std::move(*wait->result);
}

// Judged on the addresses about to be connected to, so a name cannot be re-pointed (DNS
// rebinding) at the machine ocigate runs on, its network or a cloud metadata service.
std::optional<std::string> refused_address(const Target& target, const Endpoints& endpoints) {
  for (const auto& endpoint : endpoints) {
    const auto address_class = net::classify_address(endpoint.address());
    if (!net::redirect_allowed(address_class, target.home_classes)) {
      return target.webhook->host + " resolves to " + endpoint.address().to_string() + " (" +
             std::string(net::class_name(address_class)) +
             "): a webhook may reach such an address only when its URL names one (never link-local)";
    }
  }
  return std::nullopt;
}

http::request<http::string_body> make_request(const config::Webhook& webhook, const Post& post) {
  http::request<http::string_body> request{http::verb::post, webhook.target, 11};
  request.set(http::field::host, host_header(webhook));
  request.set(http::field::user_agent, "ocigate");
  request.set(http::field::content_type, "application/json");
  request.set(http::field::connection, "close");
  request.set("X-Ocigate-Event", post.event);
  request.set("X-Ocigate-Delivery", post.delivery);
  if (!webhook.secret.empty()) request.set("X-Ocigate-Signature", signature(webhook.secret, post.body));
  request.body() = std::string(post.body);
  request.prepare_payload();
  return request;
}

Attempt judge_status(const config::Webhook& webhook, const http::response_parser<http::string_body>& parser) {
  const auto& answer = parser.get();
  const unsigned status = answer.result_int();
  if (status >= 200 && status < 300) return Attempt{Attempt::Result::delivered, {}, std::nullopt};
  const std::string text = where(webhook) + " answered HTTP " + std::to_string(status);
  if (status == 429 || (status >= 500 && status < 600)) {
    Attempt attempt = retry(text);
    if (auto it = answer.find(http::field::retry_after); it != answer.end()) {
      attempt.retry_after = parse_retry_after(it->value(), std::chrono::system_clock::now());
    }
    return attempt;
  }
  if (status >= 300 && status < 400) return give_up(text + ": redirects are not followed");
  return give_up(text);
}

// Sends the request and reads the answer over a connected (and, for TLS, handshaken) stream.
template <class Stream>
asio::awaitable<Attempt> exchange(Stream& stream, const config::Webhook& webhook, const Post& post,
                                  Clock::time_point deadline) {
  auto request = make_request(webhook, post);
  beast::get_lowest_layer(stream).expires_at(deadline);
  auto [wec, written] = co_await http::async_write(stream, request, use_tuple);
  if (wec == beast::error::timeout) co_return retry(where(webhook) + ": no answer within " + duration_text(webhook.timeout));
  if (wec) co_return retry("sending to " + where(webhook) + ": " + wec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(max_answer_header);
  parser.body_limit(max_answer_body);
  auto [rec, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
  // The status is what counts; a long or cut body after it does not undo a delivery.
  if (parser.is_header_done()) co_return judge_status(webhook, parser);
  if (rec == beast::error::timeout) co_return retry(where(webhook) + ": no answer within " + duration_text(webhook.timeout));
  co_return retry("reading the answer of " + where(webhook) + ": " + rec.message());
}

Attempt handshake_error(const config::Webhook& webhook, beast::ssl_stream<beast::tcp_stream>& stream,
                        const beast::error_code& ec) {
  if (ec == beast::error::timeout) {
    return retry("TLS handshake with " + where(webhook) + " took longer than " + duration_text(webhook.timeout));
  }
  const long verify = SSL_get_verify_result(stream.native_handle());
  if (verify != X509_V_OK) {
    return give_up("TLS handshake with " + where(webhook) + ": certificate verification failed: " +
                   X509_verify_cert_error_string(verify));
  }
  return retry("TLS handshake with " + where(webhook) + ": " + ec.message());
}

asio::awaitable<Attempt> over_tls(beast::tcp_stream connected, const Target& target, const Post& post,
                                  Clock::time_point deadline) {
  const auto& webhook = *target.webhook;
  beast::ssl_stream<beast::tcp_stream> stream(std::move(connected), *target.tls);
  // SNI carries names only (RFC 6066); an address is verified against the certificate's IP SANs.
  if (!literal_address(webhook.host) && !SSL_set_tlsext_host_name(stream.native_handle(), webhook.host.c_str())) {
    co_return give_up("cannot set the TLS server name " + webhook.host);
  }
  stream.set_verify_callback(ssl::host_name_verification(webhook.host));
  beast::get_lowest_layer(stream).expires_at(deadline);
  auto [hec] = co_await stream.async_handshake(ssl::stream_base::client, use_tuple);
  if (hec) co_return handshake_error(webhook, stream, hec);
  co_return co_await exchange(stream, webhook, post, deadline);
}

}  // namespace

std::uint8_t home_classes(const config::Webhook& webhook) {
  std::uint8_t classes = 0;
  if (webhook.host == "localhost") classes |= net::class_bit(net::AddressClass::loopback);
  if (auto address = literal_address(webhook.host)) {
    const auto address_class = net::classify_address(*address);
    if (address_class == net::AddressClass::loopback || address_class == net::AddressClass::private_network) {
      classes |= net::class_bit(address_class);
    }
  }
  return classes;
}

asio::awaitable<Attempt> post_once(const Target& target, const upstream::Resolve& resolve, const Post& post) {
  const auto& webhook = *target.webhook;
  const auto deadline = Clock::now() + webhook.timeout;
  auto endpoints = co_await lookup(webhook, resolve, deadline);
  if (!endpoints) co_return retry(endpoints.error().message);
  if (endpoints->empty()) co_return retry(webhook.host + " has no address");
  if (auto refusal = refused_address(target, *endpoints)) co_return give_up(std::move(*refusal));
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_at(deadline);
  auto [cec, connected_to] = co_await stream.async_connect(*endpoints, use_tuple);
  if (cec == beast::error::timeout) {
    co_return retry("connecting to " + where(webhook) + " took longer than " + duration_text(webhook.timeout));
  }
  if (cec) co_return retry("connect to " + where(webhook) + ": " + cec.message());
  if (webhook.tls) co_return co_await over_tls(std::move(stream), target, post, deadline);
  co_return co_await exchange(stream, webhook, post, deadline);
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    if (value.size() > 9) return std::chrono::hours(24 * 365);  // absurdly long: the cap applies anyway
    return std::chrono::seconds(std::stoul(std::string(value)));
  }
  // IMF-fixdate, the only form a sender may generate: "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm tm{};
  const std::string text(value);
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (at <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
}

}  // namespace ocigate::notify::detail
