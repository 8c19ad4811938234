// serve(): wires the mirror together. The App owns what lives as long as the process: the
// metrics, the policy in force, the proxy (pull flows and the judge), the front door, the local
// routes and the listener; it answers each request in that order, and handles SIGHUP (reload)
// and SIGTERM (drain, then stop).

#include "ocigate/server/app.hpp"

#include <atomic>
#include <csignal>
#include <memory>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "cpus.hpp"
#include "database_loader.hpp"
#include "front/front_door.hpp"
#include "local_routes.hpp"
#include "notices.hpp"
#include "ocigate/server/log.hpp"
#include "ocigate/upstream/client.hpp"
#include "pull/proxy.hpp"
#include "session/listener.hpp"
#include "session/tls.hpp"
#include "session/tls_expiry.hpp"

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

// How long queued webhook events may still go out when their notifier is replaced or at exit.
constexpr std::chrono::milliseconds notify_shutdown_grace{2000};

class App final : public Responder {
 public:
  // ioc runs everything shared (acceptors, signals, upstream fetches); each client connection lives
  // on one of session_contexts (ioc among them), one thread each.
  App(const config::Config& config, policy::Policy policy, signature::TrustStore trust, VulnerabilityData vulnerabilities,
      cache::Store& store, asio::io_context& ioc, std::vector<asio::io_context*> session_contexts)
      : config_(config),
        ioc_(ioc),
        session_contexts_(session_contexts),
        policy_(std::move(policy), std::move(trust), std::move(vulnerabilities)),
        proxy_(config, store, metrics_, policy_, ioc.get_executor()),
        front_(config, metrics_),
        local_(config, store, metrics_, proxy_, stopping_),
        listener_(config.server, metrics_, front_, *this, ioc, std::move(session_contexts)),
        databases_(
            ioc.get_executor(), [this] { return policy_.vulnerabilities(); },
            [this](DatabaseLoad load) { database_loaded(std::move(load)); }) {
    metrics_.set_instance(config.server.instance, OCIGATE_VERSION);
    metrics_.set_policy(policy::mode_text(policy_.get()->mode), policy_.get()->version);
    const auto& data = *policy_.vulnerabilities();
    if (data.configured) metrics_.record_vulndb_load(data.database ? "ok" : "error");
    report_database(data, true);
    (void)notices::install(make_notifier(config.notify.webhooks), config.server.instance);
  }

  // What is still queued gets a moment to go out; the notifier goes before the metrics it counts in.
  ~App() {
    if (!notices::flush(notify_shutdown_grace)) log::warn("webhook events still queued at exit are dropped");
    auto last = notices::install(nullptr, config_.server.instance);
    last.reset();
    for (auto& retiring : retiring_) retiring.thread.join();
  }
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // TLS context and authenticator from the configuration; an error is a configuration error.
  Status configure_security() {
    if (config_.server.tls) {
      auto context = make_tls_context(*config_.server.tls);
      if (!context) return context.error();
      listener_.set_tls(std::move(*context));
      export_certificate_expiry(config_.server.tls->cert_file, metrics_);
    }
    return front_.configure();
  }

  Status listen(const config::Endpoint& endpoint, bool metrics_only) { return listener_.listen(endpoint, metrics_only); }

  void purge_stale_verdicts() { proxy_.judge().verdicts().purge_stale(); }

  void start_signals() {
    // sendfile(2) cannot be told MSG_NOSIGNAL: a client that left must be an EPIPE for its
    // session, not a signal that ends the process.
    std::signal(SIGPIPE, SIG_IGN);
    signals_ = std::make_unique<asio::signal_set>(ioc_, SIGINT, SIGTERM);
    signals_->async_wait([this](const boost::system::error_code& ec, int signal) {
      if (!ec) shutdown(signal);
    });
    reload_signal_ = std::make_unique<asio::signal_set>(ioc_, SIGHUP);
    wait_for_reload();
  }

  // Responder: every request passes the front door's limits and authentication, then the local
  // routes, then its pull grant and the proxy.
  // Behind a trusted proxy the limits, the audit line and the access line go by the client it names.
  asio::awaitable<Reply> answer(const Request& req, const Peer& peer, std::string& user) override {
    const std::string client = front_.client_of(req, peer.address);
    Reply reply = co_await answer_from(req, peer, client, user);
    if (client != peer.address) reply.client = client;
    co_return reply;
  }

