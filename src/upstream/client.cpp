#include "ocigate/upstream/client.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <nlohmann/json.hpp>

#include "ocigate/oci/challenge.hpp"

namespace ocigate::upstream {

namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr int max_attempts = 3;
constexpr int max_redirects = 5;
constexpr std::uint32_t header_limit = 64 * 1024;

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  bool tls = false;
  std::string key() const { return (tls ? "https://" : "http://") + host + ":" + std::to_string(port); }
  bool operator==(const Endpoint&) const = default;
};

// A plain or TLS connection. Only one of the two streams is set.
struct Connection {
  Endpoint endpoint;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  bool reused = false;

  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*tls); }
};

using Parser = http::response_parser<http::buffer_body>;

// Transport helpers that dispatch on the stream kind.
asio::awaitable<beast::error_code> write_request(Connection& c, http::request<http::empty_body>& req) {
  if (c.plain) {
    auto [ec, n] = co_await http::async_write(*c.plain, req, use_tuple);
    co_return ec;
  }
  auto [ec, n] = co_await http::async_write(*c.tls, req, use_tuple);
  co_return ec;
}

asio::awaitable<beast::error_code> read_header(Connection& c, Parser& parser) {
  if (c.plain) {
    auto [ec, n] = co_await http::async_read_header(*c.plain, c.buffer, parser, use_tuple);
    co_return ec;
  }
  auto [ec, n] = co_await http::async_read_header(*c.tls, c.buffer, parser, use_tuple);
  co_return ec;
}

asio::awaitable<beast::error_code> read_body(Connection& c, Parser& parser) {
  if (c.plain) {
    auto [ec, n] = co_await http::async_read(*c.plain, c.buffer, parser, use_tuple);
    co_return ec;
  }
  auto [ec, n] = co_await http::async_read(*c.tls, c.buffer, parser, use_tuple);
  co_return ec;
}

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool retryable_status(unsigned status) { return status == 502 || status == 503 || status == 504; }

