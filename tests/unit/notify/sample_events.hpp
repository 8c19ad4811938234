#pragma once
// Events the notify tests send: a blocked pull as the gate reports it, and wrong bytes from an upstream.

#include <string>

#include "ocigate/notify/event.hpp"

namespace ocigate::notify::test {

inline Event blocked(std::string reference = "3.19") {
  Event event;
  event.kind = EventKind::block;
  event.client = "10.0.0.7";
  event.image = "docker.io/library/alpine";
  event.reference = std::move(reference);
  event.digest = "sha256:" + std::string(64, 'a');
  event.violations = nlohmann::json::array(
      {{{"check", "non-root-user"}, {"action", "block"}, {"message", "runs as root"}, {"remediation", "add USER"}}});
  event.policy_version = "pv-1";
  return event;
}

inline Event mismatch() {
  Event event;
  event.kind = EventKind::digest_mismatch;
  event.digest = "sha256:1";
  event.upstream = "up";
  event.repository = "r";
  event.actual = "sha256:2";
  return event;
}

}  // namespace ocigate::notify::test
