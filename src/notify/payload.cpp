#include "ocigate/notify/payload.hpp"

#include <cstdio>
#include <ctime>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "json_text.hpp"
#include "ocigate/common/timestamp.hpp"

namespace ocigate::notify {

namespace {

using detail::text_field;

constexpr std::size_t slack_max_violations = 10;
constexpr std::size_t slack_max_field = 500;  // characters of one message or remediation

std::string dump(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Slack mrkdwn treats these three as control characters; everything else is literal.
std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else out += c;
  }
  return out;
}

// Cut at a UTF-8 character boundary so the message stays valid text.
std::string cut(std::string text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) --end;
  text.resize(end);
  return text + "…";
}

// "docker.io/library/alpine:3.19" or "...@sha256:..." as a person would write the pull.
std::string pulled(const Event& event) {
  if (event.reference.empty()) return event.image;
  const bool by_digest = event.reference.find(':') != std::string::npos;
  return event.image + (by_digest ? "@" : ":") + event.reference;
}

std::string violation_lines(const nlohmann::json& violations) {
  if (!violations.is_array()) return {};
  std::string out;
  std::size_t shown = 0;
  for (const auto& violation : violations) {
    if (shown == slack_max_violations) {
      out += "\n• and " + std::to_string(violations.size() - shown) + " more";
      break;
    }
    out += "\n• `" + escape(text_field(violation, "check")) + "` (" + escape(text_field(violation, "action")) +
           "): " + escape(cut(text_field(violation, "message"), slack_max_field));
    if (auto fix = text_field(violation, "remediation"); !fix.empty()) {
      out += "\n    _Fix:_ " + escape(cut(fix, slack_max_field));
    }
    ++shown;
  }
  return out;
}

// " (on instance `a`)" when the event names the replica that saw it.
std::string on_instance(const Event& event) {
  return event.instance.empty() ? std::string() : " (on instance `" + escape(event.instance) + "`)";
}

std::string slack_text(const Event& event) {
  switch (event.kind) {
    case EventKind::block:
    case EventKind::warn: {
      const bool block = event.kind == EventKind::block;
      std::string text = std::string(block ? ":no_entry: *ocigate blocked* `" : ":warning: *ocigate warned about* `") +
                         escape(pulled(event)) + "`";
      if (!event.client.empty()) text += " for " + escape(event.client);
      text += on_instance(event);
      if (!event.digest.empty()) text += "\ndigest " + escape(event.digest);
      text += violation_lines(event.violations);
      if (!event.policy_version.empty()) text += "\npolicy version " + escape(event.policy_version);
      return text;
    }
    case EventKind::digest_mismatch:
      return ":rotating_light: *ocigate: upstream " + escape(event.upstream) + " served wrong bytes* for `" +
             escape(event.repository) + "`: asked for " + escape(event.digest) + ", got " + escape(event.actual) +
             " (the bytes were discarded)" + on_instance(event);
    case EventKind::policy_reload_failed:
      return ":x: *ocigate refused a policy reload*" + on_instance(event) + "; the previous policy stays in force: " +
             escape(cut(event.error, 2000));
  }
  return {};
}

}  // namespace

std::string_view kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::block: return "block";
    case EventKind::warn: return "warn";
    case EventKind::digest_mismatch: return "digest_mismatch";
    case EventKind::policy_reload_failed: return "policy_reload_failed";
  }
  return "block";
}

std::optional<EventKind> parse_kind(std::string_view name) {
  for (auto kind : {EventKind::block, EventKind::warn, EventKind::digest_mismatch, EventKind::policy_reload_failed}) {
    if (kind_name(kind) == name) return kind;
  }
  return std::nullopt;
}

std::string json_body(const Event& event) {
  nlohmann::json out = {{"event", kind_name(event.kind)}, {"time", iso8601_millis(event.time)}};
  if (!event.instance.empty()) out["instance"] = event.instance;
  switch (event.kind) {
    case EventKind::block:
    case EventKind::warn:
      out["client"] = event.client;
      out["image"] = event.image;
      out["reference"] = event.reference;
      out["digest"] = event.digest;
      out["verdict"] = kind_name(event.kind);
      out["violations"] = event.violations.is_array() ? event.violations : nlohmann::json::array();
      out["policy_version"] = event.policy_version;
      break;
    case EventKind::digest_mismatch:
      out["upstream"] = event.upstream;
      out["repository"] = event.repository;
      out["digest"] = event.digest;
      out["actual"] = event.actual;
      break;
    case EventKind::policy_reload_failed:
      out["error"] = event.error;
      break;
  }
  if (event.repeats > 0) out["repeats"] = event.repeats;
  return dump(out);
}

std::string slack_body(const Event& event) {
  std::string text = slack_text(event);
  if (event.repeats > 0) {
    text += "\n_" + std::to_string(event.repeats) + " more like this since the last message_";
  }
  return dump({{"text", text}});
}

std::string body(const Event& event, config::WebhookFormat format) {
  return format == config::WebhookFormat::slack ? slack_body(event) : json_body(event);
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // An empty key is valid HMAC input; OpenSSL wants a non-null pointer for it.
  static const unsigned char empty = 0;
  const void* key_bytes = key.empty() ? static_cast<const void*>(&empty) : key.data();
  if (!HMAC(EVP_sha256(), key_bytes, static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), mac, &length)) {
    return {};
  }
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex += digits[mac[i] >> 4];
    hex += digits[mac[i] & 0x0f];
  }
  return hex;
}

std::string signature(std::string_view secret, std::string_view body) {
  return "sha256=" + hmac_sha256_hex(secret, body);
}

}  // namespace ocigate::notify
