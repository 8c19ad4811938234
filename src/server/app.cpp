#include "ocigate/server/app.hpp"

#include <atomic>
#include <csignal>
#include <map>
#include <thread>

#include <openssl/ssl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/span_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "ocigate/auth/auth.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/oci/digest.hpp"
#include "ocigate/oci/reference.hpp"
#include "ocigate/server/errors.hpp"
#include "ocigate/server/log.hpp"
#include "ocigate/upstream/client.hpp"
#include "cpus.hpp"
#include "limiter.hpp"
#include "proxy.hpp"
#include "send_file.hpp"
#include "tls_expiry.hpp"

namespace ocigate::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

// TLS 1.2+ with forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's defaults, all modern).
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// A server TLS context from the files named in server.tls; read again on SIGHUP.
Result<std::shared_ptr<ssl::context>> make_tls_context(const config::Tls& tls) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                       ssl::context::single_dh_use);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(native, tls12_ciphers) != 1) return Error{Errc::config_invalid, "server.tls: no usable ciphers"};
  beast::error_code ec;
  context->use_certificate_chain_file(tls.cert_file, ec);
  if (ec) return Error{Errc::config_invalid, "server.tls.cert_file: cannot load " + tls.cert_file + ": " + ec.message()};
  context->use_private_key_file(tls.key_file, ssl::context::pem, ec);
  if (ec) return Error{Errc::config_invalid, "server.tls.key_file: cannot load " + tls.key_file + ": " + ec.message()};
  if (SSL_CTX_check_private_key(native) != 1) {
    return Error{Errc::config_invalid, "server.tls.key_file: " + tls.key_file + " does not match the certificate"};
  }
  if (!tls.client_ca_file.empty()) {
    context->load_verify_file(tls.client_ca_file, ec);
    if (ec) {
      return Error{Errc::config_invalid,
                   "server.tls.client_ca_file: cannot load " + tls.client_ca_file + ": " + ec.message()};
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(native, names);
    }
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

// Errors that only mean the peer went away or stayed silent: no log line.
bool benign(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == beast::error::timeout || ec == asio::error::broken_pipe ||
         ec == asio::error::bad_descriptor;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class App;

// The state shutdown needs to reach an idle session on its own strand.
struct SessionHandle {
  asio::any_io_executor strand;
  beast::tcp_stream* stream = nullptr;
  std::atomic<bool> in_request{false};
};

class App {
 public:
  // ioc runs everything shared (acceptors, signals, upstream fetches); each client connection lives
  // on one of session_contexts (ioc among them), one thread each, so a stream's coroutine, its
  // socket and its buffers stay on one core.
  App(const config::Config& config, policy::Policy policy, signature::TrustStore trust, cache::Store& store,
      asio::io_context& ioc, std::vector<asio::io_context*> session_contexts)
      : config_(config),
        store_(store),
        ioc_(ioc),
        session_contexts_(std::move(session_contexts)),
        policy_(std::move(policy), std::move(trust)),
        proxy_(config, store, metrics_, policy_, ioc.get_executor()),
        limiter_(config.server.malformed_per_minute),
        rate_limiter_(config.server.requests_per_second, config.server.burst),
        connections_(config.server.max_connections_per_client) {}

  // TLS context and authenticator from the configuration; an error is a configuration error.
  Status configure_security() {
    if (config_.server.tls) {
      auto context = make_tls_context(*config_.server.tls);
      if (!context) return context.error();
      tls_ = std::move(*context);
      export_certificate_expiry(config_.server.tls->cert_file, metrics_);
    }
    if (config_.auth) {
      auto built = auth::Authenticator::build(*config_.auth, config_.source);
      if (!built) return built.error();
      auth_ = std::move(*built);
      log::info("client authentication on", {{"users", auth_->user_count()}, {"tokens", config_.auth->tokens.size()},
                                             {"rules", config_.auth->rules.size()}});
    }
    return ok_status();
  }

  Status listen(const config::Endpoint& endpoint, bool metrics_only) {
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
      return Error{Errc::config_invalid, "cannot listen on " + endpoint.host + ":" + std::to_string(endpoint.port) +
                                             ": " + ec.message()};
    }
    log::info("listening", {{"address", endpoint.host}, {"port", acceptor->local_endpoint().port()},
                            {"metrics_only", metrics_only}});
    asio::co_spawn(ioc_, accept_loop(*acceptor, metrics_only), asio::detached);
    acceptors_.push_back(std::move(acceptor));
    return ok_status();
  }

  void purge_stale_verdicts() { proxy_.purge_stale_verdicts(); }

  void start_signals() {
    // sendfile(2) cannot be told MSG_NOSIGNAL: a client that left must be an EPIPE for its
    // session, not a signal that ends the process.
    std::signal(SIGPIPE, SIG_IGN);
    signals_ = std::make_unique<asio::signal_set>(ioc_, SIGINT, SIGTERM);
    signals_->async_wait([this](const beast::error_code& ec, int signal) {
      if (!ec) shutdown(signal);
    });
    reload_signal_ = std::make_unique<asio::signal_set>(ioc_, SIGHUP);
    wait_for_reload();
  }

 private:
  void wait_for_reload() {
    reload_signal_->async_wait([this](const beast::error_code& ec, int) {
      if (ec) return;
      reload_policy();
      reload_tls();
      reload_auth();
      wait_for_reload();
    });
  }

  // Reads the config file again and swaps in its policy. Connections are untouched; an invalid
  // file leaves the policy in force as it was.
  void reload_policy() {
    if (config_.source.empty() || config_.source.front() == '<') {
      log::warn("SIGHUP ignored: running on the built-in default config, nothing to reload");
      metrics_.record_policy_reload("error");
      return;
    }
    auto loaded = config::load_file(config_.source);
    Result<policy::Policy> next = loaded ? policy::parse_policy(loaded->policy, config_.source)
                                         : Result<policy::Policy>(loaded.error());
    Result<signature::TrustStore> trust = next ? load_trust(*loaded, *next) : Result<signature::TrustStore>(next.error());
    if (!trust) {
      log::error("policy reload refused; the previous policy stays in force", {{"error", trust.error().message}});
      metrics_.record_policy_reload("error");
      return;
    }
    log::info("policy reloaded", {{"policy_version", next->version}, {"previous", policy_.get()->version},
                                  {"trust", trust->fingerprint}});
    policy_.set(std::move(*next), std::move(*trust));
    proxy_.purge_stale_verdicts();
    metrics_.record_policy_reload("ok");
  }

  // New connections get the new certificate; open ones keep the context they started with.
  void reload_tls() {
    if (!config_.server.tls) return;
    auto context = make_tls_context(*config_.server.tls);
    if (!context) {
      log::error("certificate reload refused; the previous certificate stays in use", {{"error", context.error().message}});
      return;
    }
    std::lock_guard lock(security_mutex_);
    tls_ = std::move(*context);
    export_certificate_expiry(config_.server.tls->cert_file, metrics_);
    log::info("certificate reloaded", {{"cert_file", config_.server.tls->cert_file}});
  }

  // Re-reads auth (users, tokens, rules) from the config file. Turning auth on or off needs a restart.
  void reload_auth() {
    if (config_.source.empty() || config_.source.front() == '<') return;
    auto loaded = config::load_file(config_.source);
    if (!loaded) return;  // reload_policy already logged it
    if (loaded->auth.has_value() != config_.auth.has_value()) {
      log::error("auth reload refused: adding or removing the auth section needs a restart");
      return;
    }
    if (!loaded->auth) return;
    auto built = auth::Authenticator::build(*loaded->auth, loaded->source);
    if (!built) {
      log::error("auth reload refused; the previous users and rules stay in force", {{"error", built.error().message}});
      return;
    }
    std::lock_guard lock(security_mutex_);
    auth_ = std::move(*built);
    log::info("auth reloaded", {{"users", auth_->user_count()}});
  }

  std::shared_ptr<ssl::context> current_tls() {
    std::lock_guard lock(security_mutex_);
    return tls_;
  }

  std::shared_ptr<auth::Authenticator> current_auth() {
    std::lock_guard lock(security_mutex_);
    return auth_;
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, bool metrics_only) {
    for (;;) {
      auto& context = *session_contexts_[next_context_++ % session_contexts_.size()];
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(context), use_tuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping_) co_return;
        log::warn("accept failed", {{"error", ec.message()}});
        continue;
      }
      // Replies go out as header + body writes; Nagle would hold a small body back until the
      // client's delayed ACK (~40 ms per request).
      socket.set_option(tcp::no_delay(true), ec);
      auto executor = socket.get_executor();
      asio::co_spawn(executor, session(beast::tcp_stream(std::move(socket)), metrics_only), asio::detached);
    }
  }

  asio::awaitable<void> session(beast::tcp_stream stream, bool metrics_only) {
    beast::error_code ec;
    auto remote = stream.socket().remote_endpoint(ec);
    const std::string peer = ec ? std::string("unknown") : remote.address().to_string();
    if (!connections_.acquire(peer)) {
      // Over max_connections_per_client: closed before reading anything, which costs us least.
      metrics_.record_limited("connections");
      log::warn("connection refused: too many open connections from this address",
                {{"client", peer}, {"limit", config_.server.max_connections_per_client}});
      stream.close();
      co_return;
    }
    auto handle = std::make_shared<SessionHandle>();
    handle->strand = stream.get_executor();
    handle->stream = &stream;
    const std::uint64_t id = register_session(handle);
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls_stream;
    try {
      // The buffer's limit must not cut a header the parser's limit allows (431 then, not a 400);
      // the slack holds what a pipelining client sends after the header.
      beast::flat_buffer buffer(config_.server.max_header_bytes + 8192);
      auto context = metrics_only ? nullptr : current_tls();
      if (!context) {
        co_await serve_connection(stream, peer, metrics_only, *handle, buffer, false, {});
      } else {
        // server-flex: one port, the first byte says whether the client speaks TLS.
        stream.expires_after(config_.server.header_timeout);
        auto [detect_ec, is_tls] = co_await beast::async_detect_ssl(stream, buffer, use_tuple);
        if (detect_ec) {
          // silent peer or reset before the first byte: nothing to answer
        } else if (!is_tls) {
          const bool refuse = !config_.server.tls->allow_plain_http;
          co_await serve_connection(stream, peer, metrics_only, *handle, buffer, refuse, {});
        } else {
          tls_stream.emplace(std::move(stream), *context);
          handle->stream = &beast::get_lowest_layer(*tls_stream);
          beast::get_lowest_layer(*tls_stream).expires_after(config_.server.header_timeout);
          auto [handshake_ec, used] =
              co_await tls_stream->async_handshake(ssl::stream_base::server, buffer.data(), use_tuple);
          if (handshake_ec) {
            metrics_.record_malformed("tls_handshake");
            log::debug("TLS handshake failed", {{"client", peer}, {"error", handshake_ec.message()}});
          } else {
            buffer.consume(used);
            const std::string cert_user = certificate_user(*tls_stream, peer);
            co_await serve_connection(*tls_stream, peer, metrics_only, *handle, buffer, false, cert_user);
            beast::get_lowest_layer(*tls_stream).expires_after(std::chrono::seconds(5));
            auto [shutdown_ec] = co_await tls_stream->async_shutdown(use_tuple);
            (void)shutdown_ec;  // a client that just closes (most do) is fine
          }
        }
      }
    } catch (const std::exception& e) {
      // A broken invariant in one connection must not take the process down; log it loudly.
      log::error("session failed", {{"client", peer}, {"error", e.what()}});
    }
    unregister_session(id);
    connections_.release(peer);
    beast::tcp_stream& lowest = tls_stream ? beast::get_lowest_layer(*tls_stream) : stream;
    lowest.socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest.close();
  }

  // The user a verified client certificate names (server.tls.client_cert_user), "" for none. A
  // certificate whose subject names no usable user leaves the connection anonymous, with a log line.
  std::string certificate_user(beast::ssl_stream<beast::tcp_stream>& tls, const std::string& peer) {
    const auto& settings = *config_.server.tls;
    if (settings.client_ca_file.empty() || !settings.client_cert_user) return {};
    SSL* native = tls.native_handle();
    if (SSL_get_verify_result(native) != X509_V_OK) return {};
    auto user = auth::certificate_user(SSL_get0_peer_certificate(native));
    if (!user) {
      log::warn("client certificate names no usable user; its requests are anonymous",
                {{"client", peer}, {"error", user.error().message}});
      return {};
    }
    return std::move(*user);
  }

  // Templates on the stream type: a TLS listener hands an ssl_stream<tcp_stream> to the same code
  // (the split of Beast's server-flex example); only the handshake before and the shutdown after differ.
  // cert_user: the user the connection's client certificate authenticates, "" for none.
  template <class Stream>
  asio::awaitable<void> serve_connection(Stream& stream, const std::string& peer, bool metrics_only,
                                         SessionHandle& handle, beast::flat_buffer& buffer, bool refuse_plain,
                                         const std::string& cert_user) {
    bool first = true;
    while (!stopping_) {
      http::request_parser<http::empty_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(config_.server.max_header_bytes));
      beast::get_lowest_layer(stream).expires_after(first ? config_.server.header_timeout : config_.server.idle_timeout);
      auto [read_ec, read_n] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
      (void)read_n;
      if (read_ec) {
        // A TLS ClientHello (0x16) on the plain listener is a client probing for https, as
        // skopeo and containerd do before falling back to http: not malformed, just close.
        const bool tls_probe = buffer.size() > 0 && static_cast<const unsigned char*>(buffer.data().data())[0] == 0x16;
        if (!benign(read_ec) && read_ec != http::error::partial_message && !tls_probe) {
          co_await refuse_malformed(stream, peer, read_ec);
        }
        co_return;
      }
      handle.in_request = true;
      first = false;
      auto started = std::chrono::steady_clock::now();
      const auto& req = parser.get();
      std::string user;
      Reply reply;
      if (refuse_plain) {
        reply = plain_error(Errc::denied, "plain HTTP is refused: this mirror serves HTTPS only");
        reply.close = true;
      } else {
        reply = co_await answer(req, peer, metrics_only, cert_user, user);
      }
      if (!parser.is_done()) reply.close = true;  // a body we will not read: do not reuse the connection
      bool completed = co_await write_reply(stream, req, reply);
      finish_request(req, reply, peer, user, started, completed);
      handle.in_request = false;
      if (!completed || reply.close || !req.keep_alive()) co_return;
    }
  }

  asio::awaitable<Reply> answer(const http::request<http::empty_body>& req, const std::string& peer,
                                bool metrics_only, const std::string& cert_user, std::string& user) {
    auto path = req.target().substr(0, req.target().find('?'));
    const bool health = path == "/healthz" || path == "/readyz";
    if (!health) {
      if (unsigned wait = rate_limiter_.take(peer)) {
        metrics_.record_limited("rate");
        Reply reply = plain_error(Errc::too_many_requests, "too many requests from this address; retry later");
        reply.head.set(http::field::retry_after, std::to_string(wait));
        reply.error = "refused by the request rate limit (server.requests_per_second)";
        reply.route = "limit";
        co_return reply;
      }
    }
    if (limiter_.over(peer)) {
      metrics_.record_limited("malformed");
      Reply reply = plain_error(Errc::too_many_requests, "too many malformed requests from this address");
      reply.error = "refused: too many malformed requests (server.malformed_per_minute)";
      reply.route = "limit";
      reply.head.set(http::field::retry_after, "60");
      reply.close = true;
      co_return reply;
    }
    if (req.target().size() > config_.server.max_uri_bytes) {
      metrics_.record_malformed("uri_too_long");
      limiter_.record(peer);
      Reply reply = plain_error(Errc::name_invalid, "request target too long");
      reply.head.result(http::status::uri_too_long);
      reply.close = true;
      co_return reply;
    }
    auto authenticator = current_auth();
    if (authenticator && !health) {
      auto credentials = auth::parse_authorization(req[http::field::authorization]);
      const auto kind = credentials.kind;
      const std::string claimed = credentials.user.substr(0, 64);  // for the log line only
      std::optional<std::string> who;
      if (kind == auth::Credentials::Kind::none && !cert_user.empty()) {
        // No Authorization header: the verified client certificate says who this is. A header,
        // when sent, wins (and is checked like any other), so a CI token can act as its own user.
        who = cert_user;
      } else if (authenticator->needs_slow_check(credentials)) {
        // bcrypt takes tens of milliseconds by design: not on an I/O thread.
        auto [failure, checked] = co_await asio::co_spawn(
            bcrypt_pool_, authenticate_slowly(authenticator, std::move(credentials)), use_tuple);
        if (!failure) who = std::move(checked);
      } else {
        who = authenticator->authenticate(credentials);
      }
      if (!who) co_return refuse_credentials(*authenticator, kind, claimed);
      user = *who;
      if (user.empty() && authenticator->protect_api() && (path == "/metrics" || path.rfind("/ocigate/", 0) == 0)) {
        metrics_.record_auth_failure("missing");
        co_return challenge(*authenticator, "authentication required");
      }
    }
    if (!authenticator) user = cert_user;  // no grants to apply, but the access log names the client
    if (path == "/metrics") co_return metrics_reply();
    // Probes are answered on the metrics listener too: a plain-HTTP port for kubelet and
    // HEALTHCHECKs when the main listener requires TLS client certificates.
    if (path == "/healthz") co_return text_reply(http::status::ok, "ok\n", "health");
    if (path == "/readyz") {
      co_return stopping_ ? text_reply(http::status::service_unavailable, "stopping\n", "health")
                          : text_reply(http::status::ok, "ready\n", "health");
    }
    if (metrics_only) co_return plain_error(Errc::name_unknown, "this listener serves /metrics, /healthz and /readyz only");
    if (path.rfind("/ocigate/v1/verdicts/", 0) == 0) co_return verdict_reply(std::string(path.substr(21)));
    if (authenticator) {
      if (auto refused = authorize(*authenticator, req, user)) co_return std::move(*refused);
    }
    Reply reply = co_await proxy_.handle(req, peer);
    if (reply.head.result_int() == 503 && reply.head.find(http::field::retry_after) == reply.head.end()) {
      // Every 503 says when to come back (no fetch slot free, cache busy, shutting down): clients
      // that honour it spread their retries instead of hammering a saturated mirror.
      reply.head.set(http::field::retry_after, std::to_string(upstream::busy_retry_after));
    }
    if (reply.head.result_int() == 400) {
      metrics_.record_malformed("bad_request");
      if (limiter_.record(peer)) reply.close = true;
    }
    co_return reply;
  }

  static asio::awaitable<std::optional<std::string>> authenticate_slowly(
      std::shared_ptr<auth::Authenticator> authenticator, auth::Credentials credentials) {
    co_return authenticator->authenticate(credentials);
  }

  // 401 for credentials that were given and are wrong. The access log line says which kind failed
  // and for which claimed user name (never the secret); the metric carries only the kind.
  Reply refuse_credentials(const auth::Authenticator& authenticator, auth::Credentials::Kind kind,
                           const std::string& claimed) {
    using Kind = auth::Credentials::Kind;
    const char* reason = kind == Kind::basic ? "bad_password" : kind == Kind::bearer ? "bad_token" : "malformed";
    metrics_.record_auth_failure(reason);
    Reply reply = challenge(authenticator, "invalid credentials");
    reply.error = std::string("authentication failed: ") + reason;
    if (kind == Kind::basic) reply.error += " for user '" + claimed + "'";
    return reply;
  }

  // 401 with the Basic challenge every registry client understands (docker login, skopeo login,
  // podman, containerd's hosts.toml credentials).
  static Reply challenge(const auth::Authenticator& authenticator, std::string message) {
    Reply reply = plain_error(Errc::unauthorized, std::move(message));
    reply.head.set(http::field::www_authenticate, "Basic realm=\"" + authenticator.realm() + "\", charset=\"UTF-8\"");
    reply.route = "auth";
    return reply;
  }

  // Pull access for the repository the request names. The /v2/ ping answers anonymous clients
  // with the challenge so they learn how to log in; a name that does not parse or maps to no
  // upstream goes on to the proxy for its 400/404 (after authentication, so strangers learn nothing).
  std::optional<Reply> authorize(const auth::Authenticator& authenticator, const http::request<http::empty_body>& req,
                                 const std::string& user) {
    auto route = oci::parse_route(req.target());
    if (route.kind == oci::RouteKind::base) {
      // Not counted as a failure: the anonymous ping is how every client learns to log in.
      if (user.empty()) return challenge(authenticator, "authentication required");
      return std::nullopt;
    }
    auto target = route.kind == oci::RouteKind::unknown ? Result<Target>(Errc::name_unknown, "no such route")
                                                         : resolve_target(config_, route);
    if (!target) {
      if (user.empty() && !authenticator.anonymous_allowed_somewhere()) {
        metrics_.record_auth_failure("missing");
        return challenge(authenticator, "authentication required");
      }
      return std::nullopt;
    }
    if (authenticator.may_pull(user, target->repo_key)) return std::nullopt;
    if (user.empty()) {
      metrics_.record_auth_failure("missing");
      Reply reply = challenge(authenticator, "authentication required to pull " + target->repo_key);
      reply.name = route.name;
      return reply;
    }
    metrics_.record_auth_failure("denied");
    Reply reply = plain_error(Errc::denied, "access to " + target->repo_key + " is not granted to this user");
    reply.name = route.name;
    reply.route = "auth";
    return reply;
  }

  static Reply plain_error(Errc code, std::string message) {
    Reply reply;
    reply.head.result(http_status(code));
    reply.head.set(http::field::content_type, "application/json");
    reply.body = error_body(code, message);
    reply.error = std::move(message);
    return reply;
  }

  static Reply text_reply(http::status status, std::string body, std::string route) {
    Reply reply;
    reply.head.result(status);
    reply.head.set(http::field::content_type, "text/plain");
    reply.body = std::move(body);
    reply.route = std::move(route);
    return reply;
  }

  Reply verdict_reply(const std::string& digest) {
    if (!oci::Digest::parse(digest)) {
      Reply bad = plain_error(Errc::digest_invalid, "invalid digest: " + digest);
      bad.route = "verdict";
      return bad;
    }
    auto stored = proxy_.verdict(digest);
    Reply reply = stored ? text_reply(http::status::ok, *stored, "verdict")
                         : plain_error(Errc::manifest_unknown, "no verdict recorded for " + digest);
    reply.route = "verdict";
    reply.head.set(http::field::content_type, "application/json");
    return reply;
  }

  Reply metrics_reply() {
    auto stats = store_.stats();
    metrics_.cache_size_bytes().Set(static_cast<double>(stats.size_bytes));
    metrics_.cache_blobs().Set(static_cast<double>(stats.blob_count));
    metrics_.cache_max_size_bytes().Set(static_cast<double>(config_.storage.max_size));
    metrics_.set_evictions(static_cast<double>(stats.evictions), static_cast<double>(stats.evicted_bytes));
    metrics_.set_lost_files(static_cast<double>(stats.lost_files));
    for (const auto& upstream : config_.upstreams) {
      if (upstream.max_concurrent_fetches == 0) continue;
      // The proxy owns the clients; resolving "?ns=<upstream>" is its public way to reach one.
      oci::Route route{oci::RouteKind::manifest, "probe", "latest", "ns=" + upstream.name};
      if (auto target = proxy_.resolve(route); target && target->client) {
        metrics_.set_fetch_slot_timeouts(upstream.name, static_cast<double>(target->client->stats().fetch_slot_timeouts));
      }
    }
    Reply reply = text_reply(http::status::ok, metrics_.render(), "metrics");
    reply.head.set(http::field::content_type, "text/plain; version=0.0.4");
    return reply;
  }

  template <class Stream>
  asio::awaitable<void> refuse_malformed(Stream& stream, const std::string& peer,
                                         const beast::error_code& ec) {
    // The header outgrew the parser's limit, or the read buffer sized to it.
    const bool too_large = ec == http::error::header_limit || ec == http::error::buffer_overflow;
    metrics_.record_malformed(too_large ? "header_too_large" : "unparsable");
    limiter_.record(peer);
    log::info("malformed request", {{"client", peer}, {"error", ec.message()}});
    // UNSUPPORTED: the spec's code for "an invalid set of parameters"; no name was read, so
    // NAME_INVALID would point the client at the wrong thing.
    Reply reply = plain_error(Errc::unsupported,
                              too_large ? "request header larger than " +
                                              std::to_string(config_.server.max_header_bytes) +
                                              " bytes (server.max_header_bytes)"
                                        : "malformed HTTP request: " + ec.message());
    reply.head.result(too_large ? http::status::request_header_fields_too_large : http::status::bad_request);
    reply.head.version(11);
    reply.head.keep_alive(false);
    reply.head.content_length(reply.body.size());
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
    co_await write_with_body(stream, reply);
  }

  // The head and an in-memory body in one write: one segment for a small reply, not two.
  template <class Stream>
  asio::awaitable<beast::error_code> write_with_body(Stream& stream, const Reply& reply) {
    http::response<http::span_body<const char>> message(
        reply.head.base(), http::span_body<const char>::value_type(reply.body.data(), reply.body.size()));
    auto [ec, n] = co_await http::async_write(stream, message, use_tuple);
    (void)n;
    co_return ec;
  }

  // Writes the head and body. Returns false when the connection must be dropped: the client left,
  // stalled past the idle timeout, or the body source failed mid-way (the cut tells the client the
  // body is incomplete).
  template <class Stream>
  asio::awaitable<bool> write_reply(Stream& stream, const http::request<http::empty_body>& req,
                                    Reply& reply) {
    auto& head = reply.head;
    head.version(req.version());
    head.set(http::field::server, "ocigate");
    head.set("Docker-Distribution-API-Version", "registry/2.0");
    if (!head.has_content_length() && !reply.stream) head.content_length(reply.body.size());
    head.keep_alive(req.keep_alive() && !reply.close && !stopping_);
    const bool send_body = req.method() != http::verb::head;
    beast::get_lowest_layer(stream).expires_after(config_.server.idle_timeout);
    if (send_body && !reply.stream) co_return !co_await write_with_body(stream, reply);
    // A cached body is corked from its head on, so a small blob's head and body share a segment.
    const bool whole = send_body && reply.stream->body_at_hand();
    if (whole) set_cork(beast::get_lowest_layer(stream).socket(), true);
    http::response_serializer<http::empty_body> serializer(head);
    auto [ec, n] = co_await http::async_write_header(stream, serializer, use_tuple);
    (void)n;
    if (ec) co_return false;
    if (!send_body) co_return true;
    co_return co_await stream_body(stream, reply, whole);
  }

  // Bodies go out corked where that saves short segments (send_file.hpp, set_cork): a body
  // already whole in the cache (corked by the caller from its head on), uncorked at its end; and
  // over TLS, which writes each 16 KiB record with a call of its own, a fetch being followed too,
  // uncorked after each piece so no byte waits for the next. A false return drops the connection.
  template <class Stream>
  asio::awaitable<bool> stream_body(Stream& stream, Reply& reply, bool whole) {
    metrics_.inflight_streams().Increment();
    constexpr bool plain = std::is_same_v<Stream, beast::tcp_stream>;
    auto& socket = beast::get_lowest_layer(stream).socket();
    const bool push_each = !plain && !whole;
    if (push_each) set_cork(socket, true);
    bool ok = true;
    if constexpr (plain) {
      ok = reply.stream->has_spans() ? co_await send_spans(stream, reply) : co_await copy_pieces(stream, reply, false);
    } else {
      ok = co_await copy_pieces(stream, reply, push_each);
    }
    if (ok && (whole || push_each)) set_cork(socket, false);
    metrics_.inflight_streams().Decrement();
    co_return ok;
  }

  // Plain TCP and a body in the cache's files: each piece goes from the page cache to the socket
  // with sendfile(2).
  asio::awaitable<bool> send_spans(beast::tcp_stream& stream, Reply& reply) {
    for (;;) {
      auto span = co_await reply.stream->next_span();
      if (!span) {
        reply.error = span.error().message;
        co_return false;
      }
      if (span->length == 0) co_return true;
      if (auto sent = co_await send_file(stream.socket(), *span, config_.server.idle_timeout); !sent) {
        reply.error = sent.error().message;
        co_return false;
      }
      metrics_.record_bytes_served(reply.stream->source(), static_cast<double>(span->length));
    }
  }

  // push_each: the socket is corked; send what each piece leaves held before waiting for the next.
  template <class Stream>
  asio::awaitable<bool> copy_pieces(Stream& stream, Reply& reply, bool push_each) {
    std::string piece;
    bool ok = true;
    for (;;) {
      auto n = co_await reply.stream->next(piece);
      if (!n) {
        reply.error = n.error().message;
        ok = false;
        break;
      }
      if (*n == 0) break;
      beast::get_lowest_layer(stream).expires_after(config_.server.idle_timeout);
      auto [ec, written] = co_await asio::async_write(stream, asio::buffer(piece.data(), *n), use_tuple);
      if (ec) {
        reply.error = "client: " + ec.message();
        ok = false;
        break;
      }
      metrics_.record_bytes_served(reply.stream->source(), static_cast<double>(written));
      if (push_each) {
        set_cork(beast::get_lowest_layer(stream).socket(), false);
        set_cork(beast::get_lowest_layer(stream).socket(), true);
      }
    }
    co_return ok;
  }

  void finish_request(const http::request<http::empty_body>& req, const Reply& reply, const std::string& peer,
                      const std::string& user, std::chrono::steady_clock::time_point started, bool completed) {
    double seconds = seconds_since(started);
    unsigned status = reply.head.result_int();
    metrics_.record_request(reply.route, std::string(req.method_string()), status, seconds);
    nlohmann::json line = {
        {"client", peer},
        {"method", std::string(req.method_string())},
        {"route", reply.route},
        {"name", reply.name},
        {"reference", reply.reference},
        {"status", status},
        {"bytes", reply.head.has_content_length() ? std::stoull(std::string(reply.head[http::field::content_length]))
                                                  : reply.body.size()},
        {"duration_ms", seconds * 1000.0},
        {"cache", reply.cache},
        {"upstream", reply.upstream},
        {"completed", completed},
    };
    if (!reply.error.empty()) line["error"] = reply.error;
    if (!reply.verdict.empty()) line["verdict"] = reply.verdict;
    if (!user.empty()) line["user"] = user;
    log::access(line);
  }

  std::uint64_t register_session(const std::shared_ptr<SessionHandle>& handle) {
    std::lock_guard lock(sessions_mutex_);
    sessions_.emplace(++next_session_id_, handle);
    return next_session_id_;
  }

  void unregister_session(std::uint64_t id) {
    std::lock_guard lock(sessions_mutex_);
    sessions_.erase(id);
  }

  std::size_t session_count() {
    std::lock_guard lock(sessions_mutex_);
    return sessions_.size();
  }

  // Stop accepting; idle keep-alive connections are closed at once, requests in flight finish
  // (their connections close after the reply) until the grace period ends.
  void shutdown(int signal) {
    log::info("shutting down", {{"signal", signal}, {"grace_seconds", config_.server.shutdown_grace.count()}});
    stopping_ = true;
    for (auto& acceptor : acceptors_) {
      beast::error_code ec;
      acceptor->close(ec);
    }
    {
      std::lock_guard lock(sessions_mutex_);
      for (auto& [id, handle] : sessions_) {
        asio::post(handle->strand, [weak = std::weak_ptr<SessionHandle>(handle), this, id = id] {
          std::lock_guard inner(sessions_mutex_);
          auto h = weak.lock();
          if (h && sessions_.count(id) && !h->in_request) h->stream->cancel();
        });
      }
    }
    deadline_ = std::chrono::steady_clock::now() + config_.server.shutdown_grace;
    drain_timer_ = std::make_unique<asio::steady_timer>(ioc_);
    wait_for_drain();
  }

  void wait_for_drain() {
    if (session_count() == 0 || std::chrono::steady_clock::now() >= deadline_) {
      if (session_count() > 0) log::warn("grace period over; cutting connections", {{"open", session_count()}});
      for (auto* context : session_contexts_) context->stop();
      return;
    }
    drain_timer_->expires_after(std::chrono::milliseconds(50));
    drain_timer_->async_wait([this](const beast::error_code&) { wait_for_drain(); });
  }

  const config::Config& config_;
  cache::Store& store_;
  asio::io_context& ioc_;
  const std::vector<asio::io_context*> session_contexts_;
  std::size_t next_context_ = 0;  // only the accept loops (on ioc_'s one thread) touch it
  metrics::Metrics metrics_;
  PolicyHolder policy_;
  Proxy proxy_;
  MalformedLimiter limiter_;
  RateLimiter rate_limiter_;
  ConnectionCounter connections_;
  std::mutex security_mutex_;  // guards tls_ and auth_, swapped whole on SIGHUP
  std::shared_ptr<ssl::context> tls_;
  std::shared_ptr<auth::Authenticator> auth_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::unique_ptr<asio::signal_set> signals_;
  std::unique_ptr<asio::signal_set> reload_signal_;
  std::atomic<bool> stopping_{false};
  std::mutex sessions_mutex_;
  std::map<std::uint64_t, std::shared_ptr<SessionHandle>> sessions_;
  std::uint64_t next_session_id_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  std::unique_ptr<asio::steady_timer> drain_timer_;
  asio::thread_pool bcrypt_pool_{2};  // last: joined first, before anything its work refers to
};

}  // namespace

