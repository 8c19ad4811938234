#include "front/front_door.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "front/forwarded.hpp"
#include "ocigate/oci/reference.hpp"
#include "ocigate/server/log.hpp"
#include "pull/routing.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<std::optional<std::string>> authenticate_slowly(std::shared_ptr<auth::Authenticator> authenticator,
                                                                auth::Credentials credentials) {
  co_return authenticator->authenticate(credentials);
}

// 401 with the Basic challenge every registry client understands (docker login, skopeo login,
// podman, containerd's hosts.toml credentials).
Reply challenge(const auth::Authenticator& authenticator, std::string message) {
  Reply reply = error_reply(Errc::unauthorized, std::move(message));
  reply.head.set(http::field::www_authenticate, "Basic realm=\"" + authenticator.realm() + "\", charset=\"UTF-8\"");
  reply.route = "auth";
  return reply;
}

// "10.0.0.0/8,192.0.2.7", for the reload's log line.
std::string networks_text(const std::vector<net::Network>& networks) {
  std::string text;
  for (const auto& network : networks) text.append(text.empty() ? "" : ",").append(network.text());
  return text;
}

}  // namespace

FrontDoor::FrontDoor(const config::Config& config, metrics::Metrics& metrics)
    : config_(config),
      metrics_(metrics),
      malformed_(config.server.malformed_per_minute),
      rate_(config.server.requests_per_second, config.server.burst),
      connections_(config.server.max_connections_per_client),
      trusted_(std::make_shared<const Networks>(config.server.trusted_proxies)) {}

Status FrontDoor::configure() {
  if (!config_.auth) return ok_status();
  auto built = auth::Authenticator::build(*config_.auth, config_.source);
  if (!built) return built.error();
  auth_ = std::move(*built);
  log::info("client authentication on", {{"users", auth_->user_count()}, {"tokens", config_.auth->tokens.size()},
                                         {"rules", config_.auth->rules.size()}});
  return ok_status();
}

// Turning auth on or off needs a restart.
void FrontDoor::reload_auth(const config::Config& next) {
  if (next.auth.has_value() != config_.auth.has_value()) {
    log::error("auth reload refused: adding or removing the auth section needs a restart");
    return;
  }
  if (!next.auth) return;
  auto built = auth::Authenticator::build(*next.auth, next.source);
  if (!built) {
    log::error("auth reload refused; the previous users and rules stay in force", {{"error", built.error().message}});
    return;
  }
  std::lock_guard lock(auth_mutex_);
  auth_ = std::move(*built);
  log::info("auth reloaded", {{"users", auth_->user_count()}});
}

std::shared_ptr<auth::Authenticator> FrontDoor::current_auth() {
  std::lock_guard lock(auth_mutex_);
  return auth_;
}

void FrontDoor::reload_trusted_proxies(const config::Config& next) {
  auto fresh = std::make_shared<const Networks>(next.server.trusted_proxies);
  const std::string now = networks_text(*fresh);
  std::string before;
  {
    std::lock_guard lock(trusted_mutex_);
    before = networks_text(*trusted_);
    trusted_ = std::move(fresh);
  }
  if (now != before) log::info("trusted proxies reloaded", {{"trusted_proxies", now}, {"previous", before}});
}

std::shared_ptr<const FrontDoor::Networks> FrontDoor::trusted_proxies() const {
  std::lock_guard lock(trusted_mutex_);
  return trusted_;
}

// A trusted proxy's connections carry many clients' requests: they are not capped per address.
FrontDoor::Opened FrontDoor::open_connection(const std::string& peer) {
  if (trusted_peer(*trusted_proxies(), peer)) return Opened::uncounted;
  if (connections_.acquire(peer)) return Opened::counted;
  // Over max_connections_per_client: closed before reading anything, which costs us least.
  metrics_.record_limited("connections");
  log::warn("connection refused: too many open connections from this address",
            {{"client", peer}, {"limit", config_.server.max_connections_per_client}});
  return Opened::refused;
}

void FrontDoor::close_connection(const std::string& peer, Opened opened) {
  if (opened == Opened::counted) connections_.release(peer);
}

std::string FrontDoor::client_of(const Request& request, const std::string& peer) const {
  return forwarded_client(*trusted_proxies(), peer, request);
}

bool FrontDoor::malformed(const std::string& peer, std::string_view reason) {
  metrics_.record_malformed(reason);
  if (trusted_peer(*trusted_proxies(), peer)) return false;
  return malformed_.record(peer);
}

