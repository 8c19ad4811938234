// The vulnerability database: which records it keeps, how inventories match them (source and
// origin names), loading a directory of records and zips, and the ignore helper.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "support.hpp"
#include "ocigate/common/time.hpp"
#include "ocigate/vuln/database.hpp"
#include "zip_writer.hpp"

namespace ocigate::vuln {
namespace {

using policy::Package;
using ::testing::ElementsAre;
using std::chrono::system_clock;

Package pkg(std::string name, std::string version, std::string format, std::string source = "", std::string source_version = "") {
  return Package(std::move(name), std::move(version), std::move(format), std::move(source), std::move(source_version));
}

osv::Record record(const std::string& json) {
  auto r = osv::parse_record(json);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message) << "\n" << json;
  return r.ok() ? *r : osv::Record{};
}

// A record with one affected package fixed at `fixed` ("" = no fix) in `ecosystem`.
std::string simple(const std::string& id, const std::string& ecosystem, const std::string& name, const std::string& fixed,
                   const std::string& extra = "") {
  std::string events = R"([{"introduced": "0"})" + (fixed.empty() ? "" : R"(, {"fixed": ")" + fixed + R"("})") + "]";
  return R"({"id": ")" + id + R"(", )" + extra + R"("affected": [{"package": {"ecosystem": ")" + ecosystem +
         R"(", "name": ")" + name + R"("}, "ranges": [{"type": "ECOSYSTEM", "events": )" + events + "}]}]}";
}

std::vector<std::string> ids(const MatchResult& m) {
  std::vector<std::string> out;
  for (const auto& f : m.findings) out.push_back(std::string(f.id) + "/" + f.package);
  return out;
}

TEST(Distro, FromOsRelease) {
  EXPECT_EQ(distro_of({"debian", "12"})->display, "Debian:12");
  EXPECT_EQ(distro_of({"ubuntu", "22.04"})->display, "Ubuntu:22.04");
  EXPECT_EQ(distro_of({"alpine", "3.20.3"})->display, "Alpine:v3.20");
  EXPECT_EQ(distro_of({"alpine", "3.21_alpha20240807"})->key, "alpine:3.21");
  EXPECT_EQ(distro_of({"rhel", "9.4"})->display, "Red Hat:enterprise_linux:9");
  EXPECT_EQ(distro_of({"rocky", "9.3"})->display, "Rocky Linux:9");
  EXPECT_EQ(distro_of({"almalinux", "9.3"})->scheme, Scheme::rpm);
  EXPECT_FALSE(distro_of({"debian", ""}));  // testing / sid
  EXPECT_FALSE(distro_of({"arch", ""}));
  EXPECT_FALSE(distro_of({"", ""}));
}

TEST(Distro, FromOsvEcosystems) {
  auto key = [](const char* e) {
    auto d = distro_of_ecosystem(e);
    return d ? d->key : std::string("-");
  };
  EXPECT_EQ(key("Debian:12"), "debian:12");
  EXPECT_EQ(key("Debian:sid"), "-");
  EXPECT_EQ(key("Debian"), "-");
  EXPECT_EQ(key("Ubuntu:22.04:LTS"), "ubuntu:22.04");
  EXPECT_EQ(key("Ubuntu:24.10"), "ubuntu:24.10");
  EXPECT_EQ(key("Ubuntu:Pro:18.04:LTS"), "-");
  EXPECT_EQ(key("Ubuntu:Pro:FIPS-updates:20.04:LTS"), "-");
  EXPECT_EQ(key("Alpine:v3.20"), "alpine:3.20");
  EXPECT_EQ(key("Alpine:3.20"), "-");
  EXPECT_EQ(key("Red Hat:enterprise_linux:9::appstream"), "rhel:9");
  EXPECT_EQ(key("Red Hat:enterprise_linux:9::baseos"), "rhel:9");
  EXPECT_EQ(key("Red Hat:rhel_eus:9.2::baseos"), "-");
  EXPECT_EQ(key("Rocky Linux:9"), "rocky:9");
  EXPECT_EQ(key("AlmaLinux:8"), "almalinux:8");
  EXPECT_EQ(key("PyPI"), "-");
}

