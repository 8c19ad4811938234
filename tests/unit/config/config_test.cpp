#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "ocigate/config/config.hpp"

namespace ocigate::config {
namespace {

using std::chrono::seconds;
namespace fs = std::filesystem;

// Raw strings below start with a newline so that line 1 is the first line written after R"(.
std::string yaml(std::string_view text) {
  if (!text.empty() && text.front() == '\n') text.remove_prefix(1);
  return std::string(text);
}

Config parsed(std::string_view text) {
  auto result = parse(yaml(text), "test.yaml");
  EXPECT_TRUE(result.ok()) << result.error().message;
  return result.ok() ? std::move(*result) : Config{};
}

// Refused with config_invalid and "test.yaml:<line>: <key>: ...<what>...".
::testing::AssertionResult refused(std::string_view text, int line, const std::string& key, std::string_view what) {
  auto result = parse(yaml(text), "test.yaml");
  if (result.ok()) return ::testing::AssertionFailure() << "accepted";
  const auto& message = result.error().message;
  if (result.error().code != Errc::config_invalid) return ::testing::AssertionFailure() << "wrong code: " << message;
  auto prefix = "test.yaml:" + std::to_string(line) + ": " + key + ": ";
  if (message.rfind(prefix, 0) != 0) {
    return ::testing::AssertionFailure() << "expected '" << prefix << "' in: " << message;
  }
  if (message.find(what) == std::string::npos) {
    return ::testing::AssertionFailure() << "expected '" << what << "' in: " << message;
  }
  return ::testing::AssertionSuccess() << message;
}

std::string with_upstream(std::string_view rest) {
  return "upstreams:\n  - name: docker.io\n    url: https://registry-1.docker.io\n" + yaml(rest);
}

std::string upstream_field(std::string_view field) {
  return "upstreams:\n  - name: up\n    url: http://127.0.0.1:5001\n    " + std::string(field) + "\n";
}

// A fresh directory per test, removed afterwards.
class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ocigate-config-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& content) {
    auto path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  fs::path dir_;
};

TEST(ConfigDefaults, ListenOnPort5000AndProxyDockerHub) {
  auto config = defaults();
  EXPECT_EQ(config.source, "<built-in default>");
  EXPECT_EQ(config.server.listen.host, "0.0.0.0");
  EXPECT_EQ(config.server.listen.port, 5000);
  EXPECT_FALSE(config.server.metrics_listen);
  ASSERT_EQ(config.upstreams.size(), 1u);
  const auto& hub = config.upstreams[0];
  EXPECT_EQ(hub.name, "docker.io");
  EXPECT_EQ(hub.url, "https://registry-1.docker.io");
  EXPECT_TRUE(hub.tls);
  EXPECT_EQ(hub.host, "registry-1.docker.io");
  EXPECT_EQ(hub.port, 443);
  EXPECT_EQ(hub.base_path, "");
  EXPECT_TRUE(hub.implicit_library);
  EXPECT_EQ(hub.tag_ttl, seconds(300));
  EXPECT_EQ(config.default_upstream, "docker.io");
  EXPECT_EQ(config.storage.path, "./ocigate-data");
  EXPECT_EQ(config.storage.max_size, 20ull << 30);
  EXPECT_EQ(config.storage.chunk_size, 1u << 20);
  EXPECT_FALSE(config.storage.verify_reads);
  EXPECT_EQ(config.log.level, "info");
  EXPECT_FALSE(config.policy);
  EXPECT_EQ(config.find_upstream("docker.io"), &config.upstreams[0]);
}

TEST(ConfigDefaults, MatchWhatAParsedHubUpstreamGives) {
  auto config = parsed(with_upstream(""));
  auto builtin = defaults();
  const auto& a = config.upstreams[0];
  const auto& b = builtin.upstreams[0];
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.port, b.port);
  EXPECT_EQ(a.tls, b.tls);
  EXPECT_EQ(a.base_path, b.base_path);
  EXPECT_EQ(a.implicit_library, b.implicit_library);
  EXPECT_EQ(config.default_upstream, builtin.default_upstream);
}

TEST(ConfigParse, FillsDefaultsAroundAMinimalFile) {
  auto config = parsed(R"(
upstreams:
  - name: localhost:5001
    url: http://127.0.0.1:5001
)");
  EXPECT_EQ(config.source, "test.yaml");
  EXPECT_EQ(config.server.listen.port, 5000);
  EXPECT_EQ(config.server.threads, 0u);
  EXPECT_FALSE(config.server.pin_threads);
  EXPECT_EQ(config.server.header_timeout, seconds(15));
  EXPECT_EQ(config.storage.path, "./ocigate-data");
  ASSERT_EQ(config.upstreams.size(), 1u);
  const auto& up = config.upstreams[0];
  EXPECT_FALSE(up.tls);
  EXPECT_EQ(up.host, "127.0.0.1");
  EXPECT_EQ(up.port, 5001);
  EXPECT_FALSE(up.implicit_library);
  EXPECT_EQ(up.connect_timeout, seconds(10));
  EXPECT_EQ(up.response_timeout, seconds(30));
  EXPECT_EQ(up.idle_timeout, seconds(60));
  EXPECT_EQ(up.max_connections, 32u);
  EXPECT_EQ(up.pull_ahead, 2u);
  EXPECT_EQ(config.default_upstream, "localhost:5001");  // the only upstream
  EXPECT_FALSE(config.policy);
}

