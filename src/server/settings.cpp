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

Result<Settings> load_settings(const std::string& path) {
  if (path.empty()) return settings_from(config::defaults());
  auto loaded = config::load_file(path);
  if (!loaded) return loaded.error();
  return settings_from(std::move(*loaded));
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
