#pragma once
// `ocigate healthcheck [--config FILE] [--url URL] [--timeout DURATION]`: one GET of a running
// mirror's /healthz, for container HEALTHCHECKs and scripts that have no curl. Exit 0 on a 200,
// 1 on anything else (refused, timed out, another status), with one line on stderr saying which.

#include <chrono>
#include <string>

#include "ocigate/common/result.hpp"
#include "ocigate/config/config.hpp"

namespace ocigate::cli {

struct HealthTarget {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string path = "/healthz";
};

// "http[s]://host[:port][/path]"; IPv6 hosts in brackets. No credentials, no query.
Result<HealthTarget> parse_health_url(std::string_view url);
// Where a mirror running on this configuration answers on this host: its metrics listener when
// there is one (plain HTTP), else its main listener (https when server.tls is set); a wildcard
// address is replaced by loopback.
HealthTarget health_target(const config::Config& config);

// Returns the exit code: 0 healthy, 1 not. Over TLS the certificate is not verified: a liveness
// probe asks whether the process answers, and sends nothing secret.
int healthcheck(const HealthTarget& target, std::chrono::milliseconds timeout);

}  // namespace ocigate::cli
