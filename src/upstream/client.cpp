#include "ocigate/upstream/client.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "connection.hpp"
#include "lookup.hpp"
#include "token.hpp"
#include "ocigate/oci/challenge.hpp"
#include "ocigate/common/address.hpp"

namespace ocigate::upstream {

namespace {

using namespace detail;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr int max_attempts = 3;
constexpr int max_redirects = 5;
constexpr std::uint32_t header_limit = 64 * 1024;
constexpr std::size_t token_body_limit = 1 << 20;
// Redirect, challenge and error bodies up to this size are read so their connection can be reused.
constexpr std::size_t drain_limit = 64 * 1024;
constexpr std::chrono::seconds max_retry_after{5};

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool retryable_status(unsigned status) { return status == 502 || status == 503 || status == 504; }

std::string seconds_text(std::chrono::seconds s) { return std::to_string(s.count()) + "s"; }

// Retry-After as delta-seconds; HTTP dates are rare from registries and treated as absent.
std::optional<std::chrono::seconds> retry_after(const http::fields& headers) {
  auto it = headers.find(http::field::retry_after);
  if (it == headers.end()) return std::nullopt;
  const std::string_view text = it->value();
  if (text.empty() || text.size() > 9) return std::nullopt;
  long seconds = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = seconds * 10 + (c - '0');
  }
  return std::chrono::seconds(seconds);
}

// Every WWW-Authenticate field, joined: a registry may send Bearer and Basic on separate lines.
std::string challenges_of(const http::fields& headers) {
  std::string joined;
  for (auto it = headers.find(http::field::www_authenticate);
       it != headers.end() && it->name() == http::field::www_authenticate; ++it) {
    if (!joined.empty()) joined += ", ";
    joined += it->value();
  }
  return joined;
}

Error transport_error(const Endpoint& endpoint, const beast::error_code& ec, std::chrono::seconds timeout,
                      const char* waiting_for) {
  if (ec == beast::error::timeout) {
    return Error{Errc::upstream_timeout,
                 "upstream " + endpoint.host + " sent no " + waiting_for + " within " + seconds_text(timeout)};
  }
  return Error{Errc::upstream_error, "upstream " + endpoint.host + ": " + ec.message()};
}

// upstreams[].max_concurrent_fetches: a counting semaphore over a thread-safe channel. A permit is
// a slot in the channel's buffer; sending blocks while every slot is taken, and dropping a permit
// takes one element out again, which wakes the next waiter. A waiter gives up after
// fetch_slot_timeout: the send races a timer, and the loser is cancelled.
class FetchLimiter : public std::enable_shared_from_this<FetchLimiter> {
 public:
  FetchLimiter(asio::any_io_executor executor, unsigned limit) : slots_(std::move(executor), limit), limit_(limit) {}

  unsigned idle() const {
    const unsigned held = held_.load();
    return held < limit_ ? limit_ - held : 0;
  }

  // A permit, or nullptr when no slot came free within timeout.
  asio::awaitable<std::shared_ptr<void>> acquire(std::chrono::steady_clock::duration timeout) {
    if (!slots_.try_send(boost::system::error_code{})) {
      asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
      auto [order, send_ec, timer_ec] =
          co_await asio::experimental::make_parallel_group(slots_.async_send(boost::system::error_code{}, asio::deferred),
                                                           timer.async_wait(asio::deferred))
              .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      (void)order;
      (void)timer_ec;
      // Judged by the send's own outcome, not by which finished first: a send that completed in
      // the same instant the timer fired holds a slot, and dropping it here would leak that slot.
      if (send_ec) co_return nullptr;
    }
    ++held_;
    // Not null: callers test the permit like any pointer.
    co_return std::shared_ptr<void>(static_cast<void*>(this), [self = shared_from_this()](void*) {
      --self->held_;
      self->slots_.try_receive([](boost::system::error_code) {});
    });
  }

