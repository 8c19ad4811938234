#pragma once
// Everything a configuration file decides, loaded in one pass: the config, its policy, and the
// keys and certificates the policy's trust entries name. `serve`, `check`, `cache verify` and a
// SIGHUP reload all load through here, so they accept and refuse exactly the same files.

#include <string>

#include "ocigate/common/result.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/policy/policy.hpp"
#include "ocigate/signature/trust.hpp"

namespace ocigate::server {

struct Settings {
  config::Config config;
  policy::Policy policy;
  signature::TrustStore trust;
};

// Reads the file at path once (the built-in default when path is empty), parses its policy and
// loads the trust entries' files, resolved from the config file's directory (the working
// directory for the built-in default). Every error is Errc::config_invalid and names the file,
// line and key.
Result<Settings> load_settings(const std::string& path);
// The same for a config already read (a reload reads the file once for everything it re-reads).
Result<Settings> settings_from(config::Config config);

}  // namespace ocigate::server
