#pragma once
// The bytes a webhook receives and their signature. Pure functions: event in, text out.

#include <string>
#include <string_view>

#include "ocigate/config/config.hpp"
#include "ocigate/notify/event.hpp"

namespace ocigate::notify {

// One JSON object: "event" (the kind), "time" (UTC, ISO 8601 with milliseconds, as the audit log
// writes it), "instance" (server.instance, when set), then the kind's fields:
//   block, warn:          client, image, reference, digest, verdict, violations, policy_version
//   digest_mismatch:      upstream, repository, digest, actual
//   policy_reload_failed: error
// and "repeats" (events like this one held back since the last one sent) when there were any.
// Invalid UTF-8 in a field is replaced (U+FFFD), never a reason to lose the event.
std::string json_body(const Event& event);

// {"text": "..."}: a message a person reads in Slack (or a Slack-compatible incoming webhook):
// what happened, to which image, on which instance, the violations with their remediation (at most 10, then "and N
// more"), escaped for Slack's mrkdwn (&, <, >).
std::string slack_body(const Event& event);

std::string body(const Event& event, config::WebhookFormat format);

// Lowercase hex HMAC-SHA256 of data under key.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// The X-Ocigate-Signature value for body: "sha256=<hex HMAC-SHA256 of the exact body under secret>",
// as GitHub's X-Hub-Signature-256.
std::string signature(std::string_view secret, std::string_view body);

}  // namespace ocigate::notify