 private:
  asio::experimental::concurrent_channel<void(boost::system::error_code)> slots_;
  const unsigned limit_;
  std::atomic<unsigned> held_{0};  // permits out, for idle()
};

class ResponseImpl final : public Response {
 public:
  ResponseImpl(std::shared_ptr<Pool> pool, std::unique_ptr<Connection> connection, std::unique_ptr<Parser> parser,
               std::chrono::seconds idle_timeout)
      : pool_(std::move(pool)),
        connection_(std::move(connection)),
        parser_(std::move(parser)),
        idle_timeout_(idle_timeout),
        served_by_(connection_->endpoint.host) {
    if (parser_->is_done()) release();
  }

  unsigned status() const override { return parser_->get().result_int(); }
  const http::fields& headers() const override { return parser_->get(); }
  std::optional<std::uint64_t> content_length() const override {
    // A HEAD answer is "done" after its header, but its Content-Length still describes the GET body.
    if (auto length = parser_->content_length(); length && !parser_->get().chunked()) return *length;
    return std::nullopt;
  }
  const std::string& served_by() const override { return served_by_; }
  const std::string& auth_error() const override { return auth_error_; }
  void set_auth_error(std::string message) { auth_error_ = std::move(message); }
  void hold(std::shared_ptr<void> permit) {
    permit_ = std::move(permit);
    if (!connection_) permit_.reset();  // the body is already complete
  }

  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buffer) override {
    if (body_done()) co_return std::size_t{0};
    if (!connection_) co_return Error{Errc::upstream_error, "upstream " + served_by_ + " body already failed"};
    if (buffer.size() == 0) co_return Error{Errc::internal, "read_some needs a non-empty buffer"};
    if (raw_left_ || start_raw()) co_return co_await read_raw_some(buffer);
    for (;;) {
      auto& body = parser_->get().body();
      body.data = buffer.data();
      body.size = buffer.size();
      connection_->lowest().expires_after(idle_timeout_);
      auto ec = co_await read_body_step(*connection_, *parser_);
      const std::size_t n = buffer.size() - body.size;
      body.data = nullptr;
      body.size = 0;
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        connection_.reset();
        co_return body_error(ec);
      }
      if (parser_->is_done()) release();
      // A step may parse only framing (a chunk header): keep reading until body bytes arrive.
      if (n > 0 || parser_->is_done()) co_return n;
    }
  }

  asio::awaitable<Result<std::string>> read_all(std::size_t limit) override {
    if (auto length = content_length(); length && *length > limit && !body_done()) {
      connection_.reset();
      co_return Error{Errc::size_invalid, "upstream body of " + std::to_string(*length) + " bytes exceeds the " +
                                              std::to_string(limit) + "-byte limit"};
    }
    std::string out;
    std::string piece(std::min<std::size_t>(limit + 1, 64 * 1024), '\0');
    for (;;) {
      auto n = co_await read_some(asio::buffer(piece));
      if (!n) co_return n.error();
      if (*n == 0) co_return out;
      if (out.size() + *n > limit) {
        connection_.reset();
        co_return Error{Errc::size_invalid, "upstream body exceeds the " + std::to_string(limit) + "-byte limit"};
      }
      out.append(piece.data(), *n);
    }
  }

  // Reads a small leftover body so the connection can serve the next request; drops it otherwise.
  asio::awaitable<void> recycle() {
    auto length = content_length();
    if (!connection_ || !length || *length > drain_limit) {
      connection_.reset();
      co_return;
    }
    auto drained = co_await read_all(drain_limit);
    (void)drained;  // success returned the connection to the pool; failure already dropped it
  }

 private:
  Error body_error(const beast::error_code& ec) const {
    if (ec == beast::error::timeout) {
      return Error{Errc::upstream_timeout,
                   "upstream " + served_by_ + " stalled mid-body for " + seconds_text(idle_timeout_)};
    }
    if (ec == http::error::partial_message || ec == http::error::end_of_stream) {
      return Error{Errc::upstream_error, "upstream " + served_by_ + " closed the connection before the body ended"};
    }
    return Error{Errc::upstream_error, "upstream " + served_by_ + " body failed: " + ec.message()};
  }

  bool body_done() const { return parser_->is_done() || (raw_left_ && *raw_left_ == 0); }

  // Once the parser has taken the header and every byte it buffered, the rest of a Content-Length
  // body is read straight into the caller's buffer: no copy through the parser, and reads as large
  // as that buffer (Beast reads at most 64 KiB at a time).
  bool start_raw() {
    if (connection_->buffer.size() != 0 || parser_->get().chunked()) return false;
    auto left = parser_->content_length_remaining();
    if (!left || *left == 0) return false;
    raw_left_ = *left;
    return true;
  }

  asio::awaitable<Result<std::size_t>> read_raw_some(asio::mutable_buffer buffer) {
    connection_->lowest().expires_after(idle_timeout_);
    const std::size_t want = std::min<std::uint64_t>(buffer.size(), *raw_left_);
    auto [ec, n] = co_await read_raw(*connection_, asio::buffer(buffer.data(), want));
    if (ec) {
      connection_.reset();
      const bool closed = ec == asio::error::eof || ec == ssl::error::stream_truncated;
      co_return body_error(closed ? beast::error_code(http::error::partial_message) : ec);
    }
    *raw_left_ -= n;
    if (*raw_left_ == 0) release();
    co_return n;
  }

  void release() {
    if (connection_ && body_done() && parser_->get().keep_alive() && connection_->buffer.size() == 0) {
      pool_->give_back(std::move(connection_));
    }
    connection_.reset();
    permit_.reset();
  }

  std::shared_ptr<Pool> pool_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Parser> parser_;
  std::chrono::seconds idle_timeout_;
  std::string served_by_;
  std::string auth_error_;
  std::shared_ptr<void> permit_;  // a max_concurrent_fetches slot, held until the body is done
  std::optional<std::uint64_t> raw_left_;  // body bytes still to come once reading past the parser
};

