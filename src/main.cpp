// ocigate: a registry pull-through mirror with a policy gate. This file only reads the command line.

#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ocigate/config/config.hpp"
#include "ocigate/policy/policy.hpp"
#include "ocigate/server/app.hpp"
#include "ocigate/server/cache_verify.hpp"
#include "ocigate/server/check.hpp"
#include "ocigate/server/trust.hpp"

namespace {

constexpr const char* usage = R"(usage:
  ocigate serve [--config FILE]   run the mirror (built-in default config when no file is given)
  ocigate check [--config FILE] [--format table|json] [--platform OS/ARCH] <image>
                                  judge one image with the mirror's policy, straight from its upstream;
                                  exit 0 allowed (warnings printed), 1 blocked, 2 errors
  ocigate cache verify [--config FILE]
                                  rehash every cached blob and manifest, remove the bad ones;
                                  exit 0 clean, 1 bad entries found (and removed), 2 errors
                                  (also when a running server holds the cache)
  ocigate version                 print the version
  ocigate --help                  this text

exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error
)";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "ocigate: %s\n%s", message.c_str(), usage);
  return 2;
}

// Loads --config FILE (or the built-in default) and its policy; exit code 2 on failure.
int load(const std::string& config_path, ocigate::config::Config& config, ocigate::policy::Policy& policy,
         ocigate::signature::TrustStore& trust) {
  config = ocigate::config::defaults();
  if (!config_path.empty()) {
    auto loaded = ocigate::config::load_file(config_path);
    if (!loaded) {
      std::fprintf(stderr, "ocigate: invalid configuration: %s\n", loaded.error().message.c_str());
      return 2;
    }
    config = std::move(*loaded);
  }
  auto parsed = ocigate::policy::parse_policy(config.policy, config.source);
  if (!parsed) {
    std::fprintf(stderr, "ocigate: invalid configuration: %s\n", parsed.error().message.c_str());
    return 2;
  }
  policy = std::move(*parsed);
  auto keys = ocigate::server::load_trust(config, policy);
  if (!keys) {
    std::fprintf(stderr, "ocigate: invalid configuration: %s\n", keys.error().message.c_str());
    return 2;
  }
  trust = std::move(*keys);
  return 0;
}

int check(const std::vector<std::string>& args) {
  std::string config_path;
  ocigate::server::CheckOptions options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const bool has_value = i + 1 < args.size();
    if (args[i] == "--config" && has_value) {
      config_path = args[++i];
    } else if (args[i] == "--format" && has_value) {
      options.format = args[++i];
      if (options.format != "table" && options.format != "json") return usage_error("--format is table or json");
    } else if (args[i] == "--platform" && has_value) {
      auto platform = args[++i];
      auto slash = platform.find('/');
      if (slash == std::string::npos) return usage_error("--platform is OS/ARCH, e.g. linux/arm64");
      options.os = platform.substr(0, slash);
      options.architecture = platform.substr(slash + 1);
    } else if (!args[i].empty() && args[i][0] != '-' && options.reference.empty()) {
      options.reference = args[i];
    } else {
      return usage_error("unknown argument for check: " + args[i]);
    }
  }
  if (options.reference.empty()) return usage_error("check needs an image reference");
  ocigate::config::Config config;
  ocigate::policy::Policy policy;
  ocigate::signature::TrustStore trust;
  if (int code = load(config_path, config, policy, trust)) return code;
  return ocigate::server::check_image(config, std::move(policy), std::move(trust), options);
}

int cache_command(const std::vector<std::string>& args) {
  if (args.empty() || args.front() != "verify") return usage_error("cache needs a subcommand: verify");
  std::string config_path;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      config_path = args[++i];
    } else if (args[i].rfind("--config=", 0) == 0) {
      config_path = args[i].substr(9);
    } else {
      return usage_error("unknown argument for cache verify: " + args[i]);
    }
  }
  ocigate::config::Config config;
  ocigate::policy::Policy policy;
  ocigate::signature::TrustStore trust;
  if (int code = load(config_path, config, policy, trust)) return code;
  return ocigate::server::verify_cache(config);
}

// Chunk reads allocate 1 MiB buffers inside RocksDB for every read. With glibc's defaults those
// come from fresh mmap()s or a heap that is trimmed after each free, so every read page-faulted its
// buffer in again (a third of a warm stream's CPU). Reuse the memory instead: the retained heap is
// bounded by the buffers in flight at once.
void keep_large_buffers() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

int serve(const std::vector<std::string>& args) {
  std::string config_path;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      config_path = args[++i];
    } else if (args[i].rfind("--config=", 0) == 0) {
      config_path = args[i].substr(9);
    } else {
      return usage_error("unknown argument for serve: " + args[i]);
    }
  }
  ocigate::config::Config config;
  ocigate::policy::Policy policy;
  ocigate::signature::TrustStore trust;
  if (int code = load(config_path, config, policy, trust)) return code;
  keep_large_buffers();
  return ocigate::server::serve(config, std::move(policy), std::move(trust));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage_error("missing command");
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(usage, stdout);
    return 0;
  }
  if (command == "version" || command == "--version") {
    std::printf("ocigate %s\n", OCIGATE_VERSION);
    return 0;
  }
  if (command == "serve") return serve(args);
  if (command == "check") return check(args);
  if (command == "cache") return cache_command(args);
  return usage_error("unknown command: " + command);
}
