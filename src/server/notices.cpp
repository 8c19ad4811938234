#include "notices.hpp"

#include <mutex>

namespace ocigate::server::notices {

namespace {

// The lock only guards the pointer and the name; publish() under it copies an event into a queue.
std::mutex mutex;
std::unique_ptr<notify::Notifier> current;
std::string instance_name;

void publish(notify::Event event) {
  std::lock_guard lock(mutex);
  if (!current || !current->wants(event.kind)) return;
  event.instance = instance_name;
  current->publish(std::move(event));
}

bool wanted(notify::EventKind kind) {
  std::lock_guard lock(mutex);
  return current && current->wants(kind);
}

}  // namespace

std::unique_ptr<notify::Notifier> install(std::unique_ptr<notify::Notifier> next, std::string instance) {
  std::lock_guard lock(mutex);
  // Under the lock: nothing is published to current while its memory of what it sent is copied.
  if (next && current) next->remember_sent_by(*current);
  std::swap(current, next);
  instance_name = std::move(instance);
  return next;
}

void verdict(const policy::Verdict& verdict, const std::string& client) {
  if (verdict.decision == policy::Decision::allow) return;
  const auto kind = verdict.decision == policy::Decision::block ? notify::EventKind::block : notify::EventKind::warn;
  if (!wanted(kind)) return;  // the violations' JSON is built only for someone who listens
  notify::Event event;
  event.kind = kind;
  event.client = client;
  event.image = verdict.image;
  event.reference = verdict.reference;
  event.digest = verdict.digest;
  event.violations = verdict.violations_json();
  event.policy_version = verdict.policy_version;
  publish(std::move(event));
}

void digest_mismatch(const std::string& upstream, const std::string& repository, const std::string& digest,
                     const std::string& actual) {
  notify::Event event;
  event.kind = notify::EventKind::digest_mismatch;
  event.upstream = upstream;
  event.repository = repository;
  event.digest = digest;
  event.actual = actual;
  publish(std::move(event));
}

void reload_failed(const std::string& error) {
  notify::Event event;
  event.kind = notify::EventKind::policy_reload_failed;
  event.error = error;
  publish(std::move(event));
}

bool flush(std::chrono::milliseconds timeout) {
  // Not under the lock: a flush waits. Only App installs and flushes, on one thread.
  notify::Notifier* notifier = nullptr;
  {
    std::lock_guard lock(mutex);
    notifier = current.get();
  }
  return notifier == nullptr || notifier->flush(timeout);
}

}  // namespace ocigate::server::notices
