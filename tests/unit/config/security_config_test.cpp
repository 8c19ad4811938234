// server.tls, the abuse limits, upstreams[].max_concurrent_fetches and the auth section.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "ocigate/config/config.hpp"

namespace ocigate::config {
namespace {

namespace fs = std::filesystem;

std::string temp_file(const std::string& name, const std::string& content) {
  auto path = fs::temp_directory_path() / ("ocigate-security-test-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(path) << content;
  return path.string();
}

std::string upstream() { return "upstreams:\n  - name: docker.io\n    url: https://registry-1.docker.io\n"; }

Result<Config> parse_text(const std::string& text) { return parse(text, "test.yaml"); }

void expect_refused(const std::string& text, const std::string& prefix, const std::string& what) {
  auto result = parse_text(text);
  ASSERT_FALSE(result) << "accepted:\n" << text;
  EXPECT_EQ(result.error().message.rfind(prefix, 0), 0u) << result.error().message;
  EXPECT_NE(result.error().message.find(what), std::string::npos) << result.error().message;
}

TEST(SecurityConfigTest, DefaultsAreOffAndUnlimited) {
  auto config = parse_text(upstream());
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_FALSE(config->server.tls);
  EXPECT_FALSE(config->auth);
  EXPECT_EQ(config->server.requests_per_second, 0);
  EXPECT_EQ(config->server.max_connections_per_client, 0u);
  EXPECT_EQ(config->server.max_uri_bytes, 8192u);
  EXPECT_EQ(config->upstreams[0].max_concurrent_fetches, 0u);
  EXPECT_EQ(config->upstreams[0].fetch_slot_timeout.count(), 30);
}

TEST(SecurityConfigTest, LoadsTlsLimitsAndAuth) {
  auto cert = temp_file("cert.pem", "x");
  auto key = temp_file("key.pem", "x");
  auto htpasswd = temp_file("htpasswd", "");
  auto config = parse_text("server:\n  tls:\n    cert_file: " + cert + "\n    key_file: " + key +
                           "\n    client_ca_file: " + cert + "\n    allow_plain_http: true\n" +
                           "    client_cert_user: false\n" +
                           "  requests_per_second: 0.5\n  burst: 20\n  max_connections_per_client: 16\n"
                           "  max_uri_bytes: 4KiB\n" +
                           upstream() + "    max_concurrent_fetches: 4\n    fetch_slot_timeout: 2m\n" +
                           "auth:\n  htpasswd_file: " + htpasswd +
                           "\n  realm: corp\n  tokens:\n    - user: ci\n      sha256: "
                           "E4EA8107AA5EF8385652A74C9A457B267F0025CD322CCCCB8658BEE1F80E278D\n"
                           "  groups:\n    devs: [alice, bob]\n"
                           "  anonymous: [\"docker.io/library/**\"]\n"
                           "  rules:\n    - groups: [devs]\n      repositories: [\"docker.io/acme/**\"]\n"
                           "  protect_api: true\n  cache_ttl: 1m\n");
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_TRUE(config->server.tls);
  EXPECT_EQ(config->server.tls->cert_file, cert);
  EXPECT_TRUE(config->server.tls->allow_plain_http);
  EXPECT_FALSE(config->server.tls->client_cert_user);
  EXPECT_EQ(config->server.requests_per_second, 0.5);
  EXPECT_EQ(config->server.burst, 20u);
  EXPECT_EQ(config->server.max_connections_per_client, 16u);
  EXPECT_EQ(config->server.max_uri_bytes, 4096u);
  EXPECT_EQ(config->upstreams[0].max_concurrent_fetches, 4u);
  EXPECT_EQ(config->upstreams[0].fetch_slot_timeout.count(), 120);
  ASSERT_TRUE(config->auth);
  EXPECT_EQ(config->auth->realm, "corp");
  ASSERT_EQ(config->auth->tokens.size(), 1u);
  EXPECT_EQ(config->auth->tokens[0].sha256, "e4ea8107aa5ef8385652a74c9a457b267f0025cd322ccccb8658bee1f80e278d");
  ASSERT_EQ(config->auth->rules.size(), 1u);
  EXPECT_EQ(config->auth->rules[0].repositories[0].value, "docker.io/acme/**");
  EXPECT_EQ(config->auth->rules[0].repositories[0].key, "auth.rules[0].repositories[0]");
  EXPECT_GT(config->auth->rules[0].repositories[0].line, 0);
  EXPECT_TRUE(config->auth->protect_api);
  EXPECT_EQ(config->auth->cache_ttl.count(), 60);
  fs::remove(cert);
  fs::remove(key);
  fs::remove(htpasswd);
}

TEST(SecurityConfigTest, TrustedProxiesAreNetworksAndNoneByDefault) {
  auto none = parse_text(upstream());
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->server.trusted_proxies.empty());
  auto config = parse_text("server:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.7, \"fd00::/8\"]\n" + upstream());
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_EQ(config->server.trusted_proxies.size(), 3u);
  EXPECT_EQ(config->server.trusted_proxies[1].text(), "192.0.2.7");
  EXPECT_TRUE(config->server.trusted_proxies[2].contains(boost::asio::ip::make_address("fd12::1")));
  expect_refused("server:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - lb.example.com\n" + upstream(),
                 "test.yaml:4: server.trusted_proxies[1]:", "'lb.example.com' is not an IP address");
  expect_refused("server:\n  trusted_proxies: [10.0.0.1/8]\n" + upstream(), "test.yaml:2: server.trusted_proxies[0]:",
                 "sets bits past its /8 prefix");
  expect_refused("server:\n  trusted_proxies: 10.0.0.0/8\n" + upstream(), "test.yaml:2: server.trusted_proxies:",
                 "must be a list");
}

TEST(SecurityConfigTest, RefusesBadValuesWithKeyAndLine) {
  expect_refused("server:\n  tls:\n    key_file: /x\n" + upstream(), "test.yaml:3: server.tls.cert_file:", "required");
  expect_refused("server:\n  tls:\n    cert_file: /nonexistent/c.pem\n    key_file: /x\n" + upstream(),
                 "test.yaml:3: server.tls.cert_file:", "cannot read");
  expect_refused("server:\n  tls:\n    cert: /x\n" + upstream(), "test.yaml:3: server.tls.cert:", "unknown key");
  {
    auto cert = temp_file("cert-only.pem", "x");
    expect_refused("server:\n  tls:\n    cert_file: " + cert + "\n    key_file: " + cert +
                       "\n    client_cert_user: true\n" + upstream(),
                   "test.yaml:5: server.tls.client_cert_user:", "needs server.tls.client_ca_file");
    fs::remove(cert);
  }
  expect_refused("server:\n  requests_per_second: fast\n" + upstream(), "test.yaml:2: server.requests_per_second:",
                 "requests per second");
  expect_refused("server:\n  max_uri_bytes: 10\n" + upstream(), "test.yaml:2: server.max_uri_bytes:", "between");
  expect_refused(upstream() + "    max_concurrent_fetches: -1\n", "test.yaml:4: upstreams[0].max_concurrent_fetches:",
                 "whole number");
  expect_refused(upstream() + "    fetch_slot_timeout: 0s\n", "test.yaml:4: upstreams[0].fetch_slot_timeout:",
                 "longer than 0s");
  expect_refused(upstream() + "    fetch_slot_timeout: 30\n", "test.yaml:4: upstreams[0].fetch_slot_timeout:",
                 "bad duration");
  expect_refused(upstream() + "auth:\n  realm: x\n", "test.yaml:5: auth:", "htpasswd_file, tokens or anonymous");
  expect_refused(upstream() + "auth:\n  tokens:\n    - user: ci\n      sha256: tok-ci-123\n",
                 "test.yaml:7: auth.tokens[0].sha256:", "64 hex digits");
  expect_refused(upstream() + "auth:\n  anonymous: [\"**\"]\n  rules:\n    - groups: [nope]\n      repositories: [\"**\"]\n",
                 "test.yaml:7: auth.rules[0].groups:", "names no group");
  expect_refused(upstream() + "auth:\n  anonymous: [\"**\"]\n  rules:\n    - repositories: [\"**\"]\n",
                 "test.yaml:7: auth.rules[0].users:", "needs users or groups");
  expect_refused(upstream() + "auth:\n  anonymous: [\"**\"]\n  users: [a]\n", "test.yaml:6: auth.users:", "unknown key");
}

TEST(SecurityConfigTest, NeverEchoesAMistypedTokenHash) {
  auto result = parse_text(upstream() + "auth:\n  tokens:\n    - user: ci\n      sha256: my-secret-token\n");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message.find("my-secret-token"), std::string::npos) << result.error().message;
}

}  // namespace
}  // namespace ocigate::config
