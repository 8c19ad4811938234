// ocigate: a registry pull-through mirror with a policy gate. This file only reads the command line.

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ocigate/config/config.hpp"
#include "ocigate/server/app.hpp"

namespace {

constexpr const char* usage = R"(usage:
  ocigate serve [--config FILE]   run the mirror (built-in default config when no file is given)
  ocigate version                 print the version
  ocigate --help                  this text

exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error
)";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "ocigate: %s\n%s", message.c_str(), usage);
  return 2;
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
  ocigate::config::Config config = ocigate::config::defaults();
  if (!config_path.empty()) {
    auto loaded = ocigate::config::load_file(config_path);
    if (!loaded) {
      std::fprintf(stderr, "ocigate: invalid configuration: %s\n", loaded.error().message.c_str());
      return 2;
    }
    config = std::move(*loaded);
  }
  return ocigate::server::serve(config);
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
  return usage_error("unknown command: " + command);
}