class ClientImpl final : public Client {
 public:
  ClientImpl(asio::any_io_executor executor, config::Upstream upstream, Resolve resolve)
      : executor_(std::move(executor)),
        upstream_(std::move(upstream)),
        lookups_(executor_, upstream_.connect_timeout, std::move(resolve)),
        tls_context_(ssl::context::tls_client),
        pool_(std::make_shared<Pool>(upstream_.max_connections)),
        home_{upstream_.host, upstream_.port, upstream_.tls} {
    setup_tls();
    if (upstream_.max_concurrent_fetches > 0) {
      fetch_limiter_ = std::make_shared<FetchLimiter>(executor_, upstream_.max_concurrent_fetches);
    }
    boost::system::error_code ec;
    auto literal = asio::ip::make_address(home_.host, ec);
    if (!ec) home_classes_ |= net::class_bit(net::classify_address(literal));
  }

  const config::Upstream& upstream() const override { return upstream_; }
  ClientStats stats() const override {
    return {requests_.load(), connections_opened_.load(), token_fetches_.load(), fetch_slot_timeouts_.load()};
  }
  std::optional<unsigned> idle_fetch_slots() const override {
    if (!fetch_limiter_) return std::nullopt;
    return fetch_limiter_->idle();
  }


  asio::awaitable<Result<std::unique_ptr<Response>>> send(Request request) override {
    if (!setup_error_.empty()) co_return Error{Errc::upstream_error, setup_error_};
    if (!header_safe(request.target) || request.target.find(' ') != std::string::npos ||
        !header_safe(request.accept) || !header_safe(request.range)) {
      co_return Error{Errc::internal, "upstream request with control characters or spaces in target or headers"};
    }
    const bool idempotent = request.method == http::verb::get || request.method == http::verb::head;
    // Waits for a slot; released when the answer's body is done (or the answer is dropped).
    std::shared_ptr<void> permit;
    if (fetch_limiter_) {
      permit = co_await fetch_limiter_->acquire(upstream_.fetch_slot_timeout);
      if (!permit) {
        ++fetch_slot_timeouts_;
        Error busy{Errc::upstream_busy, "upstream " + upstream_.name + ": all " +
                                            std::to_string(upstream_.max_concurrent_fetches) +
                                            " fetch slots (max_concurrent_fetches) stayed busy for " +
                                            seconds_text(upstream_.fetch_slot_timeout) + " (fetch_slot_timeout)"};
        busy.retry_after = busy_retry_after;
        co_return busy;
      }
    }
    for (int attempt = 1;; ++attempt) {
      bool retryable = false;
      auto result = co_await attempt_once(request, retryable);
      const bool last = !idempotent || attempt == max_attempts;
      // 100 ms, 400 ms: long enough for a restarting upstream, short enough for a waiting client.
      auto delay = std::chrono::milliseconds(100 << (2 * (attempt - 1)));
      if (result.ok()) {
        const unsigned status = (*result)->status();
        if (last || !retryable_status(status)) {
          if (permit) static_cast<ResponseImpl&>(**result).hold(std::move(permit));
          co_return result;
        }
        if (status == 503) {
          if (auto after = retry_after((*result)->headers())) {
            if (*after > max_retry_after) co_return result;  // the upstream asked for more than we can wait
            delay = std::max<std::chrono::milliseconds>(delay, *after);
          }
        }
      } else if (last || !retryable) {
        co_return result;
      }
      result = Error{Errc::upstream_error, "retrying"};  // closes the failed answer's connection first
      asio::steady_timer timer(co_await asio::this_coro::executor, delay);
      co_await timer.async_wait(use_tuple);
    }
  }