TEST_F(ConfigFiles, ParsesEveryKeyOfAFullConfig) {
  auto password = write("hub.password", "s3cret\n");
  auto ca = write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  auto text = R"(
server:
  listen: "127.0.0.1:5000"
  metrics_listen: "127.0.0.1:9090"
  threads: 2
  max_header_bytes: 32KiB
  header_timeout: 20s
  idle_timeout: 2m
  shutdown_grace: 45s
  malformed_per_minute: 10
storage:
  path: /var/lib/ocigate
  max_size: 20GiB
  chunk_size: 4MiB
  verify_reads: true
upstreams:
  - name: docker.io
    url: https://registry-1.docker.io
    username: mirror
    password_file: )" + password + R"(
    ca_file: )" + ca + R"(
    tag_ttl: 1h30m
    connect_timeout: 5s
    response_timeout: 1m
    idle_timeout: 90s
    max_connections: 8
    pull_ahead: 0
  - name: ghcr.io
    url: https://ghcr.io/
    implicit_library: true
default_upstream: ghcr.io
log: { access_log: /var/log/ocigate/access.log, audit_log: "off", level: debug }
policy:
  rules:
    - deny: latest
)";
  auto config = parsed(text);
  EXPECT_EQ(config.server.listen.host, "127.0.0.1");
  EXPECT_EQ(config.server.listen.port, 5000);
  ASSERT_TRUE(config.server.metrics_listen);
  EXPECT_EQ(config.server.metrics_listen->port, 9090);
  EXPECT_EQ(config.server.threads, 2u);
  EXPECT_EQ(config.server.max_header_bytes, 32u << 10);
  EXPECT_EQ(config.server.header_timeout, seconds(20));
  EXPECT_EQ(config.server.idle_timeout, seconds(120));
  EXPECT_EQ(config.server.shutdown_grace, seconds(45));
  EXPECT_EQ(config.server.malformed_per_minute, 10u);
  EXPECT_EQ(config.storage.path, "/var/lib/ocigate");
  EXPECT_EQ(config.storage.max_size, 20ull << 30);
  EXPECT_EQ(config.storage.chunk_size, 4u << 20);
  EXPECT_TRUE(config.storage.verify_reads);
  ASSERT_EQ(config.upstreams.size(), 2u);
  const auto& hub = config.upstreams[0];
  EXPECT_EQ(hub.username, "mirror");
  EXPECT_EQ(hub.password, "s3cret");
  EXPECT_EQ(hub.password_file, password);
  EXPECT_EQ(hub.ca_file, ca);
  EXPECT_EQ(hub.tag_ttl, seconds(5400));
  EXPECT_EQ(hub.connect_timeout, seconds(5));
  EXPECT_EQ(hub.response_timeout, seconds(60));
  EXPECT_EQ(hub.idle_timeout, seconds(90));
  EXPECT_EQ(hub.max_connections, 8u);
  EXPECT_EQ(hub.pull_ahead, 0u);
  EXPECT_TRUE(hub.implicit_library);
  const auto& ghcr = config.upstreams[1];
  EXPECT_EQ(ghcr.url, "https://ghcr.io/");
  EXPECT_EQ(ghcr.host, "ghcr.io");
  EXPECT_EQ(ghcr.base_path, "");
  EXPECT_TRUE(ghcr.implicit_library);
  EXPECT_EQ(config.default_upstream, "ghcr.io");
  EXPECT_EQ(config.find_upstream("ghcr.io"), &config.upstreams[1]);
  EXPECT_EQ(config.find_upstream("quay.io"), nullptr);
  EXPECT_EQ(config.log.access_log, "/var/log/ocigate/access.log");
  EXPECT_EQ(config.log.audit_log, "off");
  EXPECT_EQ(config.log.level, "debug");
  ASSERT_TRUE(config.policy && config.policy->IsMap());
  EXPECT_EQ((*config.policy)["rules"][0]["deny"].Scalar(), "latest");
  EXPECT_EQ((*config.policy)["rules"].Mark().line + 1, 34);  // the policy module reports lines from these marks
}

TEST(ConfigParse, AcceptsJson) {
  auto config = parsed(R"({"server": {"listen": "127.0.0.1:41234", "threads": 2, "shutdown_grace": "5s"},
 "storage": {"path": "/tmp/x/cache", "max_size": "256MiB", "chunk_size": "64KiB"},
 "upstreams": [{"name": "up", "url": "http://127.0.0.1:5001", "tag_ttl": "1s", "implicit_library": false}],
 "log": {"access_log": "-", "level": "debug"},
 "policy": {}})");
  EXPECT_EQ(config.server.listen.port, 41234);
  EXPECT_EQ(config.server.threads, 2u);
  EXPECT_EQ(config.storage.chunk_size, 64u << 10);
  EXPECT_EQ(config.upstreams.at(0).tag_ttl, seconds(1));
  EXPECT_EQ(config.default_upstream, "up");
  EXPECT_TRUE(config.policy && config.policy->IsMap());
}

