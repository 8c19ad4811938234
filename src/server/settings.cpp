#include "ocigate/server/settings.hpp"

#include <filesystem>

namespace ocigate::server {

namespace {

// Where relative trust paths are resolved from.
std::filesystem::path base_dir(const config::Config& config) {
  if (config.source.empty() || config.source.front() == '<') return std::filesystem::current_path();
  return std::filesystem::absolute(config.source).parent_path();
}

}  // namespace

VulnerabilityData load_vulnerability_data(const config::Config& config) {
  VulnerabilityData data;
  if (!config.vulnerabilities) return data;
  data.configured = true;
  data.directory = config.vulnerabilities->database;
  data.max_age = config.vulnerabilities->max_age;
  auto loaded = vuln::load(data.directory);
  if (loaded) {
    data.database = std::move(*loaded);
  } else {
    data.error = loaded.error().message;
  }
  return data;
}

Result<Settings> load_settings(const std::string& path, bool with_database) {
  auto settings = path.empty() ? settings_from(config::defaults()) : [&]() -> Result<Settings> {
    auto loaded = config::load_file(path);
    if (!loaded) return loaded.error();
    return settings_from(std::move(*loaded));
  }();
  if (settings && with_database) settings->vulnerabilities = load_vulnerability_data(settings->config);
  return settings;
}

Result<Settings> settings_from(config::Config config) {
  Settings settings;
  settings.config = std::move(config);
  auto policy = policy::parse_policy(settings.config.policy.get(), settings.config.source);
  if (!policy) return policy.error();
  settings.policy = std::move(*policy);
  auto trust = signature::load_trust(settings.policy, base_dir(settings.config));
  if (!trust) return trust.error();
  settings.trust = std::move(*trust);
  return settings;
}

}  // namespace ocigate::server