TEST(Match, DebianRecordsNameTheSourcePackage) {
  auto db = Database::from_records({
      record(simple("DEBIAN-CVE-2024-0001", "Debian:12", "openssl", "3.0.13-1~deb12u1",
                    R"("upstream": ["CVE-2024-0001"], "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}], )")),
      record(simple("DEBIAN-CVE-2024-0002", "Debian:12", "glibc", "")),
      record(simple("DEBIAN-CVE-2024-0003", "Debian:12", "zlib", "1:1.2.13.dfsg-2")),
      record(simple("DEBIAN-CVE-2024-0004", "Debian:11", "openssl", "1.1.1w-0+deb11u2")),
      record(simple("DEBIAN-CVE-2024-0005", "Debian:12", "libssl3", "9.9-1")),  // names a binary: never matches
  });
  std::vector<Package> inventory = {
      pkg("libssl3", "3.0.11-1~deb12u2", "dpkg", "openssl"),
      pkg("openssl", "3.0.13-1~deb12u1", "dpkg"),                         // fixed
      pkg("libc6", "2.36-9+deb12u4", "dpkg", "glibc"),
      pkg("zlib1g", "1:1.2.13.dfsg-1+b1", "dpkg", "zlib", "1:1.2.13.dfsg-1"),  // binNMU: the source's version counts
      pkg("musl", "1.2.4-r2", "apk"),                                     // another format: not looked up
  };
  auto m = db->match({"debian", "12"}, inventory);
  ASSERT_TRUE(m.supported) << m.reason;
  EXPECT_EQ(m.ecosystem, "Debian:12");
  EXPECT_EQ(m.packages_checked, 4u);
  ASSERT_EQ(ids(m), (std::vector<std::string>{"DEBIAN-CVE-2024-0001/libssl3", "DEBIAN-CVE-2024-0002/libc6",
                                              "DEBIAN-CVE-2024-0003/zlib1g"}));
  const Finding& top = m.findings[0];
  EXPECT_THAT(top.aliases, ElementsAre("CVE-2024-0001"));
  EXPECT_EQ(top.matched_name, "openssl");
  EXPECT_EQ(top.installed_version, "3.0.11-1~deb12u2");
  EXPECT_EQ(top.fixed_version, "3.0.13-1~deb12u1");
  EXPECT_EQ(top.severity, Severity::critical);
  EXPECT_EQ(top.score, 9.8);
  EXPECT_EQ(top.ecosystem, "Debian:12");
  EXPECT_EQ(m.findings[1].fixed_version, std::nullopt);  // glibc: no fix
  EXPECT_EQ(m.findings[1].severity, Severity::unknown);
  EXPECT_EQ(m.findings[2].installed_version, "1:1.2.13.dfsg-1");
  // The same inventory on Debian 11 meets only the Debian:11 record.
  auto eleven = db->match({"debian", "11"}, {pkg("libssl3", "1.1.1n-0+deb11u5", "dpkg", "openssl")});
  EXPECT_EQ(ids(eleven), std::vector<std::string>{"DEBIAN-CVE-2024-0004/libssl3"});
}

TEST(Match, AlpineRecordsNameTheOrigin) {
  auto db = Database::from_records({record(simple("ALPINE-CVE-2024-1", "Alpine:v3.20", "openssl", "3.3.2-r0")),
                                    record(simple("ALPINE-CVE-2024-2", "Alpine:v3.19", "openssl", "3.1.7-r0"))});
  auto m = db->match({"alpine", "3.20.3"}, {pkg("libcrypto3", "3.3.1-r3", "apk", "openssl"), pkg("openssl", "3.3.2-r0", "apk")});
  ASSERT_TRUE(m.supported);
  ASSERT_EQ(ids(m), std::vector<std::string>{"ALPINE-CVE-2024-1/libcrypto3"});
  EXPECT_EQ(m.findings[0].fixed_version, "3.3.2-r0");
}