TEST(ConfigParse, ReportsJsonErrorsWithTheirLine) {
  EXPECT_TRUE(refused(R"({
  "upstreams": [{"name": "up", "url": "http://127.0.0.1:5001"}],
  "storage": {"max_size": "lots"}
})",
                      3, "storage.max_size", "bad size 'lots'"));
}

TEST(ConfigParse, AcceptsEmptySectionsAsDefaults) {
  auto config = parsed(with_upstream("server:\nstorage:\nlog:\npolicy:\n"));
  EXPECT_EQ(config.server.listen.port, 5000);
  EXPECT_EQ(config.log.level, "info");
  EXPECT_FALSE(config.policy);
}

TEST(ConfigParse, AcceptsIpv6Listeners) {
  auto config = parsed(with_upstream("server: { listen: \"[::1]:5000\", metrics_listen: \"[::]:0\" }\n"));
  EXPECT_EQ(config.server.listen.host, "::1");
  EXPECT_EQ(config.server.listen.port, 5000);
  EXPECT_EQ(config.server.metrics_listen->host, "::");
  EXPECT_EQ(config.server.metrics_listen->port, 0);
}

TEST(ConfigParse, AcceptsPortZeroForTests) {
  EXPECT_EQ(parsed(with_upstream("server: { listen: \"127.0.0.1:0\" }\n")).server.listen.port, 0);
}

TEST(ConfigParse, AcceptsTheLimitsOfEachRange) {
  auto config = parsed(with_upstream("server: { threads: 256 }\nstorage: { chunk_size: 64KiB, max_size: 64KiB }\n"));
  EXPECT_EQ(config.server.threads, 256u);
  EXPECT_EQ(config.storage.chunk_size, 64u << 10);
  EXPECT_EQ(parsed(with_upstream("storage: { chunk_size: 16MiB }\n")).storage.chunk_size, 16u << 20);
  EXPECT_EQ(parsed(with_upstream("server: { listen: \"0.0.0.0:65535\" }\n")).server.listen.port, 65535);
  EXPECT_EQ(parsed(with_upstream("storage: { max_size: 20 GiB }\n")).storage.max_size, 20ull << 30);
  EXPECT_EQ(parsed(with_upstream("storage: { max_size: 20GB }\n")).storage.max_size, 20000000000ull);
}

TEST(ConfigUrl, DefaultsThePortFromTheScheme) {
  auto config = parsed(R"(
upstreams:
  - { name: a.example, url: "https://a.example" }
  - { name: b.example, url: "http://b.example" }
  - { name: c.example, url: "https://c.example:8443/" }
  - { name: d.example, url: "HTTP://d.example:80" }
)");
  EXPECT_EQ(config.upstreams[0].port, 443);
  EXPECT_TRUE(config.upstreams[0].tls);
  EXPECT_EQ(config.upstreams[1].port, 80);
  EXPECT_FALSE(config.upstreams[1].tls);
  EXPECT_EQ(config.upstreams[2].port, 8443);
  EXPECT_EQ(config.upstreams[3].port, 80);
  EXPECT_FALSE(config.upstreams[3].tls);
}

TEST(ConfigUrl, KeepsThePathWithoutItsTrailingSlash) {
  auto config = parsed(R"(
upstreams:
  - { name: a.example, url: "https://a.example/" }
  - { name: b.example, url: "https://b.example/mirror/" }
  - { name: c.example, url: "https://c.example/a/b" }
  - { name: d.example, url: "https://d.example" }
)");
  EXPECT_EQ(config.upstreams[0].base_path, "");
  EXPECT_EQ(config.upstreams[1].base_path, "/mirror");
  EXPECT_EQ(config.upstreams[2].base_path, "/a/b");
  EXPECT_EQ(config.upstreams[3].base_path, "");
  EXPECT_EQ(config.default_upstream, "");  // several upstreams and none named
}

TEST(ConfigUrl, StripsBracketsFromIpv6Hosts) {
  auto config = parsed("upstreams:\n  - { name: local, url: \"http://[::1]:5001\" }\n");
  EXPECT_EQ(config.upstreams[0].host, "::1");
  EXPECT_EQ(config.upstreams[0].port, 5001);
}

TEST(ConfigUpstream, ImplicitLibraryDefaultsToTrueOnlyForDockerIo) {
  auto config = parsed(R"(
upstreams:
  - { name: docker.io, url: "https://registry-1.docker.io" }
  - { name: mirror.example, url: "https://mirror.example" }
  - { name: hub.example, url: "https://hub.example", implicit_library: yes }
  - { name: localhost, url: "http://localhost", implicit_library: False }
default_upstream: docker.io
)");
  EXPECT_TRUE(config.upstreams[0].implicit_library);
  EXPECT_FALSE(config.upstreams[1].implicit_library);
  EXPECT_TRUE(config.upstreams[2].implicit_library);
  EXPECT_FALSE(config.upstreams[3].implicit_library);
  auto hub_off = parsed(with_upstream("    implicit_library: false\n"));
  EXPECT_FALSE(hub_off.upstreams[0].implicit_library);
}

