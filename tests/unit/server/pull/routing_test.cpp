#include "pull/routing.hpp"

#include <gtest/gtest.h>

namespace ocigate::server {
namespace {

config::Config two_upstreams(std::string default_upstream) {
  config::Config config;
  config::Upstream hub;
  hub.name = "docker.io";
  hub.implicit_library = true;
  config::Upstream ghcr;
  ghcr.name = "ghcr.io";
  config::Upstream local;
  local.name = "localhost:5001";
  config.upstreams = {hub, ghcr, local};
  config.default_upstream = std::move(default_upstream);
  return config;
}

oci::Route route(std::string name, std::string query = {}) {
  oci::Route r;
  r.kind = oci::RouteKind::manifest;
  r.name = std::move(name);
  r.reference = "latest";
  r.query = std::move(query);
  return r;
}

TEST(ResolveTarget, ExplicitPrefixSelectsThatUpstream) {
  auto config = two_upstreams("docker.io");
  auto t = resolve_target(config, route("ghcr.io/acme/app"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->upstream->name, "ghcr.io");
  EXPECT_EQ(t->repo, "acme/app");
  EXPECT_EQ(t->repo_key, "ghcr.io/acme/app");
}

TEST(ResolveTarget, DockerHubGetsImplicitLibrary) {
  auto config = two_upstreams("docker.io");
  auto t = resolve_target(config, route("docker.io/alpine"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->repo, "library/alpine");
  auto bare = resolve_target(config, route("alpine"));
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->repo_key, "docker.io/library/alpine");
}

TEST(ResolveTarget, OtherUpstreamsGetNoImplicitLibrary) {
  auto config = two_upstreams("ghcr.io");
  auto t = resolve_target(config, route("tool"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->repo, "tool");
}

TEST(ResolveTarget, NamesWithoutPrefixGoToTheDefault) {
  auto config = two_upstreams("docker.io");
  auto t = resolve_target(config, route("bitnami/redis"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->upstream->name, "docker.io");
  EXPECT_EQ(t->repo, "bitnami/redis");
}

TEST(ResolveTarget, NsQuerySelectsUpstreamAndKeepsWholeName) {
  auto config = two_upstreams("docker.io");
  auto t = resolve_target(config, route("acme/app", "ns=ghcr.io"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->upstream->name, "ghcr.io");
  EXPECT_EQ(t->repo, "acme/app");
  EXPECT_EQ(t->ns, "ghcr.io");
}

TEST(ResolveTarget, UnknownNsIsNameUnknown) {
  auto config = two_upstreams("docker.io");
  auto t = resolve_target(config, route("acme/app", "ns=evil.example.com"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::name_unknown);
}

TEST(ResolveTarget, NoDefaultMeansUnprefixedNamesAreUnknown) {
  auto config = two_upstreams("");
  auto t = resolve_target(config, route("library/alpine"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::name_unknown);
}

TEST(ResolveTarget, UpstreamNameWithPortWorksAsPrefix) {
  auto config = two_upstreams("");
  auto t = resolve_target(config, route("localhost:5001/team/app"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->upstream->name, "localhost:5001");
  EXPECT_EQ(t->repo, "team/app");
}

TEST(ResolveTarget, MalformedNamesAreInvalidBeforeUnknown) {
  auto config = two_upstreams("");
  for (const char* bad : {"UPPER/case", "a/../b", "a//b", "-lead", "docker.io/", "docker.io/Alpine"}) {
    auto t = resolve_target(config, route(bad));
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.error().code, Errc::name_invalid) << bad;
  }
}

}  // namespace
}  // namespace ocigate::server
