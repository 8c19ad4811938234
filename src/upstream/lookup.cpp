#include "lookup.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ocigate::upstream::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Addresses of a looked-up name are reused for this long (getaddrinfo gives no TTL): a burst of
// new connections, such as a cold pull's layers or a redirect to a CDN, does not wait on a lookup
// each time, and a host that moves is seen within it.
constexpr auto lookup_ttl = std::chrono::seconds(30);
constexpr std::size_t lookup_cache_size = 256;  // names, upstream and redirect hosts together
constexpr int lookup_threads = 4;               // lookups of one client that may block at once

// getaddrinfo, run on a thread of the lookup pool, where it may block.
asio::awaitable<void> blocking_lookup(std::string host, std::string service, std::optional<Result<Endpoints>>* out) {
  tcp::resolver resolver(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  auto results = resolver.resolve(host, service, ec);
  if (ec) {
    out->emplace(Error{Errc::upstream_error, "cannot resolve upstream " + host + ": " + ec.message()});
  } else if (results.empty()) {
    out->emplace(Error{Errc::upstream_error, "upstream " + host + " has no address"});
  } else {
    Endpoints endpoints;
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    out->emplace(std::move(endpoints));
  }
}

asio::awaitable<Result<Endpoints>> system_resolve(asio::thread_pool& pool, std::string host, std::string service) {
  std::optional<Result<Endpoints>> out;
  co_await asio::co_spawn(pool, blocking_lookup(std::move(host), std::move(service), &out), asio::use_awaitable);
  co_return std::move(*out);
}

// One lookup's answer, handed from the lookup to the request waiting for it (on the request's
// strand, through the timer's executor).
struct LookupWait {
  explicit LookupWait(asio::any_io_executor executor) : timer(std::move(executor)) {}
  asio::steady_timer timer;
  std::optional<Result<Endpoints>> result;
};

asio::awaitable<void> run_lookup(Resolve resolve, std::shared_ptr<LookupWait> wait, std::string host,
                                 std::string service) {
  auto result = co_await resolve(std::move(host), std::move(service));
  asio::post(wait->timer.get_executor(), [wait, result = std::move(result)]() mutable {
    wait->result = std::move(result);
    wait->timer.cancel();
  });
}

std::string key_of(const std::string& host, std::uint16_t port) { return host + ':' + std::to_string(port); }

}  // namespace

NameLookups::NameLookups(asio::any_io_executor executor, std::chrono::seconds timeout, Resolve resolve)
    : executor_(std::move(executor)),
      timeout_(timeout),
      pool_(resolve ? nullptr : std::make_unique<asio::thread_pool>(lookup_threads)),
      resolve_(std::move(resolve)),
      answers_(lookup_cache_size) {
  if (!resolve_) {
    resolve_ = [pool = pool_.get()](std::string host, std::string service) {
      return system_resolve(*pool, std::move(host), std::move(service));
    };
  }
}

std::optional<Endpoints> NameLookups::cached(const std::string& key) {
  std::lock_guard lock(mutex_);
  const Answer* found = answers_.find(key);
  if (!found) return std::nullopt;
  if (std::chrono::steady_clock::now() >= found->expires) {
    answers_.erase(key);
    return std::nullopt;
  }
  return found->endpoints;
}

void NameLookups::remember(const std::string& key, const Endpoints& endpoints) {
  std::lock_guard lock(mutex_);
  answers_.put(key, Answer{endpoints, std::chrono::steady_clock::now() + lookup_ttl});
}

void NameLookups::forget(const std::string& host, std::uint16_t port) {
  std::lock_guard lock(mutex_);
  answers_.erase(key_of(host, port));
}

asio::awaitable<Result<Endpoints>> NameLookups::resolve(const std::string& host, std::uint16_t port) {
  const std::string key = key_of(host, port);
  if (auto hit = cached(key)) co_return std::move(*hit);
  auto wait = std::make_shared<LookupWait>(co_await asio::this_coro::executor);
  wait->timer.expires_after(timeout_);
  asio::co_spawn(executor_, run_lookup(resolve_, wait, host, std::to_string(port)), asio::detached);
  co_await wait->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!wait->result) {
    co_return Error{Errc::upstream_timeout,
                    "resolving upstream " + host + " timed out after " + std::to_string(timeout_.count()) + "s"};
  }
  if (*wait->result) remember(key, **wait->result);
  co_return std::move(*wait->result);
}

}  // namespace ocigate::upstream::detail