 private:
  void setup_tls() {
    tls_context_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                             ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    SSL_CTX_set_min_proto_version(tls_context_.native_handle(), TLS1_2_VERSION);
    tls_context_.set_verify_mode(ssl::verify_peer);
    beast::error_code ec;
    tls_context_.set_default_verify_paths(ec);  // a machine without a system store may still use ca_file
    if (!upstream_.ca_file.empty()) {
      tls_context_.load_verify_file(upstream_.ca_file, ec);
      if (ec) setup_error_ = "upstream " + upstream_.name + ": cannot load ca_file " + upstream_.ca_file;
    }
  }

  // One request with its auth dance and redirects, without retries. retryable tells the caller
  // that the failure happened before any response header (transport error or timeout).
  asio::awaitable<Result<std::unique_ptr<Response>>> attempt_once(const Request& request, bool& retryable) {
    Endpoint endpoint = home_;
    std::string target = upstream_.base_path + request.target;
    std::string authorization = cached_authorization(request.scope);
    std::string auth_error;
    bool auth_tried = false;
    int redirects = 0;
    for (;;) {
      ++requests_;
      auto exchanged = co_await exchange(endpoint, request.method, target, request, authorization, retryable);
      if (!exchanged) co_return exchanged.error();
      retryable = false;  // a response arrived: what follows is the upstream's answer, not a transport failure
      std::unique_ptr<ResponseImpl> response = std::move(*exchanged);
      const unsigned status = response->status();
      if (status == 401 && !auth_tried && endpoint == home_) {
        auth_tried = true;
        const std::string challenges = challenges_of(response->headers());
        auto authorized = co_await authorize(challenges, request.scope);
        if (authorized) {
          co_await response->recycle();
          authorization = std::move(*authorized);
          continue;
        }
        auth_error = authorized.error().message;
      }
      // Redirects only for blob GETs (a CDN); anything else sees the 3xx as the upstream's answer.
      if (request.follow_redirects && request.method == http::verb::get && is_redirect(status)) {
        if (++redirects > max_redirects) {
          co_return Error{Errc::upstream_error, "upstream " + home_.host + " redirected more than " +
                                                    std::to_string(max_redirects) + " times"};
        }
        const std::string location(response->headers()[http::field::location]);
        auto next = redirect_target(endpoint, target, location);
        if (!next) co_return next.error();
        co_await response->recycle();
        if (!(next->endpoint == endpoint)) authorization.clear();  // credentials stay with their host
        endpoint = std::move(next->endpoint);
        target = std::move(next->target);
        continue;
      }
      response->set_auth_error(std::move(auth_error));
      co_return std::unique_ptr<Response>(std::move(response));
    }
  }

