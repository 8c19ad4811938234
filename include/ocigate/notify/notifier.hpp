#pragma once
// Sends events to notify.webhooks without ever delaying the caller. publish() copies the event into
// a bounded queue per subscribed webhook and returns; the notifier's own thread sends each queued
// event as one POST per webhook, in order, and retries with jittered exponential backoff on
// connection errors, timeouts, 429 and 5xx (Retry-After honoured up to a cap), never on another
// 4xx. Redirects are not followed: a 3xx is a failed delivery. The addresses a webhook's name
// resolves to are checked before connecting: link-local (cloud metadata) and special addresses
// never; loopback and private ones only when the URL itself names such an address (or localhost).
// HTTPS verifies the certificate against the system's CAs (and the webhook's ca_file) and the
// host name, with SNI.
//
// Repeats of an event within a webhook's repeat_window are held back, counted as "suppressed", and
// the next one it sends says how many there were (notify/repeats.hpp); an event that was dropped or
// failed holds nothing back. A reload carries that memory over to the new notifier's webhooks with
// the same URL and format (remember_sent_by).
//
// Lower modules never log: failures go to the Report callback (the server logs them) and to
// ocigate_notify_events_total{result}.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ocigate/config/config.hpp"
#include "ocigate/metrics/metrics.hpp"
#include "ocigate/notify/event.hpp"
#include "ocigate/upstream/client.hpp"

namespace ocigate::notify {

struct Options {
  std::size_t queue_capacity = 1024;  // events waiting per webhook; more are dropped (counted)
  unsigned max_attempts = 5;          // per event and webhook, the first included
  // Wait before the second attempt, doubled before each next one, each jittered down to 50..100 %
  // of itself: 1 s, 2 s, 4 s, 8 s by default (about 15 s plus five timeouts at most per event).
  std::chrono::milliseconds first_backoff{1000};
  std::chrono::milliseconds max_backoff{30000};
  std::chrono::milliseconds max_retry_after{60000};  // a longer Retry-After is waited only this long
  // Name lookups. Default: getaddrinfo on two lookup threads of the notifier's own, each wait
  // bounded by the webhook's timeout.
  upstream::Resolve resolve;
};

// A delivery that did not happen, for the server to log. Never holds the URL (a Slack URL is a
// credential) or the secret.
struct Failure {
  std::string webhook;  // "notify.webhooks[0] (hooks.example.com)"
  std::string event;    // kind name
  std::string result;   // "failed" (gave up) | "dropped" (queue full; reported once per run of drops)
  unsigned attempts = 0;
  std::string reason;   // "HTTP 404", "connect to hooks.example.com:443: Connection refused", ...
};

// Called on the notifier's thread, one call at a time.
using Report = std::function<void(const Failure&)>;

// Counts since construction, as in ocigate_notify_events_total (one per event and webhook).
struct Stats {
  std::uint64_t delivered = 0;
  std::uint64_t failed = 0;
  std::uint64_t dropped = 0;
  std::uint64_t retried = 0;
  std::uint64_t suppressed = 0;  // repeats held back (notify.webhooks[].repeat_window)
};

class Notifier {
 public:
  // metrics may be null (nothing exported). With no webhooks nothing runs.
  Notifier(std::vector<config::Webhook> webhooks, metrics::Metrics* metrics, Report report = {},
           Options options = {});
  // Stops at once: events still queued or being sent are counted as dropped. A name lookup that
  // is blocked in getaddrinfo is waited for.
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Whether any webhook subscribed to kind (lets a caller skip building an event).
  bool wants(EventKind kind) const;
  // Never blocks on the network: queues the event for every webhook subscribed to its kind, holds
  // it back (counted) where it repeats one that webhook sent within its repeat_window, or drops it
  // (counted) where that queue is full. Thread-safe.
  void publish(Event event);
  // Waits until every queue is empty and nothing is being sent, at most timeout; true if so. For
  // shutdown (give pending events a moment) and tests.
  bool flush(std::chrono::milliseconds timeout);
  // For a reload: each of this notifier's webhooks that posts to the same URL in the same format as
  // one of previous's takes over what that one remembers sending, so a SIGHUP does not send again what went out
  // before it, and the next event let through still counts the repeats held back. Call before
  // this notifier publishes anything; previous may still be delivering.
  void remember_sent_by(const Notifier& previous);
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ocigate::notify
