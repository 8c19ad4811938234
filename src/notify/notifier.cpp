#include "ocigate/notify/notifier.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/rand.h>

#include "delivery.hpp"
#include "repeats.hpp"
#include "ocigate/notify/payload.hpp"

namespace ocigate::notify {

namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Endpoints = std::vector<tcp::endpoint>;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr int lookup_threads = 2;

unsigned kind_bit(EventKind kind) { return 1u << static_cast<unsigned>(kind); }

// getaddrinfo, on a thread of the lookup pool, where it may block. The answer goes through `out`:
// co_spawn's completion wants a default-constructible value, which Result is not.
asio::awaitable<void> blocking_lookup(std::string host, std::string service, std::optional<Result<Endpoints>>* out) {
  tcp::resolver resolver(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  auto results = resolver.resolve(host, service, ec);
  if (ec) {
    out->emplace(Error{Errc::upstream_error, "cannot resolve " + host + ": " + ec.message()});
    co_return;
  }
  Endpoints endpoints;
  for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  out->emplace(std::move(endpoints));
}

asio::awaitable<Result<Endpoints>> resolve_on(asio::thread_pool& pool, std::string host, std::string service) {
  std::optional<Result<Endpoints>> out;
  co_await asio::co_spawn(pool, blocking_lookup(std::move(host), std::move(service), &out), asio::use_awaitable);
  co_return std::move(*out);
}

// Not a coroutine itself: the returned awaitable holds what it needs, not the closure.
upstream::Resolve system_resolver(asio::thread_pool& pool) {
  return [&pool](std::string host, std::string service) { return resolve_on(pool, std::move(host), std::move(service)); };
}

// X-Ocigate-Delivery: 128 random bits, so a receiver can tell a retry from a new event.
std::string delivery_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    static std::atomic<std::uint64_t> counter{0};
    return "seq-" + std::to_string(++counter);
  }
  static const char digits[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) {
    id += digits[b >> 4];
    id += digits[b & 0x0f];
  }
  return id;
}

// The event as one webhook sends it: with the repeats it held back since its last one.
std::shared_ptr<const Event> with_repeats(const Event& event, std::uint64_t repeats) {
  auto copy = std::make_shared<Event>(event);
  copy->repeats = repeats;
  return copy;
}

}  // namespace

// One webhook: its setup, its queue and the worker coroutine that empties it.
struct Hook {
  Hook(config::Webhook webhook, asio::io_context& io)
      : config(std::move(webhook)), wake(io), repeats(config.repeat_window) {}

  config::Webhook config;
  std::string name;  // "notify.webhooks[0] (host)", for reports
  unsigned kinds = 0;
  std::optional<ssl::context> tls;
  std::string setup_error;  // set: every delivery fails with it (an unusable ca_file)
  detail::Target target;
  asio::steady_timer wake;  // the idle worker waits on it; publish() cancels it
  // Guarded by Impl::mutex_.
  std::deque<std::shared_ptr<const Event>> queue;
  bool idle = false;      // the worker waits on `wake`
  bool busy = false;      // an event is being delivered
  bool dropping = false;  // a drop was reported and nothing was queued since
  detail::Repeats repeats;  // what went out lately, to hold back repeats
};

struct Notifier::Impl {
  Impl(std::vector<config::Webhook> webhooks, metrics::Metrics* metrics, Report report, Options options);
  ~Impl();

  void setup(Hook& hook);
  void publish(Event event);
  asio::awaitable<void> worker(std::shared_ptr<Hook> hook);
  asio::awaitable<void> deliver(Hook& hook, const Event& event);
  std::chrono::milliseconds backoff(unsigned attempt, std::optional<std::chrono::milliseconds> retry_after);
  void count(std::string_view result, std::atomic<std::uint64_t>& counter, std::uint64_t n = 1);
  void report_failure(Failure failure);

  Options options_;
  metrics::Metrics* metrics_;
  Report report_;
  asio::io_context io_;
  // Declared after io_: destroyed (already joined) before it, so nothing it abandoned outlives io_.
  std::unique_ptr<asio::thread_pool> lookup_pool_;
  upstream::Resolve resolve_;
  std::vector<std::shared_ptr<Hook>> hooks_;
  unsigned kinds_ = 0;  // union of the hooks' kinds
  std::mt19937 random_{std::random_device{}()};  // backoff jitter; notifier thread only

  mutable std::mutex mutex_;
  std::condition_variable settled_;  // a worker went idle
  bool stopping_ = false;

  std::atomic<std::uint64_t> delivered_{0}, failed_{0}, dropped_{0}, retried_{0}, suppressed_{0};
  std::thread thread_;
};

