#pragma once
// What a webhook is told: a gate decision that blocked or warned (the audit line's fields), an
// upstream that served bytes not matching their digest, or a policy reload that was refused.
// Plain fields only, so the server builds one without the notify module knowing its types.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ocigate::notify {

enum class EventKind : std::uint8_t { block, warn, digest_mismatch, policy_reload_failed };

// "block" | "warn" | "digest_mismatch" | "policy_reload_failed": the names in notify.webhooks[].events
// and in the X-Ocigate-Event header.
std::string_view kind_name(EventKind kind);
std::optional<EventKind> parse_kind(std::string_view name);

// Fields a kind does not use stay empty and are left out of its payload.
struct Event {
  EventKind kind = EventKind::block;
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
  std::string instance;   // server.instance: which replica saw it (every kind; left out when empty)
  // block, warn: as on the audit line.
  std::string client;     // who pulled (address, and user when authenticated)
  std::string image;      // "<upstream>/<repo>"
  std::string reference;  // tag or digest as pulled
  std::string digest;     // the manifest's digest; digest_mismatch: the digest that was asked for
  nlohmann::json violations = nlohmann::json::array();  // policy::Verdict::violations_json()
  std::string policy_version;
  // digest_mismatch: which upstream and repository served bytes whose digest was `actual`.
  std::string upstream;
  std::string repository;
  std::string actual;
  // policy_reload_failed: why the new policy was refused (the old one stays).
  std::string error;
  // Set by the notifier, per webhook: how many repeats of this event it held back since the last
  // one it sent (notify.webhooks[].repeat_window). 0: none, and left out of the payload.
  std::uint64_t repeats = 0;
};

}  // namespace ocigate::notify