  asio::awaitable<Reply> answer_from(const Request& req, const Peer& peer, const std::string& client, std::string& user) {
    auto path = req.target().substr(0, req.target().find('?'));
    const bool probe = LocalRoutes::probe(path);
    if (auto refused = front_.limit(req, client, probe)) co_return std::move(*refused);
    auto admission = co_await front_.authenticate(req, peer.cert_user, path, probe);
    if (admission.refusal) co_return std::move(*admission.refusal);
    user = admission.user;
    if (auto local = local_.common(path)) co_return std::move(*local);
    if (peer.metrics_only) {
      co_return error_reply(Errc::name_unknown, "this listener serves /metrics, /healthz and /readyz only");
    }
    if (auto api = local_.api(path)) co_return std::move(*api);
    if (auto refused = front_.authorize(req, user)) co_return std::move(*refused);
    Reply reply = co_await proxy_.handle(req, client);
    if (reply.head.result_int() == 503 && reply.head.find(http::field::retry_after) == reply.head.end()) {
      // Every 503 says when to come back (no fetch slot free, cache busy, shutting down): clients
      // that honour it spread their retries instead of hammering a saturated mirror.
      reply.head.set(http::field::retry_after, std::to_string(upstream::busy_retry_after));
    }
    if (reply.head.result_int() == 400 && front_.malformed(client, "bad_request")) reply.close = true;
    co_return reply;
  }

  void malformed(const std::string& peer, std::string_view reason) override { (void)front_.malformed(peer, reason); }
  bool stopping() const override { return stopping_; }