TEST(ConfigDefaultUpstream, IsEmptyWhenSeveralUpstreamsAndNoneNamed) {
  auto config = parsed(R"(
upstreams:
  - { name: a.example, url: "https://a.example" }
  - { name: b.example, url: "https://b.example" }
)");
  EXPECT_EQ(config.default_upstream, "");
}

TEST(ConfigDefaultUpstream, AnExplicitEmptyOneDisablesTheFallback) {
  EXPECT_EQ(parsed(with_upstream("default_upstream: \"\"\n")).default_upstream, "");
  EXPECT_EQ(parsed(with_upstream("default_upstream:\n")).default_upstream, "");
}

TEST(ConfigDefaultUpstream, RefusesAMissingUpstream) {
  EXPECT_TRUE(refused(with_upstream("default_upstream: quay.io\n"), 4, "default_upstream",
                      "names no configured upstream: 'quay.io'"));
}

TEST(ConfigInstance, DefaultsToTheHostNameAndTakesAName) {
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(parsed(with_upstream("")).server.instance, std::string(host).substr(0, 64));
  EXPECT_EQ(defaults().server.instance, std::string(host).substr(0, 64));
  EXPECT_EQ(parsed(with_upstream("server:\n  instance: mirror-2.eu_west\n")).server.instance, "mirror-2.eu_west");
}

TEST(ConfigInstance, RefusesANameThatCannotGoIntoAHeader) {
  const std::vector<std::string> bad = {"\"a b\"", "\"a:b\"", "\"\"", "\"x\\ny\"", "\"é\"", std::string(65, 'a')};
  for (const auto& name : bad) {
    EXPECT_TRUE(refused(with_upstream("server:\n  instance: " + name + "\n"), 5, "server.instance", "must be 1-64 of"))
        << name;
  }
}

TEST(ConfigRefusal, UnknownTopLevelKeySuggestsTheNearest) {
  EXPECT_TRUE(refused(with_upstream("sever:\n  listen: 1\n"), 4, "sever", "unknown key (did you mean server?)"));
}

TEST(ConfigRefusal, UnknownUpstreamKeyNamesItsIndex) {
  auto text = R"(
upstreams:
  - name: docker.io
    url: https://registry-1.docker.io
  - name: ghcr.io
    url: https://ghcr.io
    tagttl: 5m
)";
  EXPECT_TRUE(refused(text, 6, "upstreams[1].tagttl", "did you mean tag_ttl?"));
}

TEST(ConfigRefusal, UnknownKeyFarFromAnyKnownOneHasNoSuggestion) {
  auto message = parse(with_upstream("log:\n  colour: red\n"), "test.yaml").error().message;
  EXPECT_TRUE(refused(with_upstream("log:\n  colour: red\n"), 5, "log.colour", "unknown key"));
  EXPECT_EQ(message.find("did you mean"), std::string::npos) << message;
}

TEST(ConfigRefusal, SuggestsTheClosestOfSeveralCandidates) {
  // "idle_timeot" is 1 edit from idle_timeout and 2+ from the other timeouts.
  EXPECT_TRUE(refused(with_upstream("server:\n  idle_timeot: 1s\n"), 5, "server.idle_timeot",
                      "did you mean idle_timeout?"));
}

TEST(ConfigRefusal, DuplicateKey) {
  EXPECT_TRUE(refused(with_upstream("log:\n  level: info\n  level: debug\n"), 6, "log.level", "duplicate key"));
}

TEST(ConfigRefusal, ListWhereAMappingBelongs) {
  EXPECT_TRUE(refused(with_upstream("server:\n  - listen: 1\n"), 5, "server", "must be a mapping, not a list"));
  EXPECT_TRUE(refused(with_upstream("policy: [a, b]\n"), 4, "policy", "must be a mapping"));
}

TEST(ConfigRefusal, MappingWhereAValueBelongs) {
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: { host: a }\n"), 5, "server.listen", "must be a single value"));
  EXPECT_TRUE(refused(with_upstream("storage:\n  path: [a]\n"), 5, "storage.path", "not a list"));
}

TEST(ConfigRefusal, KeyWithoutAValue) {
  EXPECT_TRUE(refused(upstream_field("tag_ttl:"), 4, "upstreams[0].tag_ttl", "has no value"));
}

TEST(ConfigRefusal, EmptyValueIsReportedOnItsKeysLine) {
  EXPECT_TRUE(refused("upstreams:\n\n\nlog: {}\n", 1, "upstreams", "must be a non-empty list"));
  EXPECT_TRUE(refused(with_upstream("server:\n  listen:\n\n  threads: 1\n"), 5, "server.listen", "has no value"));
}