// Runs every context on its own thread (the first on this one) until the first runs out of work or
// is stopped; the others are kept alive by work guards until then, as connections come and go.
// With a plan, thread i is pinned to CPU plan[i] (after every pool was started, so none inherits it).
void run_contexts(const std::vector<std::unique_ptr<asio::io_context>>& contexts,
                  const std::optional<std::vector<int>>& plan) {
  using Guard = asio::executor_work_guard<asio::io_context::executor_type>;
  auto pin = [&plan](std::size_t i) {
    if (!plan) return;
    if (auto refused = pin_current_thread((*plan)[i])) {
      log::warn("cannot pin an I/O thread; it runs unpinned", {{"cpu", (*plan)[i]}, {"error", *refused}});
    }
  };
  std::vector<Guard> guards;
  std::vector<std::thread> workers;
  for (std::size_t i = 1; i < contexts.size(); ++i) {
    guards.push_back(asio::make_work_guard(*contexts[i]));
    workers.emplace_back([context = contexts[i].get(), pin, i] {
      pin(i);
      context->run();
    });
  }
  pin(0);
  contexts.front()->run();
  guards.clear();
  for (std::size_t i = 1; i < contexts.size(); ++i) contexts[i]->stop();
  for (auto& worker : workers) worker.join();
}

