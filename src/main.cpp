// ocigate: a registry pull-through mirror with a policy gate. This file only reads the command line.

#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ocigate/common/time.hpp"
#include "ocigate/config/config.hpp"
#include "ocigate/server/app.hpp"
#include "ocigate/cli/cache_verify.hpp"
#include "ocigate/cli/check.hpp"
#include "ocigate/cli/healthcheck.hpp"
#include "ocigate/server/settings.hpp"

namespace {

// One usage text per subcommand; `ocigate --help` prints them all, `ocigate <command> --help` its own.
constexpr const char* serve_usage = R"(  ocigate serve [--config FILE]   run the mirror (built-in default config when no file is given)
)";
constexpr const char* check_usage = R"(  ocigate check [--config FILE] [--format table|json] [--platform OS/ARCH] <image>
                                  judge one image with the mirror's policy, straight from its upstream;
                                  exit 0 allowed (warnings printed), 1 blocked, 2 errors
)";
constexpr const char* cache_usage = R"(  ocigate cache verify [--config FILE]
                                  rehash every cached blob and manifest, remove the bad ones;
                                  exit 0 clean, 1 bad entries found (and removed), 2 errors
                                  (also when a running server holds the cache)
)";
constexpr const char* healthcheck_usage = R"(  ocigate healthcheck [--config FILE | --url URL] [--timeout DURATION]
                                  GET a running mirror's /healthz (default http://127.0.0.1:5000/healthz;
                                  with --config, its listener); exit 0 on 200, 1 otherwise; timeout 5s
)";
constexpr const char* version_usage = R"(  ocigate version                 print the version
)";
constexpr const char* exit_codes = "\nexit codes: 0 ok, 1 runtime failure, 2 usage or configuration error\n";

std::string full_usage() {
  return std::string("usage:\n") + serve_usage + check_usage + cache_usage + healthcheck_usage + version_usage +
         "  ocigate --help                  this text (also: ocigate <command> --help)\n" + exit_codes;
}

bool asks_for_help(const std::vector<std::string>& args) {
  for (const auto& arg : args) {
    if (arg == "--help" || arg == "-h") return true;
  }
  return false;
}

int print_usage(const char* text) {
  std::printf("usage:\n%s%s", text, exit_codes);
  return 0;
}

int usage_error(const std::string& message, const char* text = nullptr) {
  const std::string usage = text ? std::string("usage:\n") + text : full_usage();
  std::fprintf(stderr, "ocigate: %s\n%s", message.c_str(), usage.c_str());
  return 2;
}

// Loads --config FILE (or the built-in default), its policy and trust; nullopt (after saying why) on failure.
std::optional<ocigate::server::Settings> load(const std::string& config_path) {
  auto settings = ocigate::server::load_settings(config_path);
  if (!settings) {
    std::fprintf(stderr, "ocigate: invalid configuration: %s\n", settings.error().message.c_str());
    return std::nullopt;
  }
  return std::move(*settings);
}

// Reads "--name VALUE" or "--name=VALUE" at args[i] (advancing i past a separate value). Returns
// false when args[i] is not that option; a missing value is a usage error in `error`.
bool option(const std::vector<std::string>& args, std::size_t& i, const std::string& name, std::string& value,
            std::string& error) {
  if (args[i].rfind(name + "=", 0) == 0) {
    value = args[i].substr(name.size() + 1);
    return true;
  }
  if (args[i] != name) return false;
  if (i + 1 >= args.size()) {
    error = name + " needs a value";
    return true;
  }
  value = args[++i];
  return true;
}

int check(const std::vector<std::string>& args) {
  if (asks_for_help(args)) return print_usage(check_usage);
  std::string config_path, format, platform, error;
  ocigate::cli::CheckOptions options;
  for (std::size_t i = 0; i < args.size() && error.empty(); ++i) {
    if (option(args, i, "--config", config_path, error)) continue;
    if (option(args, i, "--format", format, error)) {
      if (error.empty() && format != "table" && format != "json") error = "--format is table or json";
      options.format = format;
      continue;
    }
    if (option(args, i, "--platform", platform, error)) {
      auto slash = platform.find('/');
      if (error.empty() && (slash == std::string::npos || slash == 0 || slash + 1 == platform.size())) {
        error = "--platform is OS/ARCH, e.g. linux/arm64";
      } else if (error.empty()) {
        options.os = platform.substr(0, slash);
        options.architecture = platform.substr(slash + 1);
      }
      continue;
    }
    if (!args[i].empty() && args[i][0] != '-' && options.reference.empty()) {
      options.reference = args[i];
    } else {
      error = "unknown argument for check: " + args[i];
    }
  }
  if (error.empty() && options.reference.empty()) error = "check needs an image reference";
  if (!error.empty()) return usage_error(error, check_usage);
  auto settings = load(config_path);
  if (!settings) return 2;
  return ocigate::cli::check_image(std::move(*settings), options);
}