  Result<Location> redirect_target(const Endpoint& from, const std::string& from_target,
                                   const std::string& location) const {
    const std::string where = "upstream " + from.host + " redirect";
    if (location.empty()) return Error{Errc::upstream_error, where + " without Location"};
    auto reference = boost::urls::parse_uri_reference(location);
    if (!reference) return Error{Errc::upstream_error, where + " to an unparsable Location"};
    const std::string base_text = (from.tls ? "https://" : "http://") + from.host_header() + from_target;
    auto base = boost::urls::parse_uri_reference(base_text);  // a view: base_text must outlive it
    if (!base) return Error{Errc::upstream_error, where + " from an unparsable URL"};
    boost::urls::url resolved;
    if (auto r = boost::urls::resolve(*base, *reference, resolved); !r) {
      return Error{Errc::upstream_error, where + " to an unresolvable Location"};
    }
    auto next = split_url(resolved);
    if (!next) return Error{Errc::upstream_error, where + ": " + next.error().message};
    if (!next->endpoint.tls && upstream_.tls) return Error{Errc::upstream_error, where + " from https to http refused"};
    // A name that is an address literal is judged here; names are judged by what they resolve to in open().
    boost::system::error_code ec;
    auto literal = asio::ip::make_address(next->endpoint.host, ec);
    if (!ec && !(next->endpoint == home_)) {
      const net::AddressClass target = net::classify_address(literal);
      if (!net::redirect_allowed(target, home_classes_.load())) return internal_redirect_refused(next->endpoint, target);
    }
    return next;
  }

  Error internal_redirect_refused(const Endpoint& target, net::AddressClass address_class) const {
    std::string why = "upstream " + home_.host + " redirected to " + target.host + ", a " +
                      std::string(net::class_name(address_class)) + " address";
    why += address_class == net::AddressClass::special ? ": refused" : ", while the upstream itself is not on one: refused";
    return Error{Errc::upstream_error, std::move(why)};
  }

  // Sends one request and reads the response header, on a pooled connection when one is idle.
  // A pooled connection that fails before a header arrives was most likely closed by the peer
  // while idle: the request goes once more over a fresh connection.
  asio::awaitable<Result<std::unique_ptr<ResponseImpl>>> exchange(const Endpoint& endpoint, http::verb method,
                                                                   const std::string& target, const Request& request,
                                                                   const std::string& authorization,
                                                                   bool& retryable) {
    http::request<http::empty_body> req{method, target, 11};
    req.set(http::field::host, endpoint.host_header());
    req.set(http::field::user_agent, "ocigate");
    if (!request.accept.empty()) req.set(http::field::accept, request.accept);
    if (!request.range.empty()) req.set(http::field::range, request.range);
    if (!authorization.empty()) req.set(http::field::authorization, authorization);
    req.keep_alive(true);
    for (int tries = 0; tries < 2; ++tries) {
      auto connection = tries == 0 ? pool_->take(endpoint) : nullptr;
      if (!connection) {
        auto opened = co_await open(endpoint, retryable);
        if (!opened) co_return opened.error();
        connection = std::move(*opened);
      }
      auto parser = std::make_unique<Parser>();
      parser->header_limit(header_limit);
      parser->body_limit(boost::none);  // blobs are unbounded; read_all enforces its own limit
      if (method == http::verb::head) parser->skip(true);
      connection->lowest().expires_after(upstream_.response_timeout);
      auto ec = co_await write_request(*connection, req);
      if (!ec) ec = co_await read_header(*connection, *parser);
      if (!ec) {
        co_return std::make_unique<ResponseImpl>(pool_, std::move(connection), std::move(parser),
                                                 upstream_.idle_timeout);
      }
      if (connection->reused && ec != beast::error::timeout) continue;
      retryable = true;
      co_return transport_error(endpoint, ec, upstream_.response_timeout, "response header");
    }
    retryable = true;
    co_return Error{Errc::upstream_error, "upstream " + endpoint.host + " closed the connection without answering"};
  }