TEST(Match, RpmRecordsMatchTheBinaryOrTheSourceNameOnce) {
  auto db = Database::from_records({
      record(R"({"id": "RLSA-2024:1", "related": ["CVE-2024-9"], "affected": [
        {"package": {"ecosystem": "Rocky Linux:9", "name": "tinyssl"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-28.el9"}]}]},
        {"package": {"ecosystem": "Rocky Linux:9", "name": "tinyssl-libs"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-28.el9"}]}]}]})"),
      record(simple("RHSA-2024:2", "Red Hat:enterprise_linux:9::baseos", "zlibby", "1.2.11-41.el9")),
  });
  std::vector<Package> inventory = {pkg("tinyssl", "1:3.0.7-27.el9", "rpm"), pkg("tinyssl-libs", "1:3.0.7-27.el9", "rpm", "tinyssl"),
                                    pkg("zlibby", "1.2.11-40.el9", "rpm")};
  auto rocky = db->match({"rocky", "9.3"}, inventory);
  ASSERT_EQ(ids(rocky), (std::vector<std::string>{"RLSA-2024:1/tinyssl", "RLSA-2024:1/tinyssl-libs"}));
  EXPECT_THAT(rocky.findings[0].related, ElementsAre("CVE-2024-9"));
  auto rhel = db->match({"rhel", "9.4"}, inventory);
  EXPECT_EQ(ids(rhel), std::vector<std::string>{"RHSA-2024:2/zlibby"});
}

TEST(Match, UnknownDistributionsAndReleasesAreNotSupported) {
  auto db = Database::from_records({record(simple("DEBIAN-CVE-1", "Debian:12", "openssl", ""))});
  auto none = db->match({"", ""}, {pkg("openssl", "1.0-1", "dpkg")});
  EXPECT_FALSE(none.supported);
  EXPECT_NE(none.reason.find("os-release"), std::string::npos);
  auto arch = db->match({"arch", ""}, {});
  EXPECT_FALSE(arch.supported);
  auto fourteen = db->match({"debian", "14"}, {pkg("openssl", "1.0-1", "dpkg")});
  EXPECT_FALSE(fourteen.supported);
  EXPECT_NE(fourteen.reason.find("no records for Debian:14"), std::string::npos);
  auto alpine = db->match({"alpine", "3.20.0"}, {});
  EXPECT_FALSE(alpine.supported);
}

TEST(Match, InvalidInstalledVersionsAreSkippedAndSaid) {
  auto db = Database::from_records({record(simple("DEBIAN-CVE-1", "Debian:12", "openssl", "3.0-1"))});
  auto m = db->match({"debian", "12"}, {pkg("openssl", "not a version", "dpkg")});
  ASSERT_TRUE(m.supported);
  EXPECT_TRUE(m.findings.empty());
  ASSERT_EQ(m.skipped.size(), 1u);
  EXPECT_NE(m.skipped[0].find("not a valid dpkg version"), std::string::npos);
}

TEST(Match, VersionsListsAndRangesTogether) {
  // Ubuntu lists every affected version beside its range; a listed version outside every
  // range still matches, one inside adds nothing.
  auto db = Database::from_records({record(R"({"id": "UBUNTU-CVE-2025-1", "affected": [
    {"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "php8.1"}, "versions": ["8.1.2-1ubuntu2.21", "7.9-1"],
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "8.0"}, {"fixed": "8.1.2-1ubuntu2.22"}]}]}]})")});
  auto m = db->match({"ubuntu", "22.04"}, {pkg("php8.1", "7.9-1", "dpkg")});
  ASSERT_EQ(ids(m), std::vector<std::string>{"UBUNTU-CVE-2025-1/php8.1"});
  EXPECT_EQ(m.findings[0].fixed_version, std::nullopt);
  EXPECT_TRUE(db->match({"ubuntu", "22.04"}, {pkg("php8.1", "7.9-2", "dpkg")}).findings.empty());
  auto listed = db->match({"ubuntu", "22.04"}, {pkg("php8.1", "8.1.2-1ubuntu2.21", "dpkg")});
  ASSERT_EQ(listed.findings.size(), 1u);
  EXPECT_EQ(listed.findings[0].fixed_version, "8.1.2-1ubuntu2.22");
}