TEST(ConfigRefusal, UpstreamsThatAreNotAList) {
  EXPECT_TRUE(refused("upstreams:\n  docker.io: { url: x }\n", 2, "upstreams", "must be a non-empty list"));
  EXPECT_TRUE(refused("upstreams:\n  - docker.io\n", 2, "upstreams[0]", "must be a mapping"));
}

TEST(ConfigRefusal, NoUpstreams) {
  EXPECT_TRUE(refused("server:\n  threads: 1\n", 1, "upstreams", "at least one upstream is required"));
  EXPECT_TRUE(refused("log: {}\nupstreams: []\n", 2, "upstreams", "must be a non-empty list"));
}

TEST(ConfigRefusal, BadSizes) {
  EXPECT_TRUE(refused(with_upstream("storage:\n  max_size: lots\n"), 5, "storage.max_size", "bad size 'lots'"));
  EXPECT_TRUE(refused(with_upstream("storage:\n  max_size: -1GiB\n"), 5, "storage.max_size", "bad size"));
  EXPECT_TRUE(refused(with_upstream("storage:\n  max_size: 99999999999999999999\n"), 5, "storage.max_size",
                      "bad size"));
  EXPECT_TRUE(refused(with_upstream("server:\n  max_header_bytes: 16 KB B\n"), 5, "server.max_header_bytes",
                      "bad size"));
}

TEST(ConfigRefusal, ChunkSizeOutsideItsRange) {
  EXPECT_TRUE(refused(with_upstream("storage:\n  chunk_size: 32KiB\n"), 5, "storage.chunk_size",
                      "between 64KiB and 16MiB"));
  EXPECT_TRUE(refused(with_upstream("storage:\n  chunk_size: 17MiB\n"), 5, "storage.chunk_size",
                      "between 64KiB and 16MiB"));
}

TEST(ConfigRefusal, MaxSizeBelowOneChunk) {
  EXPECT_TRUE(refused(with_upstream("storage:\n  max_size: 100KiB\n  chunk_size: 1MiB\n"), 5, "storage.max_size",
                      "at least one chunk_size"));
}

TEST(ConfigRefusal, HeaderLimitOutsideItsRange) {
  EXPECT_TRUE(refused(with_upstream("server:\n  max_header_bytes: 100B\n"), 5, "server.max_header_bytes",
                      "between 1KiB and 1MiB"));
}

TEST(ConfigRefusal, BadDurations) {
  EXPECT_TRUE(refused(upstream_field("tag_ttl: 5"), 4, "upstreams[0].tag_ttl", "bad duration '5'"));
  EXPECT_TRUE(refused(upstream_field("tag_ttl: -1s"), 4, "upstreams[0].tag_ttl", "bad duration '-1s'"));
  EXPECT_TRUE(refused(upstream_field("tag_ttl: 5x"), 4, "upstreams[0].tag_ttl", "bad duration '5x'"));
  EXPECT_TRUE(refused(upstream_field("tag_ttl: \"\""), 4, "upstreams[0].tag_ttl", "bad duration ''"));
  EXPECT_TRUE(refused(with_upstream("server:\n  shutdown_grace: 1.5m\n"), 5, "server.shutdown_grace",
                      "bad duration"));
}

TEST(ConfigRefusal, ZeroTimeoutsThatWouldNeverFire) {
  EXPECT_TRUE(refused(upstream_field("connect_timeout: 0s"), 4, "upstreams[0].connect_timeout", "longer than 0s"));
  EXPECT_TRUE(refused(with_upstream("server:\n  header_timeout: 0m\n"), 5, "server.header_timeout",
                      "longer than 0s"));
}

TEST(ConfigDuration, AcceptsZeroWhereItMeansNow) {
  auto config =
      parsed("upstreams:\n  - { name: up, url: \"http://up\", tag_ttl: 0s }\nserver: { shutdown_grace: 0s }\n");
  EXPECT_EQ(config.upstreams[0].tag_ttl, seconds(0));
  EXPECT_EQ(config.server.shutdown_grace, seconds(0));
}

TEST(ConfigRefusal, ListenNotHostPort) {
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \"5000\"\n"), 5, "server.listen", "must be host:port"));
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: localhost\n"), 5, "server.listen", "must be host:port"));
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \":5000\"\n"), 5, "server.listen", "host is empty"));
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \"::1:5000\"\n"), 5, "server.listen", "in brackets"));
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \"[::1]5000\"\n"), 5, "server.listen", "[::1]:5000"));
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \"[::1\"\n"), 5, "server.listen", "[::1]:5000"));
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \"a b:5000\"\n"), 5, "server.listen", "bad host"));
}

TEST(ConfigRefusal, PortOutOfRange) {
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \"0.0.0.0:65536\"\n"), 5, "server.listen",
                      "port must be 0..65535, got '65536'"));
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \"0.0.0.0:\"\n"), 5, "server.listen", "port must be"));
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \"0.0.0.0:-1\"\n"), 5, "server.listen", "port must be"));
  EXPECT_TRUE(refused(with_upstream("server:\n  metrics_listen: \"[::1]:123456\"\n"), 5, "server.metrics_listen",
                      "port must be"));
}