 private:
  void wait_for_reload() {
    reload_signal_->async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      reload();
      wait_for_reload();
    });
  }

  // SIGHUP: the config file is read once; its policy and trust keys are swapped in, the TLS files
  // named at start are re-read, and so are auth's users, tokens and rules. Connections are
  // untouched; what is invalid is refused (logged) and the old one stays.
  void reload() {
    if (config_.source.empty() || config_.source.front() == '<') {
      log::warn("SIGHUP ignored: running on the built-in default config, nothing to reload");
      metrics_.record_policy_reload("error");
      notices::reload_failed("SIGHUP ignored: running on the built-in default config, nothing to reload");
      return;
    }
    auto loaded = config::load_file(config_.source);
    auto next = loaded ? settings_from(*loaded) : Result<Settings>(loaded.error());
    if (!next) {
      log::error("policy reload refused; the previous policy stays in force", {{"error", next.error().message}});
      metrics_.record_policy_reload("error");
      // Told to the webhooks in force before the reload: a file that does not load has none.
      notices::reload_failed(next.error().message);
    } else {
      log::info("policy reloaded", {{"policy_version", next->policy.version}, {"previous", policy_.get()->version},
                                    {"trust", next->trust.fingerprint}});
      policy_.set(std::move(next->policy), std::move(next->trust));
      metrics_.set_policy(policy::mode_text(policy_.get()->mode), policy_.get()->version);
      purge_stale_verdicts();
      metrics_.record_policy_reload("ok");
    }
    reload_tls();
    if (loaded) {
      warn_restart_only(*loaded);
      front_.reload_auth(*loaded);
      front_.reload_trusted_proxies(*loaded);
      reload_webhooks(loaded->notify.webhooks);
      // Seconds of reading on a thread of its own; swapped in when done (database_loaded).
      if (loaded->vulnerabilities) {
        log::info(databases_.busy() ? "a vulnerability database load is in progress; loading it again follows"
                                    : "loading the vulnerability database",
                  {{"directory", loaded->vulnerabilities->database}});
      }
      databases_.start(loaded->vulnerabilities);
    }
  }

  void database_loaded(DatabaseLoad load) {
    metrics_.record_vulndb_load(load.result);
    if (!load.next) {
      log::error("vulnerability database reload refused; the previous one stays in force",
                 {{"directory", policy_.vulnerabilities()->directory}, {"error", load.error}});
      return;
    }
    const bool changed = load.result != "unchanged";
    policy_.set_vulnerabilities(std::move(*load.next));
    report_database(*policy_.vulnerabilities(), changed);
    if (changed) purge_stale_verdicts();
  }

  // Logs and exports the database in force.
  void report_database(const VulnerabilityData& data, bool log_it) {
    const auto* db = data.database.get();
    metrics_.set_vulndb(db != nullptr, db ? static_cast<double>(db->metadata().records_loaded) : 0.0,
                        static_cast<double>(data.max_age.count()));
    if (!log_it || !data.configured) return;
    if (!db) {
      log::error("no vulnerability database loaded; the vulnerabilities check answers unknown",
                 {{"directory", data.directory}, {"error", data.error}});
      return;
    }
    const auto& meta = db->metadata();
    log::info("vulnerability database loaded",
              {{"directory", data.directory}, {"version", meta.version}, {"records", meta.records_loaded},
               {"files", meta.files}, {"age_seconds", db->age(std::chrono::system_clock::now()).count()}});
  }

  // What the file changed that a reload does not apply: said at every SIGHUP until a restart, so
  // that nobody takes a changed upstream or limit for one in force.
  void warn_restart_only(const config::Config& next) {
    const auto changed = config::restart_only_changes(config_, next);
    if (changed.empty()) return;
    std::string keys;
    for (const auto& key : changed) keys += (keys.empty() ? "" : ", ") + key;
    log::warn("SIGHUP: these settings changed in the file but take effect only after a restart", {{"settings", keys}});
  }

  // notify.webhooks as the file now says (a file that loads, as for auth): events from now on go to
  // the new set; the old notifier gets a moment to send what it holds, on a thread of its own.
  void reload_webhooks(std::vector<config::Webhook> webhooks) {
    const std::size_t count = webhooks.size();
    auto old = notices::install(make_notifier(std::move(webhooks)), config_.server.instance);
    std::erase_if(retiring_, [](Retiring& r) {
      if (!r.done->load()) return false;
      r.thread.join();  // its notifier is gone: the thread only has to be reaped
      return true;
    });
    if (old) {
      auto done = std::make_shared<std::atomic<bool>>(false);
      std::thread thread([old = std::move(old), done]() mutable {
        (void)old->flush(notify_shutdown_grace);
        old.reset();
        *done = true;
      });
      retiring_.push_back({std::move(thread), std::move(done)});
    }
    log::info("webhooks reloaded", {{"webhooks", count}});
  }

  std::unique_ptr<notify::Notifier> make_notifier(std::vector<config::Webhook> webhooks) {
    if (webhooks.empty()) return nullptr;
    // Called on the notifier's thread; never names the URL (a Slack URL is a credential) or the secret.
    auto report = [](const notify::Failure& failure) {
      log::warn(failure.result == "dropped" ? "webhook event dropped" : "webhook delivery failed",
                {{"webhook", failure.webhook}, {"event", failure.event}, {"result", failure.result},
                 {"attempts", failure.attempts}, {"reason", failure.reason}});
    };
    return std::make_unique<notify::Notifier>(std::move(webhooks), &metrics_, report);
  }

  // New connections get the new certificate; open ones keep the context they started with.
  void reload_tls() {
    if (!config_.server.tls) return;
    auto context = make_tls_context(*config_.server.tls);
    if (!context) {
      log::error("certificate reload refused; the previous certificate stays in use", {{"error", context.error().message}});
      return;
    }
    listener_.set_tls(std::move(*context));
    export_certificate_expiry(config_.server.tls->cert_file, metrics_);
    log::info("certificate reloaded", {{"cert_file", config_.server.tls->cert_file}});
  }

  // Stop accepting; idle keep-alive connections are closed at once, requests in flight finish
  // (their connections close after the reply) until the grace period ends.
  void shutdown(int signal) {
    log::info("shutting down", {{"signal", signal}, {"grace_seconds", config_.server.shutdown_grace.count()}});
    stopping_ = true;
    listener_.stop();
    deadline_ = std::chrono::steady_clock::now() + config_.server.shutdown_grace;
    drain_timer_ = std::make_unique<asio::steady_timer>(ioc_);
    wait_for_drain();
  }

  void wait_for_drain() {
    const std::size_t open = listener_.open_connections();
    if (open == 0 || std::chrono::steady_clock::now() >= deadline_) {
      if (open > 0) log::warn("grace period over; cutting connections", {{"open", open}});
      for (auto* context : session_contexts_) context->stop();
      return;
    }
    drain_timer_->expires_after(std::chrono::milliseconds(50));
    drain_timer_->async_wait([this](const boost::system::error_code&) { wait_for_drain(); });
  }

  const config::Config& config_;
  asio::io_context& ioc_;
  const std::vector<asio::io_context*> session_contexts_;
  std::atomic<bool> stopping_{false};
  metrics::Metrics metrics_;
  PolicyHolder policy_;
  Proxy proxy_;
  FrontDoor front_;
  LocalRoutes local_;
  Listener listener_;
  std::unique_ptr<asio::signal_set> signals_;
  std::unique_ptr<asio::signal_set> reload_signal_;
  std::chrono::steady_clock::time_point deadline_;
  std::unique_ptr<asio::steady_timer> drain_timer_;
  // Notifiers replaced on reload, finishing off the I/O threads; reaped at the next reload once done.
  struct Retiring {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Retiring> retiring_;
  // Last: destroyed first, so a load in progress is waited for while everything it reports to lives.
  DatabaseLoader databases_;
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
      name_current_thread("io-" + std::to_string(i));
      pin(i);
      context->run();
    });
  }
  name_current_thread("io-0");
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

int serve(Settings settings) {
  const config::Config& config = settings.config;
  std::string log_error;
  if (!log::configure(config.log.level, config.log.access_log, config.log.audit_log, log_error)) {
    log::error("cannot start", {{"error", log_error}});
    return 1;
  }
  log::set_instance(config.server.instance);
  cache::Options cache_options;
  cache_options.path = config.storage.path;
  cache_options.max_size = config.storage.max_size;
  cache_options.chunk_size = config.storage.chunk_size;
  cache_options.on_lost_file = [](const std::string& digest, const std::string& why) {
    log::warn("cached blob dropped; it will be fetched again", {{"digest", digest}, {"reason", why}});
  };
  auto store = cache::Store::open(cache_options);
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
    App app(config, std::move(settings.policy), std::move(settings.trust), std::move(settings.vulnerabilities), **store,
            ioc, session_contexts);
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
      log::info("ocigate started", {{"config", config.source}, {"instance", config.server.instance}, {"threads", threads},
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
