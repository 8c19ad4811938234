#pragma once
// Everything a configuration file decides, loaded in one pass: the config, its policy, and the
// keys and certificates the policy's trust entries name. `serve`, `check`, `cache verify` and a
// SIGHUP reload all load through here, so they accept and refuse exactly the same files.

#include <chrono>
#include <memory>
#include <string>

#include "ocigate/common/result.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/policy/policy.hpp"
#include "ocigate/signature/trust.hpp"
#include "ocigate/vuln/database.hpp"

namespace ocigate::server {

// The vulnerability database a judgement reads (the `vulnerabilities` config section, loaded).
struct VulnerabilityData {
  bool configured = false;     // the config has a vulnerabilities section
  std::string directory;       // vulnerabilities.database
  std::chrono::seconds max_age{72 * 3600};
  std::shared_ptr<const vuln::Database> database;  // null: none loaded (the check says unknown)
  std::string error;           // why none is loaded, when configured
};

struct Settings {
  config::Config config;
  policy::Policy policy;
  signature::TrustStore trust;
  VulnerabilityData vulnerabilities;
};

// The configured database, loaded (blocking: seconds for osv.dev's full zips; never on an I/O
// thread once serving). An unusable one is not an error here: the data says why, the mirror
// starts without it and the check answers "unknown".
VulnerabilityData load_vulnerability_data(const config::Config& config);

// Reads the file at path once (the built-in default when path is empty), parses its policy and
// loads the trust entries' files, resolved from the config file's directory (the working
// directory for the built-in default), and with `with_database` the vulnerability database.
// Every error is Errc::config_invalid and names the file, line and key.
Result<Settings> load_settings(const std::string& path, bool with_database = true);
// The same for a config already read (a reload reads the file once for everything it re-reads).
Result<Settings> settings_from(config::Config config);

}  // namespace ocigate::server
