#include "pull/proxy.hpp"

#include "cpus.hpp"
#include "ocigate/server/errors.hpp"
#include "pull/upstream_call.hpp"

namespace ocigate::server {

namespace asio = boost::asio;
using Request = http::request<http::empty_body>;

Proxy::Proxy(const config::Config& config, cache::Store& store, metrics::Metrics& metrics, PolicyHolder& policy,
             asio::any_io_executor executor)
    : config_(config),
      fetches_(FetchContext{store, metrics, config.server.idle_timeout}, executor,
               static_cast<unsigned>(allowed_cpus().size())),
      judge_(store, metrics, policy, *this, fetches_, executor),
      pull_ahead_(store, metrics, fetches_, judge_, executor),
      manifests_(store, metrics, judge_, pull_ahead_),
      blobs_(config, store, metrics, fetches_, judge_, pull_ahead_),
      listings_(store, metrics, manifests_) {
  for (const auto& upstream : config_.upstreams) {
    clients_.emplace(upstream.name, upstream::Client::create(executor, upstream));
  }
}

Result<Target> Proxy::resolve(const oci::Route& route) const {
  auto target = resolve_target(config_, route);
  if (target) target->client = clients_.find(target->upstream->name)->second.get();
  return target;
}

asio::awaitable<Reply> Proxy::handle(const Request& req, const std::string& client) {
  auto route = oci::parse_route(req.target());
  const bool readonly = req.method() == http::verb::get || req.method() == http::verb::head;
  if (route.kind == oci::RouteKind::base) {
    Reply reply;
    reply.route = "base";
    reply.head.result(readonly ? http::status::ok : http::status::method_not_allowed);
    reply.head.set(http::field::content_type, "application/json");
    reply.body = readonly ? "{}" : error_body(Errc::unsupported, "ocigate is a read-only mirror");
    co_return reply;
  }
  if (route.kind == oci::RouteKind::unknown) {
    Reply reply = error_reply(Errc::name_unknown, "no such route");
    reply.head.result(http::status::not_found);
    co_return reply;
  }
  if (route.kind == oci::RouteKind::catalog) {
    co_return error_reply(Errc::unsupported,
                          "the repository catalog (/v2/_catalog) is not served: ocigate is a pull-through mirror and "
                          "cannot list its upstreams' repositories; pull by name");
  }
  if (!readonly || route.kind == oci::RouteKind::blob_upload) {
    Reply reply = error_reply(Errc::unsupported, "ocigate is a read-only pull-through mirror: " +
                                                     std::string(req.method_string()) + " is not supported");
    reply.name = route.name;
    co_return reply;
  }
  auto target = resolve(route);
  if (!target) {
    Reply reply = error_reply(target.error());
    reply.name = route.name;
    co_return reply;
  }
  Reply reply;
  switch (route.kind) {
    case oci::RouteKind::manifest:
      reply = co_await manifests_.answer(req, *target, route.reference, client);
      reply.route = "manifest";
      break;
    case oci::RouteKind::blob:
      reply = co_await blobs_.answer(req, *target, route.reference);
      reply.route = "blob";
      break;
    case oci::RouteKind::tags_list:
      reply = co_await listings_.tags(*target, route.query);
      reply.route = "tags";
      break;
    case oci::RouteKind::referrers:
      reply = co_await listings_.referrers(*target, route.reference, route.query);
      reply.route = "referrers";
      break;
    default:
      reply = error_reply(Errc::unsupported, "not supported");
  }
  reply.name = route.name;
  reply.reference = route.reference;
  reply.upstream = target->upstream->name;
  co_return reply;
}

asio::awaitable<Result<policy::Verdict>> Proxy::inspect(const Target& target, const std::string& reference,
                                                        const std::string& os, const std::string& architecture) {
  co_return co_await manifests_.inspect(target, reference, os, architecture);
}

asio::awaitable<Result<ManifestData>> Proxy::manifest_by_tag(const Target& target, const std::string& tag) {
  co_return co_await manifests_.by_tag(target, tag);
}

asio::awaitable<Result<ManifestData>> Proxy::manifest_by_digest(const Target& target, const std::string& digest) {
  co_return co_await manifests_.by_digest(target, digest);
}

asio::awaitable<std::optional<std::string>> Proxy::small_blob(const Target& target, const oci::Descriptor& descriptor,
                                                              std::int64_t max_size) {
  co_return co_await blobs_.small_blob(target, descriptor, max_size);
}

asio::awaitable<Reply> Proxy::referrers(const Target& target, const std::string& digest) {
  co_return co_await listings_.referrers(target, digest, "");
}

}  // namespace ocigate::server