TEST(ConfigRefusal, MetricsOnTheMainListenersPort) {
  EXPECT_TRUE(refused(with_upstream("server:\n  listen: \"0.0.0.0:5000\"\n  metrics_listen: \"127.0.0.1:5000\"\n"),
                      6, "server.metrics_listen", "port of server.listen"));
}

TEST(ConfigRefusal, UrlThatIsNotHttp) {
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: ftp://x.example\n", 3, "upstreams[0].url", "http or https"));
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: \"not a url\"\n", 3, "upstreams[0].url", "not a URL"));
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: registry.example\n", 3, "upstreams[0].url", "not a URL"));
}

TEST(ConfigRefusal, UrlWithQueryFragmentOrUserinfo) {
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: https://x.example/?a=b\n", 3, "upstreams[0].url", "query"));
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: https://x.example/#top\n", 3, "upstreams[0].url",
                      "fragment"));
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: https://bob:pw@x.example/\n", 3, "upstreams[0].url",
                      "username/password_file"));
}

TEST(ConfigRefusal, UrlWithoutHostOrWithABadPort) {
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: \"https://\"\n", 3, "upstreams[0].url", "no host"));
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: \"https:/path\"\n", 3, "upstreams[0].url", "no host"));
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: \"https://x:0\"\n", 3, "upstreams[0].url", "bad port"));
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: \"https://x:70000\"\n", 3, "upstreams[0].url",
                      "bad port"));
  EXPECT_TRUE(refused("upstreams:\n  - name: up\n    url: \"https://x:/\"\n", 3, "upstreams[0].url", "bad port"));
}

TEST(ConfigRefusal, UpstreamWithoutNameOrUrl) {
  EXPECT_TRUE(refused("upstreams:\n  - url: https://x.example\n", 2, "upstreams[0].name", "is required"));
  EXPECT_TRUE(refused("upstreams:\n  - name: x.example\n", 2, "upstreams[0].url", "is required"));
}

TEST(ConfigRefusal, DuplicateUpstreamNames) {
  auto text = R"(
upstreams:
  - name: ghcr.io
    url: https://ghcr.io
  - name: ghcr.io
    url: https://mirror.example
)";
  EXPECT_TRUE(refused(text, 4, "upstreams[1].name", "duplicate upstream ghcr.io"));
}

TEST(ConfigRefusal, UpstreamNamesThatCannotBeAPathPrefix) {
  for (auto name : {"Docker.io", "ghcr.io/team", "", "-a.example", "a..example", "a.example.", "a_b",
                    "host:0", "host:abc", "host:", "host:70000", "a-.example"}) {
    EXPECT_TRUE(refused("upstreams:\n  - url: https://x.example\n    name: \"" + std::string(name) + "\"\n", 3,
                        "upstreams[0].name", "registry host name"))
        << name;
  }
}

TEST(ConfigUpstream, AcceptsHostLikeNames) {
  for (auto name : {"docker.io", "localhost:5001", "registry-1.example.com", "10.0.0.1:443", "quay"}) {
    auto config = parsed("upstreams:\n  - url: https://x.example\n    name: \"" + std::string(name) + "\"\n");
    EXPECT_EQ(config.upstreams.at(0).name, name);
  }
}

TEST(ConfigParse, PinThreadsCanBeTurnedOff) {
  EXPECT_FALSE(parsed(with_upstream("server:\n  pin_threads: false\n")).server.pin_threads);
  EXPECT_TRUE(parsed(with_upstream("server:\n  pin_threads: yes\n")).server.pin_threads);
  EXPECT_TRUE(refused(with_upstream("server:\n  pin_threads: sometimes\n"), 5, "server.pin_threads",
                      "must be true or false"));
}

TEST(ConfigRefusal, ThreadsAboveTheLimit) {
  EXPECT_TRUE(refused(with_upstream("server:\n  threads: 257\n"), 5, "server.threads", "between 0 and 256"));
  EXPECT_TRUE(refused(with_upstream("server:\n  threads: -1\n"), 5, "server.threads", "whole number"));
  EXPECT_TRUE(refused(with_upstream("server:\n  threads: 2.5\n"), 5, "server.threads", "whole number"));
}

TEST(ConfigRefusal, NoPooledConnections) {
  EXPECT_TRUE(refused(upstream_field("max_connections: 0"), 4, "upstreams[0].max_connections", "between 1 and"));
}

TEST(ConfigRefusal, PullAheadBeyondSixteen) {
  EXPECT_TRUE(refused(upstream_field("pull_ahead: 17"), 4, "upstreams[0].pull_ahead", "between 0 and 16"));
  EXPECT_TRUE(refused(upstream_field("pull_ahead: -1"), 4, "upstreams[0].pull_ahead", "whole number"));
}

TEST(ConfigRefusal, NotABoolean) {
  EXPECT_TRUE(refused(upstream_field("implicit_library: maybe"), 4, "upstreams[0].implicit_library",
                      "true or false, got 'maybe'"));
}

