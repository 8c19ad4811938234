// config/ocigate.yaml claims to show every key with its default: hold it to that, so the example
// and the built-in default cannot drift apart.

#include <gtest/gtest.h>

#include "ocigate/config/config.hpp"
#include "ocigate/policy/policy.hpp"

namespace {

using namespace ocigate;

TEST(ExampleConfig, LoadsAndEqualsTheBuiltInDefault) {
  auto loaded = config::load_file(OCIGATE_SOURCE_DIR "/config/ocigate.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const config::Config builtin = config::defaults();
  const config::Config& example = *loaded;

  EXPECT_EQ(example.server.listen.host, builtin.server.listen.host);
  EXPECT_EQ(example.server.listen.port, builtin.server.listen.port);
  EXPECT_EQ(example.server.threads, builtin.server.threads);
  EXPECT_EQ(example.server.max_header_bytes, builtin.server.max_header_bytes);
  EXPECT_EQ(example.server.header_timeout, builtin.server.header_timeout);
  EXPECT_EQ(example.server.idle_timeout, builtin.server.idle_timeout);
  EXPECT_EQ(example.server.shutdown_grace, builtin.server.shutdown_grace);
  EXPECT_EQ(example.server.malformed_per_minute, builtin.server.malformed_per_minute);
  EXPECT_EQ(example.storage.path, builtin.storage.path);
  EXPECT_EQ(example.storage.max_size, builtin.storage.max_size);
  EXPECT_EQ(example.storage.chunk_size, builtin.storage.chunk_size);
  EXPECT_EQ(example.storage.verify_reads, builtin.storage.verify_reads);
  EXPECT_EQ(example.default_upstream, builtin.default_upstream);
  EXPECT_EQ(example.log.access_log, builtin.log.access_log);
  EXPECT_EQ(example.log.audit_log, builtin.log.audit_log);
  EXPECT_EQ(example.log.level, builtin.log.level);

  ASSERT_EQ(example.upstreams.size(), builtin.upstreams.size());
  const auto& a = example.upstreams.front();
  const auto& b = builtin.upstreams.front();
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.port, b.port);
  EXPECT_EQ(a.tls, b.tls);
  EXPECT_EQ(a.tag_ttl, b.tag_ttl);
  EXPECT_EQ(a.implicit_library, b.implicit_library);
  EXPECT_EQ(a.connect_timeout, b.connect_timeout);
  EXPECT_EQ(a.response_timeout, b.response_timeout);
  EXPECT_EQ(a.idle_timeout, b.idle_timeout);
  EXPECT_EQ(a.max_connections, b.max_connections);
  EXPECT_EQ(a.max_concurrent_fetches, b.max_concurrent_fetches);
  EXPECT_EQ(a.fetch_slot_timeout, b.fetch_slot_timeout);
  EXPECT_EQ(a.pull_ahead, b.pull_ahead);
}

TEST(ExampleConfig, PolicyEqualsTheDefaultPolicy) {
  auto loaded = config::load_file(OCIGATE_SOURCE_DIR "/config/ocigate.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  auto parsed = policy::parse_policy(loaded->policy.get(), loaded->source);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->version, policy::default_policy().version)
      << policy::canonical_json(*parsed).dump() << "\n" << policy::canonical_json(policy::default_policy()).dump();
}

}  // namespace