TEST(Match, FindingsAreSortedBySeverityThenScore) {
  auto v = [](const char* vector) { return std::string(R"("severity": [{"type": "CVSS_V3", "score": ")") + vector + R"("}], )"; };
  auto db = Database::from_records({
      record(simple("A-LOW", "Debian:12", "a", "", v("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"))),
      record(simple("B-HIGH", "Debian:12", "a", "", v("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"))),
      record(simple("C-CRIT", "Debian:12", "a", "", v("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"))),
      record(simple("D-UNKNOWN", "Debian:12", "a", "")),
      record(simple("E-HIGH2", "Debian:12", "a", "", v("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"))),
  });
  auto m = db->match({"debian", "12"}, {pkg("a", "1.0-1", "dpkg")});
  EXPECT_EQ(ids(m), (std::vector<std::string>{"C-CRIT/a", "E-HIGH2/a", "B-HIGH/a", "A-LOW/a", "D-UNKNOWN/a"}));
}

TEST(Load, KeepsOnlyMatchableLiveRecords) {
  auto db = Database::from_records({
      record(simple("DEBIAN-CVE-1", "Debian:12", "openssl", "")),
      record(simple("DSA-1-1", "Debian:12", "openssl", "", R"("withdrawn": "2024-01-01T00:00:00Z", )")),
      record(simple("GHSA-1", "PyPI", "django", "")),
      record(simple("USN-1", "Ubuntu:Pro:18.04:LTS", "openssl", "")),
      record(simple("DEBIAN-CVE-1", "Debian:12", "curl", "")),  // same id again: the first wins
      record(simple("BAD-RANGE", "Debian:12", "curl", "not a version!")),
  });
  const Metadata& m = db->metadata();
  EXPECT_EQ(m.records_loaded, 1u);
  EXPECT_EQ(m.records_withdrawn, 1u);
  EXPECT_EQ(m.records_other, 3u);  // PyPI, Ubuntu Pro, and the one whose only range cannot be read
  EXPECT_EQ(m.records_duplicate, 1u);
  EXPECT_EQ(m.ranges_skipped, 1u);
  EXPECT_EQ(m.records, (std::map<std::string, std::size_t>{{"Debian:12", 1}}));
  auto hits = db->match({"debian", "12"}, {pkg("openssl", "1-1", "dpkg"), pkg("curl", "1-1", "dpkg")});
  EXPECT_EQ(ids(hits), std::vector<std::string>{"DEBIAN-CVE-1/openssl"});
}

void write(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string version_text(const std::string& dir) {
  auto version = version_of(dir);
  return version ? *version : std::string();
}

TEST(Load, ReadsJsonFilesAndAllZipsOfADirectory) {
  ocigate::test::TempDir dir;
  write(dir.path() + "/DEBIAN-CVE-2024-1.json", simple("DEBIAN-CVE-2024-1", "Debian:12", "openssl", "3.0.13-1~deb12u1"));
  write(dir.path() + "/Alpine/all.zip",
        test::make_zip({{"ALPINE-CVE-2024-1.json", simple("ALPINE-CVE-2024-1", "Alpine:v3.20", "openssl", "3.3.2-r0")},
                        {"ALPINE-CVE-2024-2.json", simple("ALPINE-CVE-2024-2", "Alpine:v3.19", "busybox", "")},
                        {"README.txt", "not a record"}}));
  write(dir.path() + "/.all.zip.tmp-1234", "half written");  // an updater's file in progress
  write(dir.path() + "/notes.txt", "ignored");
  write(dir.path() + "/" + manifest_name, R"({"built_at": "2026-01-02T03:04:05Z"})");
  auto db = load(dir.path());
  ASSERT_TRUE(db.ok()) << db.error().message;
  const Metadata& m = (*db)->metadata();
  EXPECT_EQ(m.files, 2u);
  EXPECT_EQ(m.records_loaded, 3u);
  EXPECT_EQ(m.records, (std::map<std::string, std::size_t>{{"Alpine:v3.19", 1}, {"Alpine:v3.20", 1}, {"Debian:12", 1}}));
  EXPECT_EQ(m.built_at, *parse_rfc3339("2026-01-02T03:04:05Z"));
  EXPECT_EQ((*db)->age(*parse_rfc3339("2026-01-02T04:04:05Z")), std::chrono::seconds(3600));
  EXPECT_EQ(m.version.substr(0, 7), "sha256:");
  auto hits = (*db)->match({"alpine", "3.20.1"}, {pkg("libssl3", "3.3.1-r0", "apk", "openssl")});
  EXPECT_EQ(ids(hits), std::vector<std::string>{"ALPINE-CVE-2024-1/libssl3"});

  // Same files: same version. A changed file: a new version (verdicts keyed by it are redone).
  auto again = load(dir.path());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->metadata().version, m.version);
  EXPECT_EQ(version_text(dir.path()), m.version) << "the version without loading";
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write(dir.path() + "/DEBIAN-CVE-2024-1.json", simple("DEBIAN-CVE-2024-1", "Debian:12", "openssl", "3.0.14-1~deb12u1"));
  auto changed = load(dir.path());
  ASSERT_TRUE(changed.ok());
  EXPECT_NE((*changed)->metadata().version, m.version);
  EXPECT_EQ(version_text(dir.path()), (*changed)->metadata().version);
  write(dir.path() + "/" + manifest_name, R"({"built_at": "2026-01-03T03:04:05Z"})");
  EXPECT_NE(version_text(dir.path()), (*changed)->metadata().version) << "a new manifest is a new version";
  EXPECT_FALSE(version_of(dir.path() + "/missing").ok());
}

TEST(Load, WithoutAManifestTheNewestFileDatesTheDatabase) {
  ocigate::test::TempDir dir;
  write(dir.path() + "/a.json", simple("DEBIAN-CVE-1", "Debian:12", "openssl", ""));
  auto before = system_clock::now() - std::chrono::minutes(1);
  auto db = load(dir.path());
  ASSERT_TRUE(db.ok());
  EXPECT_GT((*db)->metadata().built_at, before);
  EXPECT_LT((*db)->age(system_clock::now()), std::chrono::minutes(1));
}

TEST(Load, BadOrHalfWrittenDatabasesAreErrors) {
  ocigate::test::TempDir dir;
  EXPECT_FALSE(load(dir.path() + "/missing").ok());
  EXPECT_FALSE(load(dir.path()).ok()) << "an empty directory is not a database";
  std::string zip = test::make_zip({{"A.json", simple("ALPINE-CVE-1", "Alpine:v3.20", "openssl", "")}});
  std::vector<std::pair<std::string, std::string>> bad = {
      {"truncated.zip", zip.substr(0, zip.size() - 10)},
      {"broken.json", R"({"id": "DEBIAN-CVE-1", "affected": [)"},
      {"noid.json", R"({"affected": []})"},
      {"in-zip.zip", test::make_zip({{"x.json", "{not json"}})},
  };
  for (const auto& [name, bytes] : bad) {
    ocigate::test::TempDir d;
    write(d.path() + "/good.json", simple("DEBIAN-CVE-1", "Debian:12", "openssl", ""));
    write(d.path() + "/" + name, bytes);
    auto db = load(d.path());
    ASSERT_FALSE(db.ok()) << name;
    EXPECT_NE(db.error().message.find(name), std::string::npos) << db.error().message;
  }
  LoadLimits small;
  small.max_json_bytes = 10;
  write(dir.path() + "/big.json", simple("DEBIAN-CVE-1", "Debian:12", "openssl", ""));
  EXPECT_FALSE(load(dir.path(), small).ok());
}

TEST(Load, ADirectoryAnUpdateIsInstallingIntoIsRefusedUntilTheMarkerGoesOrGoesStale) {
  ocigate::test::TempDir dir;
  write(dir.path() + "/a.json", simple("DEBIAN-CVE-1", "Debian:12", "openssl", ""));
  const std::string marker = dir.path() + "/" + updating_name;
  write(marker, "");
  auto busy = load(dir.path());
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.error().message.find("vulndb update is installing"), std::string::npos) << busy.error().message;
  EXPECT_FALSE(version_of(dir.path()).ok());
  // An update that died long ago no longer holds the database back.
  const auto old = std::filesystem::file_time_type::clock::now() - updating_stale - std::chrono::minutes(1);
  std::filesystem::last_write_time(marker, old);
  EXPECT_TRUE(load(dir.path()).ok());
  std::filesystem::remove(marker);
  EXPECT_TRUE(load(dir.path()).ok());
  EXPECT_TRUE(version_of(dir.path()).ok());
}

}  // namespace
}  // namespace ocigate::vuln