TEST(ConfigRefusal, UnknownLogLevel) {
  EXPECT_TRUE(refused(with_upstream("log:\n  level: verbose\n"), 5, "log.level",
                      "must be debug, info, warn or error"));
  EXPECT_TRUE(refused(with_upstream("log:\n  level: INFO\n"), 5, "log.level", "must be debug"));
}

TEST(ConfigRefusal, EmptyLogDestination) {
  EXPECT_TRUE(refused(with_upstream("log:\n  access_log: \"\"\n"), 5, "log.access_log", "\"off\""));
}

TEST(ConfigRefusal, YamlSyntaxErrorWithItsLine) {
  auto text = R"(
upstreams:
  - name: up
    url: "http://x
server:
)";
  auto result = parse(yaml(text), "test.yaml");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::config_invalid);
  EXPECT_EQ(result.error().message.rfind("test.yaml:", 0), 0u) << result.error().message;

  auto bad_indent = parse("upstreams:\n  - name: up\n    url: http://x\n   bad: [1,\n", "test.yaml");
  ASSERT_FALSE(bad_indent.ok());
  EXPECT_EQ(bad_indent.error().message.rfind("test.yaml:4: ", 0), 0u) << bad_indent.error().message;

  auto unclosed = parse("log: {level: info\nupstreams: []\n", "test.yaml");
  ASSERT_FALSE(unclosed.ok());
  EXPECT_NE(unclosed.error().message.find("test.yaml:"), std::string::npos);
}

TEST(ConfigRefusal, EmptyFile) {
  for (auto text : {"", "   \n", "# only a comment\n", "---\n", "~\n"}) {
    auto result = parse(text, "test.yaml");
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ(result.error().code, Errc::config_invalid);
    EXPECT_EQ(result.error().message, "test.yaml:1: (top level): the file is empty");
  }
}

TEST(ConfigRefusal, FileThatIsNotAMapping) {
  EXPECT_TRUE(refused("- a\n- b\n", 1, "(top level)", "must be a mapping, not a list"));
  EXPECT_TRUE(refused("just words\n", 1, "(top level)", "must be a mapping"));
}

TEST(ConfigRefusal, SeveralDocuments) {
  EXPECT_TRUE(refused(with_upstream("---\nlog: {}\n"), 5, "(top level)", "more than one YAML document"));
  EXPECT_TRUE(refused(with_upstream("---\n\nlog: {}\n"), 6, "(top level)", "more than one YAML document"));
}

// Found by tests/fuzz/fuzz_config: yaml-cpp's LoadAll loops forever (and grows) on a stray ",".
TEST(ConfigRefusal, StrayCommaDocumentIsRefusedNotAHang) {
  for (std::string text : {std::string(","), std::string(",\n"), std::string(",\0\n", 3), std::string("---\n,\x01\n"),
                           std::string(" ,\x01"),
                           std::string(",erver:\n  listen: 127.0.0.1:5000\ndefault_upstream: docker.io\n")}) {
    auto result = parse(text, "test.yaml");
    EXPECT_FALSE(result.ok()) << text;
    if (!result.ok()) {
      EXPECT_EQ(result.error().code, Errc::config_invalid);
    }
  }
}

TEST_F(ConfigFiles, ReadsThePasswordAndStripsOneNewline) {
  auto lf = write("lf", "pa ss\n");
  auto crlf = write("crlf", "pa ss\r\n");
  auto two = write("two", "pa ss\n\n");
  auto none = write("none", "pa ss");
  auto text = "upstreams:\n"
              "  - { name: a.example, url: https://a.example, username: u, password_file: \"" + lf + "\" }\n"
              "  - { name: b.example, url: https://b.example, username: u, password_file: \"" + crlf + "\" }\n"
              "  - { name: c.example, url: https://c.example, username: u, password_file: \"" + two + "\" }\n"
              "  - { name: d.example, url: https://d.example, username: u, password_file: \"" + none + "\" }\n";
  auto config = parsed(text);
  ASSERT_EQ(config.upstreams.size(), 4u);
  EXPECT_EQ(config.upstreams[0].password, "pa ss");
  EXPECT_EQ(config.upstreams[1].password, "pa ss");
  EXPECT_EQ(config.upstreams[2].password, "pa ss\n");
  EXPECT_EQ(config.upstreams[3].password, "pa ss");
}

TEST_F(ConfigFiles, RefusesAnUnreadablePasswordFileNamingTheFile) {
  auto missing = (dir_ / "missing.password").string();
  EXPECT_TRUE(refused(upstream_field("username: u\n    password_file: " + missing), 5, "upstreams[0].password_file",
                      "cannot read " + missing + ": No such file or directory"));
  EXPECT_TRUE(refused(upstream_field("username: u\n    password_file: " + dir_.string()), 5,
                      "upstreams[0].password_file", "Is a directory"));
}

TEST_F(ConfigFiles, RefusesAnEmptyPasswordFile) {
  auto empty = write("empty", "\n");
  EXPECT_TRUE(refused(upstream_field("username: u\n    password_file: " + empty), 5, "upstreams[0].password_file",
                      empty + " is empty"));
}