// The CPUs the I/O threads are pinned to (server.pin_threads), or nullopt, with the reason logged.
std::optional<std::vector<int>> pin_plan(const config::Config& config, unsigned threads,
                                         const std::vector<int>& allowed) {
  if (!config.server.pin_threads) return std::nullopt;
  auto plan = cpu_plan(threads, allowed);
  if (!plan) {
    log::info("I/O threads not pinned: pinning needs exactly one thread per allowed CPU",
              {{"threads", threads}, {"cpus", allowed.size()}});
  }
  return plan;
}

int serve(const config::Config& config, policy::Policy policy, signature::TrustStore trust) {
  std::string log_error;
  if (!log::configure(config.log.level, config.log.access_log, config.log.audit_log, log_error)) {
    log::error("cannot start", {{"error", log_error}});
    return 1;
  }
  auto store = cache::Store::open({config.storage.path, config.storage.max_size, config.storage.chunk_size,
                                   [](const std::string& digest, const std::string& why) {
                                     log::warn("cached blob dropped; it will be fetched again",
                                               {{"digest", digest}, {"reason", why}});
                                   }});
  if (!store) {
    log::error("cannot open the cache", {{"path", config.storage.path}, {"error", store.error().message}});
    return 1;
  }
  const auto cpus = allowed_cpus();
  const unsigned threads = io_thread_count(config.server.threads, cpus);
  // One io_context per thread; the first also runs the shared work.
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::io_context*> session_contexts;
  for (unsigned i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));
    session_contexts.push_back(contexts.back().get());
  }
  asio::io_context& ioc = *contexts.front();
  int code = 0;
  {
    App app(config, std::move(policy), std::move(trust), **store, ioc, session_contexts);
    auto security = app.configure_security();
    if (!security) {
      log::error("invalid configuration", {{"error", security.error().message}});
      (*store)->close();
      return 2;
    }
    auto listening = app.listen(config.server.listen, false);
    if (listening && config.server.metrics_listen) listening = app.listen(*config.server.metrics_listen, true);
    if (!listening) {
      log::error("cannot start", {{"error", listening.error().message}});
      code = 1;
    } else {
      app.start_signals();
      app.purge_stale_verdicts();
      const auto plan = pin_plan(config, threads, cpus);
      log::info("ocigate started", {{"config", config.source}, {"threads", threads},
                                    {"pinned_cpus", plan ? nlohmann::json(*plan) : nlohmann::json(nullptr)},
                                    {"upstreams", config.upstreams.size()}, {"storage", config.storage.path}});
      run_contexts(contexts, plan);
    }
  }
  (*store)->close();
  log::info("ocigate stopped", {{"exit_code", code}});
  return code;
}

}  // namespace ocigate::server
