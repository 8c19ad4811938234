#pragma once
// The front door: what a request passes before any route sees it. Per client address: open
// connections, a token bucket of requests, a budget of malformed requests, the target's length;
// then authentication (Basic against bcrypt off the I/O threads, tokens, client certificates) and
// the pull grant for the repository the request names.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>

#include "front/limiter.hpp"
#include "ocigate/auth/auth.hpp"
#include "ocigate/common/network.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "reply.hpp"

namespace ocigate::server {

using Request = http::request<http::empty_body>;

// Who the front door let in, or the answer that refuses the request.
struct Admission {
  std::optional<Reply> refusal;
  std::string user;  // "" for anonymous
};

class FrontDoor {
 public:
  FrontDoor(const config::Config& config, metrics::Metrics& metrics);

  // Builds the authenticator from config.auth (at start); an error is a configuration error.
  Status configure();
  // SIGHUP: users, tokens and rules from the re-read file; an invalid one keeps the old ones.
  void reload_auth(const config::Config& next);

  // SIGHUP: server.trusted_proxies from the re-read file, for every request from then on and the
  // connections accepted after it (an open connection is released as it was counted).
  void reload_trusted_proxies(const config::Config& next);

  // Connections per address (server.max_connections_per_client); not counted for trusted proxies.
  enum class Opened { refused, counted, uncounted };
  Opened open_connection(const std::string& peer);
  void close_connection(const std::string& peer, Opened opened);
  // The request's client: the peer, or the client a trusted proxy names (forwarded.hpp).
  std::string client_of(const Request& request, const std::string& peer) const;

  // Rate, malformed budget and target length; probes (/healthz, /readyz) skip the rate limit and
  // the malformed budget (a balancer's health checks must not fail for what a client sent).
  std::optional<Reply> limit(const Request& request, const std::string& peer, bool probe);
  // Credentials (an Authorization header, else the connection's certificate user). Probes pass
  // without; with auth.protect_api, /metrics and /ocigate/ need a user.
  boost::asio::awaitable<Admission> authenticate(const Request& request, const std::string& cert_user,
                                                 std::string_view path, bool probe);
  // The pull grant for the repository the request names; nullopt when granted (or when there is
  // no auth section, or the name maps nowhere: the proxy answers that, after authentication).
  std::optional<Reply> authorize(const Request& request, const std::string& user);
  // A malformed request or a 400 answer from this address: counted against malformed_per_minute,
  // except for a trusted proxy's own address (it carries many clients, and a request that does not
  // parse names none of them). True when the address is now over its budget (its connection
  // should close).
  bool malformed(const std::string& peer, std::string_view reason);

 private:
  using Networks = std::vector<net::Network>;
  std::shared_ptr<const Networks> trusted_proxies() const;
  std::shared_ptr<auth::Authenticator> current_auth();
  Reply refuse_credentials(const auth::Authenticator& authenticator, auth::Credentials::Kind kind,
                           const std::string& claimed);

  const config::Config& config_;
  metrics::Metrics& metrics_;
  MalformedLimiter malformed_;
  RateLimiter rate_;
  ConnectionCounter connections_;
  mutable std::mutex trusted_mutex_;  // guards trusted_, swapped whole on SIGHUP
  std::shared_ptr<const Networks> trusted_;
  std::mutex auth_mutex_;  // guards auth_, swapped whole on SIGHUP
  std::shared_ptr<auth::Authenticator> auth_;
  boost::asio::thread_pool bcrypt_pool_{2};  // last: joined first, before anything its work refers to
};

}  // namespace ocigate::server