TEST_F(ConfigFiles, RefusesAnEndlessPasswordFile) {
  EXPECT_TRUE(refused(upstream_field("username: u\n    password_file: /dev/zero"), 5, "upstreams[0].password_file",
                      "larger than"));
}

TEST_F(ConfigFiles, NeverPutsThePasswordInAMessage) {
  auto password = write("pw", "hunter2-very-secret\n");
  auto text = "upstreams:\n  - { name: up, url: \"http://up\", username: u, password_file: \"" + password +
              "\", tag_ttl: soon }\n";
  auto result = parse(text, "test.yaml");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message.find("hunter2"), std::string::npos) << result.error().message;
}

TEST(ConfigRefusal, UsernameAndPasswordFileComeTogether) {
  EXPECT_TRUE(refused(upstream_field("username: bot"), 4, "upstreams[0].password_file", "required with username"));
  EXPECT_TRUE(refused(upstream_field("password_file: /etc/hostname"), 4, "upstreams[0].username",
                      "required with password_file"));
}

TEST_F(ConfigFiles, RefusesAnUnreadableCaFile) {
  auto missing = (dir_ / "ca.pem").string();
  EXPECT_TRUE(refused(upstream_field("ca_file: " + missing), 4, "upstreams[0].ca_file", "cannot read " + missing));
}

TEST_F(ConfigFiles, LoadFileNamesTheFileInMessages) {
  auto path = write("ocigate.yaml", with_upstream("storage:\n  chunk_size: 1KiB\n"));
  auto result = load_file(path);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::config_invalid);
  EXPECT_EQ(result.error().message.rfind(path + ":5: storage.chunk_size: ", 0), 0u) << result.error().message;
}

TEST_F(ConfigFiles, LoadFileReadsAValidFile) {
  auto path = write("ocigate.yaml", with_upstream("server:\n  listen: \"127.0.0.1:5555\"\n"));
  auto result = load_file(path);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->source, path);
  EXPECT_EQ(result->server.listen.port, 5555);
}

TEST_F(ConfigFiles, LoadFileRefusesAMissingFile) {
  auto path = (dir_ / "nope.yaml").string();
  auto result = load_file(path);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::config_invalid);
  EXPECT_EQ(result.error().message, path + ": cannot read: No such file or directory");
}

TEST_F(ConfigFiles, LoadFileRefusesADirectory) {
  auto result = load_file(dir_.string());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message, dir_.string() + ": cannot read: Is a directory");
}

TEST(ConfigRefusal, DeepNestingIsAnErrorNotACrash) {
  std::string deep = with_upstream("policy: ") + std::string(20000, '[') + std::string(20000, ']') + "\n";
  auto result = parse(deep, "test.yaml");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::config_invalid);
}

}  // namespace
}  // namespace ocigate::config

namespace ocigate::config {
namespace {

TEST(ConfigExample, TheShippedExampleLoadsAndMatchesTheDefaults) {
  auto loaded = load_file(OCIGATE_EXAMPLE_CONFIG);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  auto builtin = defaults();
  EXPECT_EQ(loaded->server.listen.host, builtin.server.listen.host);
  EXPECT_EQ(loaded->server.listen.port, builtin.server.listen.port);
  EXPECT_EQ(loaded->server.threads, builtin.server.threads);
  EXPECT_EQ(loaded->server.max_header_bytes, builtin.server.max_header_bytes);
  EXPECT_EQ(loaded->server.header_timeout, builtin.server.header_timeout);
  EXPECT_EQ(loaded->server.idle_timeout, builtin.server.idle_timeout);
  EXPECT_EQ(loaded->server.shutdown_grace, builtin.server.shutdown_grace);
  EXPECT_EQ(loaded->server.malformed_per_minute, builtin.server.malformed_per_minute);
  EXPECT_EQ(loaded->storage.path, builtin.storage.path);
  EXPECT_EQ(loaded->storage.max_size, builtin.storage.max_size);
  EXPECT_EQ(loaded->storage.chunk_size, builtin.storage.chunk_size);
  ASSERT_EQ(loaded->upstreams.size(), 1u);
  const auto& a = loaded->upstreams[0];
  const auto& b = builtin.upstreams[0];
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.url, b.url);
  EXPECT_EQ(a.tag_ttl, b.tag_ttl);
  EXPECT_EQ(a.connect_timeout, b.connect_timeout);
  EXPECT_EQ(a.response_timeout, b.response_timeout);
  EXPECT_EQ(a.idle_timeout, b.idle_timeout);
  EXPECT_EQ(a.max_connections, b.max_connections);
  EXPECT_EQ(a.implicit_library, b.implicit_library);
  EXPECT_EQ(loaded->default_upstream, builtin.default_upstream);
  EXPECT_EQ(loaded->log.access_log, builtin.log.access_log);
  EXPECT_EQ(loaded->log.level, builtin.log.level);
}

}  // namespace
}  // namespace ocigate::config
