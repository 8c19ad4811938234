// The `vulnerabilities` section: database directory, update sources (where each is saved) and
// max_age, refused with file:line:key like every other section.

#include <gtest/gtest.h>

#include "ocigate/config/config.hpp"

namespace ocigate::config {
namespace {

const std::string upstream = "upstreams:\n  - name: up\n    url: http://127.0.0.1:5001\n";  // lines 1-3

Result<Config> parse_section(const std::string& section) { return parse(upstream + section, "test.yaml"); }

::testing::AssertionResult refused(const std::string& section, int line, const std::string& key, std::string_view what) {
  auto result = parse_section(section);
  if (result.ok()) return ::testing::AssertionFailure() << "accepted";
  const auto& message = result.error().message;
  auto prefix = "test.yaml:" + std::to_string(line) + ": " + key + ": ";
  if (message.rfind(prefix, 0) != 0 || message.find(what) == std::string::npos) {
    return ::testing::AssertionFailure() << "expected '" << prefix << "..." << what << "' in: " << message;
  }
  return ::testing::AssertionSuccess();
}

TEST(VulnerabilitiesConfig, IsAbsentByDefault) {
  auto config = parse_section("");
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->vulnerabilities.has_value());
  EXPECT_FALSE(defaults().vulnerabilities.has_value());
}

TEST(VulnerabilitiesConfig, ReadsDatabaseSourcesAndMaxAge) {
  auto config = parse_section(
      "vulnerabilities:\n"
      "  database: /var/lib/ocigate/vulndb\n"
      "  sources:\n"
      "    - https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip\n"
      "    - https://osv-vulnerabilities.storage.googleapis.com/Red%20Hat/all.zip\n"
      "    - http://127.0.0.1:8080/extra.json\n"
      "  max_age: 2d\n");
  ASSERT_TRUE(config.ok()) << config.error().message;
  const auto& v = *config->vulnerabilities;
  EXPECT_EQ(v.database, "/var/lib/ocigate/vulndb");
  ASSERT_EQ(v.sources.size(), 3u);
  EXPECT_EQ(v.sources[0].url, "https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip");
  EXPECT_EQ(v.sources[0].file, "Debian/all.zip");
  EXPECT_EQ(v.sources[0].line, 7);
  EXPECT_TRUE(v.sources[0].tls);
  EXPECT_EQ(v.sources[0].host, "osv-vulnerabilities.storage.googleapis.com");
  EXPECT_EQ(v.sources[0].port, 443);
  EXPECT_EQ(v.sources[0].target, "/Debian/all.zip");
  EXPECT_EQ(v.sources[1].target, "/Red%20Hat/all.zip") << "sent as written";
  EXPECT_FALSE(v.sources[2].tls);
  EXPECT_EQ(v.sources[2].host, "127.0.0.1");
  EXPECT_EQ(v.sources[2].port, 8080);
  EXPECT_EQ(v.sources[1].file, "Red Hat/all.zip") << "percent-decoded: osv.dev's ecosystem names have spaces";
  EXPECT_EQ(v.sources[2].file, "extra.json");
  EXPECT_EQ(v.max_age, std::chrono::hours(48));
}

TEST(VulnerabilitiesConfig, MaxAgeDefaultsTo72Hours) {
  auto config = parse_section("vulnerabilities:\n  database: db\n");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->vulnerabilities->max_age, std::chrono::hours(72));
  EXPECT_TRUE(config->vulnerabilities->sources.empty());
}

TEST(VulnerabilitiesConfig, RefusesWhatItCannotUse) {
  // A mapping is marked where its first key is.
  EXPECT_TRUE(refused("vulnerabilities:\n  sources: []\n", 5, "vulnerabilities.database", "is required"));
  EXPECT_TRUE(refused("vulnerabilities:\n", 4, "vulnerabilities.database", "is required"));
  EXPECT_TRUE(refused("vulnerabilities:\n  database: db\n  max_age: 0s\n", 6, "vulnerabilities.max_age", "longer than 0s"));
  EXPECT_TRUE(refused("vulnerabilities:\n  database: db\n  max_age: 3\n", 6, "vulnerabilities.max_age", "bad duration"));
  EXPECT_TRUE(refused("vulnerabilities:\n  database: db\n  maxage: 1h\n", 6, "vulnerabilities.maxage", "did you mean max_age"));
  EXPECT_TRUE(refused("vulnerabilities:\n  database: db\n  sources: https://x/all.zip\n", 6, "vulnerabilities.sources",
                      "list of URLs"));
}

TEST(VulnerabilitiesConfig, RefusesSourcesThatAreNotSafeDownloads) {
  auto source = [](const std::string& url) { return "vulnerabilities:\n  database: db\n  sources:\n    - \"" + url + "\"\n"; };
  const std::string key = "vulnerabilities.sources[0]";
  EXPECT_TRUE(refused(source("http://example.com/Debian/all.zip"), 7, key, "must be https://"));
  EXPECT_TRUE(refused(source("ftp://example.com/Debian/all.zip"), 7, key, "must be https://"));
  EXPECT_TRUE(refused(source("https://example.com/"), 7, key, "names no file"));
  EXPECT_TRUE(refused(source("https://example.com/Debian/all.tar"), 7, key, ".zip or .json"));
  EXPECT_TRUE(refused(source("https://example.com/x/..%2Fall.zip"), 7, key, "cannot be a file name"));
  EXPECT_TRUE(refused(source("https://example.com/.hidden/all.zip"), 7, key, "cannot be a file name"));
  EXPECT_TRUE(refused(source("https://u:p@example.com/Debian/all.zip"), 7, key, "credentials"));
  EXPECT_TRUE(refused(source("not a url"), 7, key, "not a URL"));
  EXPECT_TRUE(parse_section(source("http://localhost:8000/Debian/all.zip")).ok()) << "loopback may be plain http";
  EXPECT_TRUE(refused("vulnerabilities:\n  database: db\n  sources:\n    - https://a.example/Debian/all.zip\n"
                      "    - https://b.example/Debian/all.zip\n",
                      8, "vulnerabilities.sources[1]", "would be saved as Debian/all.zip"));
}

}  // namespace
}  // namespace ocigate::config