Notifier::Impl::Impl(std::vector<config::Webhook> webhooks, metrics::Metrics* metrics, Report report, Options options)
    : options_(std::move(options)), metrics_(metrics), report_(std::move(report)) {
  if (webhooks.empty()) return;
  if (options_.resolve) {
    resolve_ = options_.resolve;
  } else {
    lookup_pool_ = std::make_unique<asio::thread_pool>(lookup_threads);
    resolve_ = system_resolver(*lookup_pool_);
  }
  for (std::size_t i = 0; i < webhooks.size(); ++i) {
    auto hook = std::make_shared<Hook>(std::move(webhooks[i]), io_);
    const std::string key = hook->config.key.empty() ? "webhook[" + std::to_string(i) + "]" : hook->config.key;
    hook->name = key + " (" + hook->config.host + ")";
    setup(*hook);
    kinds_ |= hook->kinds;
    hooks_.push_back(hook);
    asio::co_spawn(io_, worker(hook), asio::detached);
  }
  thread_ = std::thread([this] { io_.run(); });
}

void Notifier::Impl::setup(Hook& hook) {
  for (const auto& name : hook.config.events) {
    if (auto kind = parse_kind(name)) hook.kinds |= kind_bit(*kind);
  }
  hook.target.webhook = &hook.config;
  hook.target.home_classes = detail::home_classes(hook.config);
  if (!hook.config.tls) return;
  hook.tls.emplace(ssl::context::tls_client);
  hook.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(hook.tls->native_handle(), TLS1_2_VERSION);
  hook.tls->set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  hook.tls->set_default_verify_paths(ec);  // a machine without a system store may still use ca_file
  if (!hook.config.ca_file.empty()) {
    hook.tls->load_verify_file(hook.config.ca_file, ec);
    if (ec) hook.setup_error = "cannot load ca_file " + hook.config.ca_file + ": " + ec.message();
  }
  hook.target.tls = &*hook.tls;
}

Notifier::Impl::~Impl() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  io_.stop();
  if (thread_.joinable()) thread_.join();
  if (lookup_pool_) {
    lookup_pool_->stop();
    lookup_pool_->join();
  }
  // What never reached its receiver: still queued, or abandoned while being sent.
  for (const auto& hook : hooks_) count("dropped", dropped_, hook->queue.size() + (hook->busy ? 1 : 0));
}

void Notifier::Impl::count(std::string_view result, std::atomic<std::uint64_t>& counter, std::uint64_t n) {
  counter += n;
  if (metrics_) {
    for (std::uint64_t i = 0; i < n; ++i) metrics_->record_notify(result);
  }
}

void Notifier::Impl::report_failure(Failure failure) {
  if (report_) report_(failure);
}

void Notifier::Impl::publish(Event event) {
  if (!(kinds_ & kind_bit(event.kind))) return;
  const std::string key = detail::repeat_key(event);
  const auto now = detail::Repeats::Clock::now();
  auto shared = std::make_shared<const Event>(std::move(event));
  for (const auto& hook : hooks_) {
    if (!(hook->kinds & kind_bit(shared->kind))) continue;
    bool queued = false, wake = false, first_drop = false, held = false;
    {
      std::lock_guard lock(mutex_);
      auto admitted = stopping_ ? std::optional<std::uint64_t>(0) : hook->repeats.admit(key, now);
      if (!admitted) {
        held = true;
      } else if (!stopping_ && hook->queue.size() < options_.queue_capacity) {
        hook->queue.push_back(*admitted == 0 ? shared : with_repeats(*shared, *admitted));
        queued = true;
        wake = hook->idle;
        hook->idle = false;
        hook->dropping = false;
      } else {
        first_drop = !hook->dropping;
        hook->dropping = true;
        if (!stopping_) hook->repeats.reopen(key, now);  // nothing went out: the next repeat may
      }
    }
    if (wake) asio::post(io_, [hook] { hook->wake.cancel(); });
    if (held) {
      count("suppressed", suppressed_);
      continue;
    }
    if (queued) continue;
    count("dropped", dropped_);
    // Reported from the notifier's thread, once per run of drops: a flood must not flood the log.
    if (first_drop && report_) {
      Failure failure{hook->name, std::string(kind_name(shared->kind)), "dropped", 0,
                      "queue full (" + std::to_string(options_.queue_capacity) +
                          " events waiting); further drops are counted until one is queued again"};
      asio::post(io_, [this, failure = std::move(failure)]() mutable { report_failure(std::move(failure)); });
    }
  }
}