  asio::awaitable<Result<std::unique_ptr<Connection>>> open(const Endpoint& endpoint, bool& retryable) {
    retryable = true;
    auto resolved = co_await lookups_.resolve(endpoint.host, endpoint.port);
    if (!resolved) co_return resolved.error();
    const auto& results = *resolved;
    // The upstream itself may live on an internal network; a host it redirects to may not, unless
    // the upstream does too. Judged on the addresses we are about to connect to (no DNS rebinding).
    for (const auto& address : results) {
      const net::AddressClass address_class = net::classify_address(address.address());
      if (endpoint == home_) {
        home_classes_ |= net::class_bit(address_class);
      } else if (!net::redirect_allowed(address_class, home_classes_.load())) {
        retryable = false;
        co_return internal_redirect_refused(endpoint, address_class);
      }
    }
    auto connection = std::make_unique<Connection>();
    connection->endpoint = endpoint;
    // The stream lives on the client's executor, not the caller's strand: pooled connections
    // outlive the coroutine that opened them. Beast runs each operation's timer on the caller's
    // executor, so timeouts stay serialized with the caller.
    beast::tcp_stream stream(executor_);
    stream.expires_after(upstream_.connect_timeout);
    auto [cec, ep] = co_await stream.async_connect(results, use_tuple);
    if (cec) {
      lookups_.forget(endpoint.host, endpoint.port);  // the retry looks the name up again
      if (cec == beast::error::timeout) {
        co_return Error{Errc::upstream_timeout, "connecting to upstream " + endpoint.host + " timed out after " +
                                                    seconds_text(upstream_.connect_timeout)};
      }
      co_return Error{Errc::upstream_error, "cannot connect to upstream " + endpoint.host + ":" +
                                                std::to_string(endpoint.port) + ": " + cec.message()};
    }
    ++connections_opened_;
    beast::error_code nodelay_ec;  // best effort: requests are small writes
    stream.socket().set_option(asio::ip::tcp::no_delay(true), nodelay_ec);
    if (!endpoint.tls) {
      connection->plain = std::make_unique<beast::tcp_stream>(std::move(stream));
      co_return connection;
    }
    connection->tls = std::make_unique<TlsStream>(std::move(stream), tls_context_);
    // SNI carries names only (RFC 6066); an address is verified against the certificate's IP SANs.
    boost::system::error_code address_ec;
    asio::ip::make_address(endpoint.host, address_ec);
    if (address_ec && !SSL_set_tlsext_host_name(connection->tls->native_handle(), endpoint.host.c_str())) {
      retryable = false;
      co_return Error{Errc::upstream_error, "cannot set the TLS server name for upstream " + endpoint.host};
    }
    connection->tls->set_verify_callback(ssl::host_name_verification(endpoint.host));
    connection->lowest().expires_after(upstream_.connect_timeout);
    auto [hec] = co_await connection->tls->async_handshake(ssl::stream_base::client, use_tuple);
    if (hec) co_return handshake_error(endpoint, *connection, hec, retryable);
    co_return connection;
  }

  Error handshake_error(const Endpoint& endpoint, Connection& connection, const beast::error_code& ec,
                        bool& retryable) const {
    if (ec == beast::error::timeout) {
      return Error{Errc::upstream_timeout, "TLS handshake with upstream " + endpoint.host + " timed out after " +
                                               seconds_text(upstream_.connect_timeout)};
    }
    const long verify = SSL_get_verify_result(connection.tls->native_handle());
    if (verify != X509_V_OK) {
      retryable = false;  // a certificate does not fix itself within a retry
      return Error{Errc::upstream_error, "TLS handshake with upstream " + endpoint.host +
                                             " failed: certificate verification failed: " +
                                             X509_verify_cert_error_string(verify)};
    }
    return Error{Errc::upstream_error, "TLS handshake with upstream " + endpoint.host + " failed: " + ec.message() +
                                           " (check its certificate and TLS version)"};
  }

  // ---- authentication ----

  std::string cached_authorization(const std::string& scope) {
    if (auto token = tokens_.find(scope)) return *token;
    if (basic_accepted_ && !upstream_.username.empty()) return basic_authorization();
    return {};
  }

  std::string basic_authorization() const { return basic_credentials(upstream_.username, upstream_.password); }

