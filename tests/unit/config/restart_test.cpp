// restart_only_changes: what a SIGHUP leaves for a restart, told apart from what it applies and
// from edits that change nothing.
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ocigate/config/config.hpp"
#include "support.hpp"

namespace ocigate::config {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const char* running_text = R"(
server:
  listen: 127.0.0.1:5000
  requests_per_second: 50
  trusted_proxies: [10.0.0.1]
upstreams:
  - { name: docker.io, url: "https://registry-1.docker.io", max_concurrent_fetches: 8 }
storage: { path: /var/lib/ocigate, max_size: 20GiB }
policy: { mode: audit }
notify:
  webhooks:
    - { url: "https://hooks.example.com/a", events: [block] }
)";

Config parsed(const std::string& text) {
  auto result = parse(text, "test.yaml");
  EXPECT_TRUE(result.ok()) << result.error().message;
  return result.ok() ? std::move(*result) : Config{};
}

std::vector<std::string> changes(const std::string& next) { return restart_only_changes(parsed(running_text), parsed(next)); }

TEST(RestartOnlyChanges, NoneForTheSameFileOrOneOnlyLaidOutAnew) {
  EXPECT_THAT(changes(running_text), IsEmpty());
  EXPECT_THAT(changes(R"(
# the same settings, reordered, in block style, with comments
storage:
  max_size: 20GiB
  path: /var/lib/ocigate
upstreams:
  - url: "https://registry-1.docker.io"
    max_concurrent_fetches: 8
    name: docker.io
server: { trusted_proxies: [10.0.0.1], requests_per_second: 50, listen: 127.0.0.1:5000 }
notify: { webhooks: [{ url: "https://hooks.example.com/a", events: [block] }] }
policy: { mode: audit }
)"),
              IsEmpty());
}

TEST(RestartOnlyChanges, NoneForWhatAReloadApplies) {
  EXPECT_THAT(changes(R"(
server:
  listen: 127.0.0.1:5000
  requests_per_second: 50
  trusted_proxies: [10.0.0.1, 10.0.0.2]
upstreams:
  - { name: docker.io, url: "https://registry-1.docker.io", max_concurrent_fetches: 8 }
storage: { path: /var/lib/ocigate, max_size: 20GiB }
policy: { mode: enforce }
vulnerabilities: { database: /var/lib/osv }
)"),
              IsEmpty());
}

TEST(RestartOnlyChanges, NamesEachChangedSettingAReloadLeaves) {
  EXPECT_THAT(changes(R"(
server:
  listen: 127.0.0.1:5000
  requests_per_second: 100
  max_connections_per_client: 10
  trusted_proxies: [10.0.0.1]
upstreams:
  - { name: docker.io, url: "https://registry-1.docker.io", max_concurrent_fetches: 16 }
storage: { path: /var/lib/ocigate }
log: { level: debug }
policy: { mode: audit }
)"),
              ElementsAre("log.level", "server.max_connections_per_client", "server.requests_per_second", "storage.max_size",
                          "upstreams"));
}

// The built-in default has no file: a first file's settings all count.
TEST(RestartOnlyChanges, AgainstTheBuiltInDefaultEveryWrittenSettingCounts) {
  const std::string first = "server: { listen: 127.0.0.1:6000 }\nupstreams: [{ name: a, url: 'https://a.example' }]\n";
  EXPECT_THAT(restart_only_changes(defaults(), parsed(first)), ElementsAre("server.listen", "upstreams"));
}

// A password is read from its file when the file is loaded: a rotated one at the same path is not in
// force until a restart, and is named as such (never its value).
TEST(RestartOnlyChanges, NamesAnUpstreamPasswordRotatedInTheSameFile) {
  test::TempDir dir;
  const std::string file = dir.path() + "/hub.password";
  const std::string text = "upstreams:\n  - { name: docker.io, url: 'https://registry-1.docker.io', username: robot, "
                           "password_file: " + file + " }\n";
  std::ofstream(file) << "first\n";
  const Config running = parsed(text);
  std::ofstream(file) << "first\n";
  EXPECT_THAT(restart_only_changes(running, parsed(text)), IsEmpty());
  std::ofstream(file) << "rotated\n";
  EXPECT_THAT(restart_only_changes(running, parsed(text)), ElementsAre("upstreams.docker.io.password_file"));
}

}  // namespace
}  // namespace ocigate::config