asio::awaitable<void> Notifier::Impl::worker(std::shared_ptr<Hook> hook) {
  for (;;) {
    std::shared_ptr<const Event> event;
    {
      std::lock_guard lock(mutex_);
      if (hook->queue.empty()) {
        hook->busy = false;
        hook->idle = true;
        settled_.notify_all();
      } else {
        event = std::move(hook->queue.front());
        hook->queue.pop_front();
        hook->busy = true;
      }
    }
    if (!event) {
      // publish() posts the cancel on this thread, so it cannot slip in between the check above
      // and this wait.
      hook->wake.expires_at(asio::steady_timer::time_point::max());
      co_await hook->wake.async_wait(use_tuple);
      continue;
    }
    co_await deliver(*hook, *event);
  }
}

asio::awaitable<void> Notifier::Impl::deliver(Hook& hook, const Event& event) {
  const std::string body = notify::body(event, hook.config.format);
  const std::string id = delivery_id();
  const detail::Post post{kind_name(event.kind), id, body};
  for (unsigned attempt = 1;; ++attempt) {
    detail::Attempt outcome;
    if (hook.setup_error.empty()) {
      outcome = co_await detail::post_once(hook.target, resolve_, post);
    } else {
      outcome = detail::Attempt{detail::Attempt::Result::give_up, hook.setup_error, std::nullopt};
    }
    if (outcome.result == detail::Attempt::Result::delivered) {
      count("delivered", delivered_);
      co_return;
    }
    if (outcome.result == detail::Attempt::Result::give_up || attempt >= options_.max_attempts) {
      count("failed", failed_);
      {
        // It never arrived: the next repeat goes out instead of being held back for the window.
        std::lock_guard lock(mutex_);
        hook.repeats.reopen(detail::repeat_key(event), detail::Repeats::Clock::now());
      }
      const bool spent = outcome.result == detail::Attempt::Result::retry;
      report_failure(Failure{hook.name, std::string(kind_name(event.kind)), "failed", attempt,
                             outcome.reason + (spent ? " (gave up after " + std::to_string(attempt) + " attempts)" : "")});
      co_return;
    }
    count("retried", retried_);
    asio::steady_timer pause(io_, backoff(attempt, outcome.retry_after));
    co_await pause.async_wait(use_tuple);
  }
}

// first_backoff * 2^(attempt-1), at most max_backoff, jittered to 50..100 % so that webhooks
// failing together do not retry in step; a Retry-After (up to max_retry_after) is waited in full.
std::chrono::milliseconds Notifier::Impl::backoff(unsigned attempt, std::optional<std::chrono::milliseconds> retry_after) {
  auto delay = options_.first_backoff;
  for (unsigned i = 1; i < attempt && delay < options_.max_backoff; ++i) delay *= 2;
  delay = std::min(delay, options_.max_backoff);
  std::uniform_int_distribution<std::int64_t> jitter(delay.count() / 2, delay.count());
  delay = std::chrono::milliseconds(jitter(random_));
  if (retry_after) delay = std::max(delay, std::min(*retry_after, options_.max_retry_after));
  return delay;
}

Notifier::Notifier(std::vector<config::Webhook> webhooks, metrics::Metrics* metrics, Report report, Options options)
    : impl_(std::make_unique<Impl>(std::move(webhooks), metrics, std::move(report), std::move(options))) {}

Notifier::~Notifier() = default;

bool Notifier::wants(EventKind kind) const { return (impl_->kinds_ & kind_bit(kind)) != 0; }

void Notifier::publish(Event event) { impl_->publish(std::move(event)); }

bool Notifier::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mutex_);
  return impl_->settled_.wait_for(lock, timeout, [&] {
    return std::all_of(impl_->hooks_.begin(), impl_->hooks_.end(),
                       [](const auto& hook) { return hook->queue.empty() && !hook->busy; });
  });
}

void Notifier::remember_sent_by(const Notifier& previous) {
  if (&previous == this) return;
  std::scoped_lock lock(impl_->mutex_, previous.impl_->mutex_);
  for (const auto& hook : impl_->hooks_) {
    for (const auto& old : previous.impl_->hooks_) {
      if (old->config.url != hook->config.url || old->config.format != hook->config.format) continue;
      hook->repeats.remember_from(old->repeats);
      break;
    }
  }
}

Stats Notifier::stats() const {
  return Stats{impl_->delivered_.load(), impl_->failed_.load(), impl_->dropped_.load(), impl_->retried_.load(),
               impl_->suppressed_.load()};
}

}  // namespace ocigate::notify