  // Answers a 401's challenges: the Authorization value to retry with, or why there is none.
  asio::awaitable<Result<std::string>> authorize(const std::string& header, const std::string& scope) {
    const auto challenges = oci::parse_challenges(header);
    std::string failure = "upstream " + home_.host + " answered 401 without a usable challenge";
    for (const auto& challenge : challenges) {
      if (challenge.scheme == "bearer") {
        auto realm = challenge.params.find("realm");
        if (realm == challenge.params.end()) {
          failure = "upstream " + home_.host + " sent a Bearer challenge without realm";
          continue;
        }
        std::string token_scope = scope;
        if (auto s = challenge.params.find("scope"); token_scope.empty() && s != challenge.params.end()) {
          token_scope = s->second;
        }
        auto service_it = challenge.params.find("service");
        // Named locals, not temporaries, as co_await arguments: GCC 12 miscompiles the latter.
        const std::string service = service_it == challenge.params.end() ? std::string() : service_it->second;
        const std::string realm_url = realm->second;
        auto token = co_await fetch_token(realm_url, service, token_scope);
        if (token) co_return token;
        failure = token.error().message;
      } else if (challenge.scheme == "basic") {
        if (upstream_.username.empty()) {
          failure = "upstream " + home_.host + " asks for Basic credentials and none are configured";
          continue;
        }
        basic_accepted_ = true;
        co_return basic_authorization();
      }
    }
    co_return Error{Errc::unauthorized, failure};
  }

  asio::awaitable<Result<std::string>> fetch_token(const std::string& realm, const std::string& service,
                                                   const std::string& scope) {
    auto parsed = boost::urls::parse_absolute_uri(realm);
    if (!parsed) co_return Error{Errc::unauthorized, "token realm of upstream " + home_.host + " is not a URL"};
    boost::urls::url url(*parsed);
    if (!service.empty()) url.params().append({"service", service});
    if (!scope.empty()) url.params().append({"scope", scope});
    auto location = split_url(url);
    if (!location) co_return Error{Errc::unauthorized, "token realm: " + location.error().message};
    const Endpoint endpoint = location->endpoint;
    const std::string where = "token endpoint " + endpoint.host;
    // Credentials go in clear over http only to a plain-http upstream's realm or a loopback one.
    if (!endpoint.tls && upstream_.tls && !is_loopback(endpoint.host)) {
      co_return Error{Errc::unauthorized, where + " is plain http for an https upstream; refused"};
    }
    Request token_request;
    token_request.accept = "application/json";
    const std::string credentials = upstream_.username.empty() ? std::string() : basic_authorization();
    const std::string target = location->target;
    bool retryable = false;
    ++token_fetches_;
    auto exchanged = co_await exchange(endpoint, http::verb::get, target, token_request, credentials, retryable);
    if (!exchanged) co_return Error{Errc::unauthorized, where + ": " + exchanged.error().message};
    auto& response = **exchanged;
    if (response.status() != 200) {
      const unsigned status = response.status();
      co_await response.recycle();
      co_return Error{Errc::unauthorized, where + " answered " + std::to_string(status)};
    }
    auto body = co_await response.read_all(token_body_limit);
    if (!body) co_return Error{Errc::unauthorized, where + ": " + body.error().message};
    co_return tokens_.remember(*body, scope, where);
  }

  asio::any_io_executor executor_;
  config::Upstream upstream_;
  NameLookups lookups_;
  ssl::context tls_context_;
  std::string setup_error_;
  std::shared_ptr<Pool> pool_;
  Endpoint home_;
  TokenCache tokens_;
  std::atomic<bool> basic_accepted_{false};
  // class_bit()s of the upstream's own addresses: a redirect may reach a non-global class only
  // when the upstream itself lives in it.
  std::atomic<std::uint8_t> home_classes_{0};
  std::shared_ptr<FetchLimiter> fetch_limiter_;
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> connections_opened_{0};
  std::atomic<std::uint64_t> token_fetches_{0};
  std::atomic<std::uint64_t> fetch_slot_timeouts_{0};
};

}  // namespace

std::shared_ptr<Client> Client::create(asio::any_io_executor executor, const config::Upstream& upstream,
                                       Resolve resolve) {
  return std::make_shared<ClientImpl>(std::move(executor), upstream, std::move(resolve));
}

}  // namespace ocigate::upstream