std::optional<Reply> FrontDoor::limit(const Request& req, const std::string& peer, bool probe) {
  if (!probe) {
    if (unsigned wait = rate_.take(peer)) {
      metrics_.record_limited("rate");
      Reply reply = error_reply(Errc::too_many_requests, "too many requests from this address; retry later");
      reply.head.set(http::field::retry_after, std::to_string(wait));
      reply.error = "refused by the request rate limit (server.requests_per_second)";
      reply.route = "limit";
      return reply;
    }
  }
  if (!probe && malformed_.over(peer)) {
    metrics_.record_limited("malformed");
    Reply reply = error_reply(Errc::too_many_requests, "too many malformed requests from this address");
    reply.error = "refused: too many malformed requests (server.malformed_per_minute)";
    reply.route = "limit";
    reply.head.set(http::field::retry_after, "60");
    reply.close = true;
    return reply;
  }
  if (req.target().size() > config_.server.max_uri_bytes) {
    malformed(peer, "uri_too_long");
    Reply reply = error_reply(Errc::name_invalid, "request target too long");
    reply.head.result(http::status::uri_too_long);
    reply.close = true;
    return reply;
  }
  return std::nullopt;
}

asio::awaitable<Admission> FrontDoor::authenticate(const Request& req, const std::string& cert_user,
                                                   std::string_view path, bool probe) {
  auto authenticator = current_auth();
  // No grants to apply, but the access log names the client.
  if (!authenticator) co_return Admission{std::nullopt, cert_user};
  if (probe) co_return Admission{};
  auto credentials = auth::parse_authorization(req[http::field::authorization]);
  const auto kind = credentials.kind;
  const std::string claimed = credentials.user.substr(0, 64);  // for the log line only
  std::optional<std::string> who;
  if (kind == auth::Credentials::Kind::none && !cert_user.empty()) {
    // No Authorization header: the verified client certificate says who this is. A header, when
    // sent, wins (and is checked like any other), so a CI token can act as its own user.
    who = cert_user;
  } else if (authenticator->needs_slow_check(credentials)) {
    // bcrypt takes tens of milliseconds by design: not on an I/O thread.
    auto [failure, checked] =
        co_await asio::co_spawn(bcrypt_pool_, authenticate_slowly(authenticator, std::move(credentials)), use_tuple);
    if (!failure) who = std::move(checked);
  } else {
    who = authenticator->authenticate(credentials);
  }
  if (!who) co_return Admission{refuse_credentials(*authenticator, kind, claimed), {}};
  if (who->empty() && authenticator->protect_api() && (path == "/metrics" || path.starts_with("/ocigate/"))) {
    metrics_.record_auth_failure("missing");
    co_return Admission{challenge(*authenticator, "authentication required"), {}};
  }
  co_return Admission{std::nullopt, *who};
}

// 401 for credentials that were given and are wrong. The access log line says which kind failed
// and for which claimed user name (never the secret); the metric carries only the kind.
Reply FrontDoor::refuse_credentials(const auth::Authenticator& authenticator, auth::Credentials::Kind kind,
                                    const std::string& claimed) {
  using Kind = auth::Credentials::Kind;
  const char* reason = kind == Kind::basic ? "bad_password" : kind == Kind::bearer ? "bad_token" : "malformed";
  metrics_.record_auth_failure(reason);
  Reply reply = challenge(authenticator, "invalid credentials");
  reply.error = std::string("authentication failed: ") + reason;
  if (kind == Kind::basic) reply.error += " for user '" + claimed + "'";
  return reply;
}

// The /v2/ ping answers anonymous clients with the challenge so they learn how to log in; a name
// that does not parse or maps to no upstream goes on to the proxy for its 400/404 (after
// authentication, so strangers learn nothing).
std::optional<Reply> FrontDoor::authorize(const Request& req, const std::string& user) {
  auto authenticator = current_auth();
  if (!authenticator) return std::nullopt;
  auto route = oci::parse_route(req.target());
  if (route.kind == oci::RouteKind::base) {
    // Not counted as a failure: the anonymous ping is how every client learns to log in.
    if (user.empty()) return challenge(*authenticator, "authentication required");
    return std::nullopt;
  }
  auto target = route.kind == oci::RouteKind::unknown ? Result<Target>(Errc::name_unknown, "no such route")
                                                       : resolve_target(config_, route);
  if (!target) {
    if (user.empty() && !authenticator->anonymous_allowed_somewhere()) {
      metrics_.record_auth_failure("missing");
      return challenge(*authenticator, "authentication required");
    }
    return std::nullopt;
  }
  if (authenticator->may_pull(user, target->repo_key)) return std::nullopt;
  if (user.empty()) {
    metrics_.record_auth_failure("missing");
    Reply reply = challenge(*authenticator, "authentication required to pull " + target->repo_key);
    reply.name = route.name;
    return reply;
  }
  metrics_.record_auth_failure("denied");
  Reply reply = error_reply(Errc::denied, "access to " + target->repo_key + " is not granted to this user");
  reply.name = route.name;
  reply.route = "auth";
  return reply;
}

}  // namespace ocigate::server