std::string base64(std::string_view in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += {table[v >> 18], table[(v >> 12) & 63], table[(v >> 6) & 63], table[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {table[v >> 18], table[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {table[v >> 18], table[(v >> 12) & 63], table[(v >> 6) & 63], '='};
  }
  return out;
}

class ClientImpl;

class ResponseImpl final : public Response {
 public:
  ResponseImpl(std::shared_ptr<ClientImpl> client, std::unique_ptr<Connection> connection,
               std::unique_ptr<Parser> parser, std::chrono::seconds idle_timeout)
      : client_(std::move(client)),
        connection_(std::move(connection)),
        parser_(std::move(parser)),
        idle_timeout_(idle_timeout),
        served_by_(connection_->endpoint.host) {
    if (parser_->is_done()) release();
  }
  ~ResponseImpl() override;

  unsigned status() const override { return parser_->get().result_int(); }
  const http::fields& headers() const override { return parser_->get(); }
  std::optional<std::uint64_t> content_length() const override {
    if (auto length = parser_->content_length()) return *length;
    auto it = parser_->get().find(http::field::content_length);
    if (it == parser_->get().end()) return std::nullopt;
    return std::strtoull(std::string(it->value()).c_str(), nullptr, 10);
  }
  const std::string& served_by() const override { return served_by_; }

  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buffer) override {
    if (parser_->is_done() || buffer.size() == 0) co_return std::size_t{0};
    if (!connection_) co_return Error{Errc::upstream_error, "upstream connection already closed"};
    auto& body = parser_->get().body();
    body.data = buffer.data();
    body.size = buffer.size();
    connection_->lowest().expires_after(idle_timeout_);
    auto ec = co_await read_body(*connection_, *parser_);
    std::size_t n = buffer.size() - body.size;
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      connection_.reset();
      if (ec == beast::error::timeout) {
        co_return Error{Errc::upstream_timeout, "upstream " + served_by_ + " stalled mid-body"};
      }
      co_return Error{Errc::upstream_error, "upstream " + served_by_ + " body failed: " + ec.message()};
    }
    if (parser_->is_done()) release();
    if (n == 0 && !parser_->is_done()) co_return Error{Errc::upstream_error, "upstream body made no progress"};
    co_return n;
  }

  asio::awaitable<Result<std::string>> read_all(std::size_t limit) override {
    std::string out;
    std::string piece(64 * 1024, '\0');
    for (;;) {
      auto n = co_await read_some(asio::buffer(piece));
      if (!n) co_return n.error();
      if (*n == 0) break;
      if (out.size() + *n > limit) {
        connection_.reset();
        co_return Error{Errc::size_invalid, "upstream body larger than " + std::to_string(limit) + " bytes"};
      }
      out.append(piece.data(), *n);
    }
    co_return out;
  }

 private:
  void release();

  std::shared_ptr<ClientImpl> client_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Parser> parser_;
  std::chrono::seconds idle_timeout_;
  std::string served_by_;
};

class ClientImpl final : public Client, public std::enable_shared_from_this<ClientImpl> {
 public:
  ClientImpl(asio::any_io_executor executor, config::Upstream upstream)
      : executor_(std::move(executor)), upstream_(std::move(upstream)), tls_context_(ssl::context::tls_client) {
    tls_context_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                             ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    beast::error_code ec;
    tls_context_.set_default_verify_paths(ec);
    if (!upstream_.ca_file.empty()) tls_context_.load_verify_file(upstream_.ca_file, ec);
    tls_context_.set_verify_mode(ssl::verify_peer);
    home_ = Endpoint{upstream_.host, upstream_.port, upstream_.tls};
  }

  const config::Upstream& upstream() const override { return upstream_; }
  ClientStats stats() const override { return {requests_.load(), connections_opened_.load(), token_fetches_.load()}; }

  asio::awaitable<Result<std::unique_ptr<Response>>> send(Request request) override {
    const bool idempotent = request.method == http::verb::get || request.method == http::verb::head;
    Result<std::unique_ptr<Response>> last = Error{Errc::upstream_error, "no attempt made"};
    for (int attempt = 1; attempt <= max_attempts; ++attempt) {
      last = co_await attempt_once(request);
      bool retry = idempotent && attempt < max_attempts &&
                   (!last.ok() ? last.error().code != Errc::unauthorized : retryable_status((*last)->status()));
      if (!retry) co_return last;
      auto delay = std::chrono::milliseconds(100 * (1 << (2 * (attempt - 1))));  // 100 ms, 400 ms
      if (last.ok()) {
        auto it = (*last)->headers().find(http::field::retry_after);
        if (it != (*last)->headers().end()) {
          auto seconds = std::strtoul(std::string(it->value()).c_str(), nullptr, 10);
          if (seconds > 0 && seconds <= 5) delay = std::chrono::seconds(seconds);
        }
      }
      last = Error{Errc::upstream_error, "retrying"};  // drop the connection before sleeping
      asio::steady_timer timer(co_await asio::this_coro::executor, delay);
      co_await timer.async_wait(use_tuple);
    }
    co_return last;
  }

  void give_back(std::unique_ptr<Connection> connection) {
    std::lock_guard lock(pool_mutex_);
    auto& idle = pool_[connection->endpoint.key()];
    if (idle.size() < upstream_.max_connections) {
      connection->reused = true;
      idle.push_back(std::move(connection));
    }
  }

 private:
  struct Exchange {
    std::unique_ptr<Connection> connection;
    std::unique_ptr<Parser> parser;
  };

  // One request including the auth dance and redirects; no retries.
  asio::awaitable<Result<std::unique_ptr<Response>>> attempt_once(const Request& request) {
    Endpoint endpoint = home_;
    std::string target = upstream_.base_path + request.target;
    std::string authorization = cached_authorization(request.scope);
    bool auth_tried = false;
    for (int hop = 0;; ++hop) {
      ++requests_;
      auto exchanged = co_await exchange(endpoint, request.method, target, request, authorization);
      if (!exchanged) co_return exchanged.error();
      auto& ex = *exchanged;
      const unsigned status = ex.parser->get().result_int();
      if (status == 401 && !auth_tried && endpoint == home_) {
        auth_tried = true;
        auto challenge = ex.parser->get()[http::field::www_authenticate];
        const std::string challenge_text(challenge);
        auto fresh = co_await authorize(challenge_text, request.scope);
        if (!fresh.empty()) {
          authorization = fresh;
          continue;
        }
      }
      if (request.follow_redirects && is_redirect(status)) {
        if (hop >= max_redirects) co_return Error{Errc::upstream_error, "upstream redirected more than 5 times"};
        auto next = redirect_target(endpoint, target, std::string(ex.parser->get()[http::field::location]));
        if (!next) co_return next.error();
        if (!(next->first == endpoint)) authorization.clear();  // credentials stay with their host
        endpoint = next->first;
        target = next->second;
        continue;
      }
      co_return std::unique_ptr<Response>(std::make_unique<ResponseImpl>(
          shared_from_this(), std::move(ex.connection), std::move(ex.parser), upstream_.idle_timeout));
    }
  }

  Result<std::pair<Endpoint, std::string>> redirect_target(const Endpoint& from, const std::string& from_target,
                                                           const std::string& location) {
    if (location.empty()) return Error{Errc::upstream_error, "redirect without Location"};
    if (location.front() == '/') return std::pair{from, location};
    auto url = boost::urls::parse_absolute_uri(location);
    if (!url) return Error{Errc::upstream_error, "redirect to an unparsable Location"};
    std::string scheme(url->scheme());
    if (scheme != "https" && !(scheme == "http" && !upstream_.tls)) {
      return Error{Errc::upstream_error, "redirect to " + scheme + " refused"};
    }
    Endpoint next{std::string(url->host()), 0, scheme == "https"};
    if (!next.host.empty() && next.host.front() == '[') next.host = next.host.substr(1, next.host.size() - 2);
    next.port = url->has_port() ? static_cast<std::uint16_t>(std::stoul(std::string(url->port())))
                                : (next.tls ? 443 : 80);
    std::string target(url->encoded_path());
    if (target.empty()) target = "/";
    if (url->has_query()) target += "?" + std::string(url->encoded_query());
    (void)from_target;
    return std::pair{next, target};
  }

  // Sends one request and reads the response header, on a pooled connection when one is idle.
  // A pooled connection that fails before a header arrives was stale: retried once on a new one.
  asio::awaitable<Result<Exchange>> exchange(const Endpoint& endpoint, http::verb method, const std::string& target,
                                             const Request& request, const std::string& authorization) {
    for (int fresh_tries = 0; fresh_tries < 2; ++fresh_tries) {
      auto connection = fresh_tries == 0 ? take_idle(endpoint) : nullptr;
      if (!connection) {
        auto opened = co_await open(endpoint);
        if (!opened) co_return opened.error();
        connection = std::move(*opened);
      }
      http::request<http::empty_body> req{method, target, 11};
      req.set(http::field::host, endpoint.port == (endpoint.tls ? 443 : 80)
                                     ? endpoint.host
                                     : endpoint.host + ":" + std::to_string(endpoint.port));
      req.set(http::field::user_agent, "ocigate");
      if (!request.accept.empty()) req.set(http::field::accept, request.accept);
      if (!request.range.empty()) req.set(http::field::range, request.range);
      if (!authorization.empty()) req.set(http::field::authorization, authorization);
      req.keep_alive(true);
      connection->lowest().expires_after(upstream_.response_timeout);
      auto ec = co_await write_request(*connection, req);
      auto parser = std::make_unique<Parser>();
      parser->header_limit(header_limit);
      parser->body_limit(boost::none);
      if (method == http::verb::head) parser->skip(true);
      if (!ec) ec = co_await read_header(*connection, *parser);
      if (!ec) co_return Exchange{std::move(connection), std::move(parser)};
      if (connection->reused && ec != beast::error::timeout) continue;
      if (ec == beast::error::timeout) {
        co_return Error{Errc::upstream_timeout, "upstream " + endpoint.host + " did not answer within " +
                                                    std::to_string(upstream_.response_timeout.count()) + "s"};
      }
      co_return Error{Errc::upstream_error, "upstream " + endpoint.host + ": " + ec.message()};
    }
    co_return Error{Errc::upstream_error, "upstream " + endpoint.host + " closed the connection"};
  }

  std::unique_ptr<Connection> take_idle(const Endpoint& endpoint) {
    std::lock_guard lock(pool_mutex_);
    auto it = pool_.find(endpoint.key());
    if (it == pool_.end() || it->second.empty()) return nullptr;
    auto connection = std::move(it->second.back());
    it->second.pop_back();
    return connection;
  }

  asio::awaitable<Result<std::unique_ptr<Connection>>> open(const Endpoint& endpoint) {
    tcp::resolver resolver(executor_);
    auto [rec, results] = co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port), use_tuple);
    if (rec) co_return Error{Errc::upstream_error, "cannot resolve " + endpoint.host + ": " + rec.message()};
    auto connection = std::make_unique<Connection>();
    connection->endpoint = endpoint;
    beast::tcp_stream stream(executor_);
    stream.expires_after(upstream_.connect_timeout);
    auto [cec, ep] = co_await stream.async_connect(results, use_tuple);
    if (cec) {
      if (cec == beast::error::timeout) {
        co_return Error{Errc::upstream_timeout, "connecting to " + endpoint.host + " timed out"};
      }
      co_return Error{Errc::upstream_error, "cannot connect to " + endpoint.key() + ": " + cec.message()};
    }
    ++connections_opened_;
    if (!endpoint.tls) {
      connection->plain = std::make_unique<beast::tcp_stream>(std::move(stream));
      co_return connection;
    }
    connection->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(stream), tls_context_);
    if (!SSL_set_tlsext_host_name(connection->tls->native_handle(), endpoint.host.c_str())) {
      co_return Error{Errc::upstream_error, "cannot set TLS server name for " + endpoint.host};
    }
    connection->tls->set_verify_callback(ssl::host_name_verification(endpoint.host));
    connection->lowest().expires_after(upstream_.connect_timeout);
    auto [hec] = co_await connection->tls->async_handshake(ssl::stream_base::client, use_tuple);
    if (hec) {
      co_return Error{Errc::upstream_error, "TLS handshake with " + endpoint.host + " failed (certificate " +
                                                "verification or protocol): " + hec.message()};
    }
    co_return connection;
  }

  // ---- authentication ----

  std::string cached_authorization(const std::string& scope) {
    std::lock_guard lock(token_mutex_);
    auto it = tokens_.find(scope);
    if (it != tokens_.end() && std::chrono::steady_clock::now() < it->second.expires) return it->second.header;
    if (basic_works_ && !upstream_.username.empty()) return basic_header();
    return {};
  }

  std::string basic_header() const { return "Basic " + base64(upstream_.username + ":" + upstream_.password); }

  // Answers a 401 challenge; returns the Authorization value to retry with, or empty.
  asio::awaitable<std::string> authorize(const std::string& header, const std::string& scope) {
    for (const auto& challenge : oci::parse_challenges(header)) {
      if (challenge.scheme == "basic" && !upstream_.username.empty()) {
        basic_works_ = true;
        co_return basic_header();
      }
      if (challenge.scheme != "bearer") continue;
      auto realm = challenge.params.find("realm");
      if (realm == challenge.params.end()) continue;
      std::string token_scope = scope;
      if (token_scope.empty()) {
        if (auto s = challenge.params.find("scope"); s != challenge.params.end()) token_scope = s->second;
      }
      auto service_it = challenge.params.find("service");
      // Arguments as named locals: GCC 12 miscompiles temporaries of ?: inside co_await expressions.
      std::string service = service_it == challenge.params.end() ? std::string() : service_it->second;
      std::string token = co_await fetch_token(realm->second, service, token_scope);
      if (!token.empty()) co_return token;
    }
    co_return std::string();
  }

  asio::awaitable<std::string> fetch_token(const std::string& realm, const std::string& service,
                                           const std::string& scope) {
    auto url = boost::urls::parse_absolute_uri(realm);
    if (!url) co_return std::string();
    boost::urls::url u(*url);
    if (!service.empty()) u.params().append({"service", service});
    if (!scope.empty()) u.params().append({"scope", scope});
    std::string scheme(u.scheme());
    if (scheme != "https" && scheme != "http") co_return std::string();
    Endpoint endpoint{std::string(u.host()), 0, scheme == "https"};
    endpoint.port = u.has_port() ? static_cast<std::uint16_t>(std::stoul(std::string(u.port())))
                                 : (endpoint.tls ? 443 : 80);
    std::string target(u.encoded_path());
    if (target.empty()) target = "/";
    if (u.has_query()) target += "?" + std::string(u.encoded_query());
    Request token_request;
    token_request.accept = "application/json";
    ++token_fetches_;
    const std::string credentials = upstream_.username.empty() ? std::string() : basic_header();
    auto exchanged = co_await exchange(endpoint, http::verb::get, target, token_request, credentials);
    if (!exchanged) co_return std::string();
    ResponseImpl response(shared_from_this(), std::move(exchanged->connection), std::move(exchanged->parser),
                          upstream_.idle_timeout);
    if (response.status() != 200) co_return std::string();
    auto body = co_await response.read_all(1 << 20);
    if (!body) co_return std::string();
    auto json = nlohmann::json::parse(*body, nullptr, false);
    if (!json.is_object()) co_return std::string();
    std::string token;
    if (json.contains("token") && json["token"].is_string()) token = json["token"].get<std::string>();
    else if (json.contains("access_token") && json["access_token"].is_string()) token = json["access_token"].get<std::string>();
    if (token.empty()) co_return std::string();
    long expires_in = 60;
    if (json.contains("expires_in") && json["expires_in"].is_number_integer()) {
      expires_in = std::clamp<long>(json["expires_in"].get<long>(), 10, 24 * 3600);
    }
    std::string header = "Bearer " + token;
    std::lock_guard lock(token_mutex_);
    // Keep a safety margin so a token never expires between our check and the upstream's.
    tokens_[scope] = {header, std::chrono::steady_clock::now() + std::chrono::seconds(expires_in * 9 / 10)};
    co_return header;
  }

  struct Token {
    std::string header;
    std::chrono::steady_clock::time_point expires;
  };

  asio::any_io_executor executor_;
  config::Upstream upstream_;
  ssl::context tls_context_;
  Endpoint home_;
  std::mutex pool_mutex_;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> pool_;
  std::mutex token_mutex_;
  std::map<std::string, Token> tokens_;
  std::atomic<bool> basic_works_{false};
  std::atomic<std::uint64_t> requests_{0}, connections_opened_{0}, token_fetches_{0};
};

ResponseImpl::~ResponseImpl() = default;

void ResponseImpl::release() {
  if (connection_ && parser_->is_done() && parser_->get().keep_alive()) {
    client_->give_back(std::move(connection_));
  }
  connection_.reset();
}

}  // namespace

std::shared_ptr<Client> Client::create(asio::any_io_executor executor, const config::Upstream& upstream) {
  return std::make_shared<ClientImpl>(std::move(executor), upstream);
}

}  // namespace ocigate::upstream