// Reads the only option serve and cache verify take: --config FILE. Returns a usage error or "".
std::string config_option(const std::vector<std::string>& args, std::size_t first, const std::string& command,
                          std::string& config_path) {
  std::string error;
  for (std::size_t i = first; i < args.size() && error.empty(); ++i) {
    if (!option(args, i, "--config", config_path, error)) error = "unknown argument for " + command + ": " + args[i];
  }
  return error;
}

int cache_command(const std::vector<std::string>& args) {
  if (asks_for_help(args)) return print_usage(cache_usage);
  if (args.empty() || args.front() != "verify") return usage_error("cache needs a subcommand: verify", cache_usage);
  std::string config_path;
  if (auto error = config_option(args, 1, "cache verify", config_path); !error.empty()) {
    return usage_error(error, cache_usage);
  }
  auto settings = load(config_path);
  if (!settings) return 2;
  return ocigate::cli::verify_cache(settings->config);
}

int healthcheck(const std::vector<std::string>& args) {
  if (asks_for_help(args)) return print_usage(healthcheck_usage);
  std::string config_path, url, timeout_text, error;
  for (std::size_t i = 0; i < args.size() && error.empty(); ++i) {
    if (option(args, i, "--config", config_path, error) || option(args, i, "--url", url, error) ||
        option(args, i, "--timeout", timeout_text, error)) {
      continue;
    }
    error = "unknown argument for healthcheck: " + args[i];
  }
  if (error.empty() && !url.empty() && !config_path.empty()) error = "give --config or --url, not both";
  std::chrono::milliseconds timeout{5000};
  if (error.empty() && !timeout_text.empty()) {
    auto parsed = ocigate::parse_duration(timeout_text);
    if (!parsed || parsed->count() <= 0) error = "--timeout is a duration such as 5s";
    else timeout = *parsed;
  }
  if (!error.empty()) return usage_error(error, healthcheck_usage);
  ocigate::cli::HealthTarget target{false, "127.0.0.1", 5000, "/healthz"};
  if (!url.empty()) {
    auto parsed = ocigate::cli::parse_health_url(url);
    if (!parsed) return usage_error(parsed.error().message, healthcheck_usage);
    target = *parsed;
  } else if (!config_path.empty()) {
    auto loaded = ocigate::config::load_file(config_path);
    if (!loaded) {
      std::fprintf(stderr, "ocigate: invalid configuration: %s\n", loaded.error().message.c_str());
      return 2;
    }
    target = ocigate::cli::health_target(*loaded);
  }
  return ocigate::cli::healthcheck(target, timeout);
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
  if (asks_for_help(args)) return print_usage(serve_usage);
  std::string config_path;
  if (auto error = config_option(args, 0, "serve", config_path); !error.empty()) return usage_error(error, serve_usage);
  auto settings = load(config_path);
  if (!settings) return 2;
  keep_large_buffers();
  return ocigate::server::serve(std::move(*settings));
}

int version(const std::vector<std::string>& args) {
  if (asks_for_help(args)) return print_usage(version_usage);
  if (!args.empty()) return usage_error("version takes no arguments", version_usage);
  std::printf("ocigate %s\n", OCIGATE_VERSION);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage_error("missing command");
  std::string command = args.front();
  args.erase(args.begin());
  if (command == "help" && !args.empty()) {  // "ocigate help check" is "ocigate check --help"
    command = args.front();
    args = {"--help"};
  }
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(full_usage().c_str(), stdout);
    return 0;
  }
  if (command == "version" || command == "--version") return version(args);
  if (command == "serve") return serve(args);
  if (command == "check") return check(args);
  if (command == "cache") return cache_command(args);
  if (command == "healthcheck") return healthcheck(args);
  return usage_error("unknown command: " + command);
}
