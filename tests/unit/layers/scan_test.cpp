#include <gtest/gtest.h>

#include <sstream>

#include "helpers.hpp"

namespace {

using namespace ocigate::layers;
using namespace ocigate::layers::test;

const std::string pem_body =
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aFDrBz9vFqU4yQ8rYF1a2cLh3ZTTzv7oP2h8gk0R2Eoy5lVQ2OiKnbqNqb6BT8lN\n";
const std::string rsa_key = "-----BEGIN RSA PRIVATE KEY-----\n" + pem_body + "-----END RSA PRIVATE KEY-----\n";

std::vector<std::string> paths(const std::vector<FileFact>& facts) {
  std::vector<std::string> out;
  for (const auto& f : facts) out.push_back(f.path);
  return out;
}

std::vector<std::string> secret_paths(const LayerReport& r) {
  std::vector<std::string> out;
  for (const auto& s : r.secrets) out.push_back(s.path);
  return out;
}

std::string busy_layer() {
  Tar t;
  t.dir("usr/").dir("usr/bin/").file("usr/bin/passwd", "elf", 04755).file("usr/bin/wall", "elf", 02755);
  t.file("usr/bin/ls", "elf", 0755).file("sbin/apk", "elf", 0755).symlink("usr/bin/pip3", "pip3.12");
  t.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nadmin:x:0:0::/:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
  t.file("etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n");
  t.file("lib/apk/db/installed", "C:Q1x\nP:musl\nV:1.2.4-r2\n\nP:busybox\nV:1.36.1-r15\no:busybox\n\n");
  t.file("app/config/settings.dat", rsa_key);
  t.pax({{"path", "srv/" + std::string(200, 'd') + "/.env"}}).file("x", "DB_PASSWORD=hunter2\n");
  return t.bytes();
}

}  // namespace

TEST(Scan, FindsSetuidSetgidInstallersAndInventory) {
  auto r = scan(gzip(busy_layer()));
  ASSERT_EQ(r.status, LayerReport::Status::ok) << r.error;
  EXPECT_EQ(r.compression, "gzip");
  EXPECT_EQ(paths(r.setuid_files), (std::vector<std::string>{"usr/bin/passwd", "usr/bin/wall"}));
  EXPECT_NE(r.setuid_files[0].detail.find("setuid, mode 4755"), std::string::npos);
  EXPECT_NE(r.setuid_files[1].detail.find("setgid, mode 2755"), std::string::npos);
  EXPECT_EQ(paths(r.installers), (std::vector<std::string>{"sbin/apk", "usr/bin/pip3"}));
  ASSERT_TRUE(r.passwd);
  EXPECT_EQ(r.passwd->users.at("admin"), 0);
  EXPECT_EQ(r.passwd->users.at("app"), 1000);
  ASSERT_EQ(r.os_release.size(), 1u);
  EXPECT_EQ(r.os_release[0].id, "alpine");
  EXPECT_EQ(r.os_release[0].pretty_name, "Alpine Linux v3.19");
  ASSERT_EQ(r.package_dbs.size(), 1u);
  EXPECT_EQ(r.package_dbs[0].packages,
            (std::vector<ocigate::policy::Package>{{"musl", "1.2.4-r2", "apk"}, {"busybox", "1.36.1-r15", "apk"}}));
}

TEST(Scan, PemKeyUnderAnInnocentNameAndEnvWithValueAreSecrets) {
  auto r = scan(gzip(busy_layer()));
  ASSERT_EQ(r.secrets.size(), 2u);
  EXPECT_EQ(r.secrets[0].path, "app/config/settings.dat");
  EXPECT_EQ(r.secrets[0].evidence, "-----BEGIN RSA PRIVATE KEY-----");
  EXPECT_EQ(r.secrets[1].kind, ".env credentials");
  EXPECT_EQ(r.secrets[1].evidence.find("hunter2"), std::string::npos) << "evidence is redacted";
}

TEST(Scan, EnvWithEmptyValuesAndSampleEnvFilesPass) {
  Tar t;
  t.file("app/.env", "# comment\nDB_PASSWORD=\nAPI_TOKEN=\"\"\nexport SECRET_KEY=\nLOG_LEVEL=debug\n");
  t.file("app/.env.example", "DB_PASSWORD=changeme\n");
  auto r = scan(gzip(t.bytes()));
  EXPECT_TRUE(r.secrets.empty()) << r.secrets[0].path;
}

TEST(Scan, KnownCredentialFiles) {
  Tar t;
  t.file("root/.aws/credentials", "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI\n");
  t.file("root/.docker/config.json", R"({"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}})");
  t.file("home/a/.docker/config.json", R"({"auths":{"https://index.docker.io/v1/":{}},"credsStore":"desktop"})");
  t.file("home/a/.npmrc", "//registry.npmjs.org/:_authToken=npm_abcdef123456\n");
  t.file("home/b/.npmrc", "registry=https://registry.npmjs.org/\n//r/:_authToken=${NPM_TOKEN}\n");
  t.file("root/.git-credentials", "https://bob:ghp_secret@github.com\n");
  t.file("root/.ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n...");
  t.file("root/.ssh/id_ed25519.pub", "ssh-ed25519 AAAA");
  t.file("src/pem.py", "HEADER = '-----BEGIN RSA PRIVATE KEY-----'\nFOOTER = '-----END RSA PRIVATE KEY-----'\n");
  auto r = scan(zstd(t.bytes()), zstd_type);
  ASSERT_EQ(r.status, LayerReport::Status::ok) << r.error;
  EXPECT_EQ(secret_paths(r), (std::vector<std::string>{"root/.aws/credentials", "root/.docker/config.json",
                                                       "home/a/.npmrc", "root/.git-credentials", "root/.ssh/id_ed25519"}));
  EXPECT_EQ(r.secrets[1].kind, "Docker registry credentials");
}

TEST(Scan, LargeFilesAreNotReadForSecretsAndTheBudgetIsReported) {
  ScanLimits limits;
  limits.content_budget = 10000;
  Tar t;
  t.file("big.pem", rsa_key + std::string(70 * 1024, '\n'));
  for (int i = 0; i < 5; ++i) t.file("f" + std::to_string(i), std::string(5000, 'z'));
  t.file("late.key", rsa_key);
  auto r = scan(t.bytes(), tar_type, limits);
  EXPECT_TRUE(r.secrets.empty());
  EXPECT_TRUE(r.secrets_budget_exhausted);
}

TEST(Scan, DpkgStatusAndDistrolessStatusD) {
  Tar t;
  t.file("var/lib/dpkg/status",
         "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nDescription: GNU C\n multi line\n\n"
         "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n");
  t.file("var/lib/dpkg/status.d/tzdata", "Package: tzdata\nVersion: 2024a-0+deb12u1\n");
  t.file("var/lib/dpkg/status.d/tzdata.md5sums", "abc  usr/share/zoneinfo/UTC\n");
  auto r = scan(gzip(t.bytes()));
  ASSERT_EQ(r.package_dbs.size(), 2u);
  EXPECT_EQ(r.package_dbs[0].packages, (std::vector<ocigate::policy::Package>{{"libc6", "2.36-9", "dpkg"}}));
  EXPECT_EQ(r.package_dbs[1].path, "var/lib/dpkg/status.d/tzdata");
  EXPECT_EQ(r.package_dbs[1].packages[0].name, "tzdata");
}

TEST(Scan, WhiteoutsAndOpaqueDirsAreRecordedNotEntries) {
  Tar t;
  t.file("usr/bin/.wh.su", "").file("opt/app/.wh..wh..opq", "").file("./etc/./x", "1");
  auto r = scan(gzip(t.bytes()));
  EXPECT_EQ(r.whiteouts, (std::vector<std::string>{"usr/bin/su"}));
  EXPECT_EQ(r.opaque_dirs, (std::vector<std::string>{"opt/app"}));
  EXPECT_EQ(r.path_hashes.size(), 1u);
}

TEST(Scan, HardLinkToASetuidFileIsSetuid) {
  auto r = scan(gzip(Tar().file("bin/su", "elf", 04755).hardlink("bin/su2", "bin/su").bytes()));
  EXPECT_EQ(paths(r.setuid_files), (std::vector<std::string>{"bin/su", "bin/su2"}));
  EXPECT_NE(r.setuid_files[1].detail.find("hard link to /bin/su"), std::string::npos);
}

TEST(Scan, ALaterEntryForTheSamePathInOneLayerReplacesTheEarlier) {
  auto r = scan(gzip(Tar().file("bin/mount", "elf", 04755).file("bin/mount", "elf", 0755).bytes()));
  EXPECT_TRUE(r.setuid_files.empty());
}

TEST(Scan, MediaTypeThatLiesIsSniffed) {
  std::string layer = busy_layer();
  auto as_tar = scan(gzip(layer), tar_type);
  EXPECT_EQ(as_tar.status, LayerReport::Status::ok) << as_tar.error;
  EXPECT_EQ(as_tar.compression, "gzip");
  auto zstd_as_gzip = scan(zstd(layer), docker_type);
  EXPECT_EQ(zstd_as_gzip.status, LayerReport::Status::ok) << zstd_as_gzip.error;
  EXPECT_EQ(zstd_as_gzip.compression, "zstd");
  auto plain_as_zstd = scan(layer, zstd_type);
  EXPECT_EQ(plain_as_zstd.status, LayerReport::Status::ok) << plain_as_zstd.error;
  EXPECT_EQ(as_tar.setuid_files, zstd_as_gzip.setuid_files);
}

TEST(Scan, TruncatedGzipIsAClearErrorKeepingEarlierFindings) {
  std::string gz = gzip(busy_layer() + std::string(200000, '\0'), 1);
  auto r = scan(gz.substr(0, gz.size() - 100));
  EXPECT_EQ(r.status, LayerReport::Status::error);
  EXPECT_NE(r.error.find("truncated gzip"), std::string::npos) << r.error;
  EXPECT_EQ(r.setuid_files.size(), 2u);
}

TEST(Scan, CorruptHeaderChecksumIsAnError) {
  std::string bytes = busy_layer();
  bytes[512 + 148] = '9';
  auto r = scan(gzip(bytes));
  EXPECT_EQ(r.status, LayerReport::Status::error);
  EXPECT_NE(r.error.find("checksum"), std::string::npos);
}

TEST(Scan, TarBombOfTinyEntriesIsReported) {
  Tar t;
  for (int i = 0; i < 30000; ++i) t.file("d/" + std::to_string(i), "");
  ScanLimits limits;
  limits.max_entries = 20000;
  auto r = scan(zstd(t.bytes()), zstd_type, limits);
  EXPECT_EQ(r.status, LayerReport::Status::error);
  EXPECT_NE(r.error.find("tar bomb"), std::string::npos);
  EXPECT_EQ(r.entries, 20000u);
}

TEST(Scan, OneByteChunksAndRandomSplitsGiveTheSameReport) {
  std::string layer = busy_layer();
  for (auto [bytes, type] : {std::pair{gzip(layer), gzip_type}, std::pair{zstd(layer), zstd_type}, std::pair{layer, tar_type}}) {
    auto whole = scan(bytes, type);
    ASSERT_EQ(whole.status, LayerReport::Status::ok) << whole.error;
    EXPECT_EQ(scan_in_pieces(bytes, {1}, type), whole);
    for (unsigned seed = 1; seed <= 20; ++seed) EXPECT_EQ(scan_randomly(bytes, seed, type), whole) << seed;
  }
}

TEST(Scan, ScanStreamReadsAnIstream) {
  std::istringstream in(zstd(busy_layer()));
  auto r = scan_stream(zstd_type, in, "sha256:abc");
  EXPECT_EQ(r.digest, "sha256:abc");
  EXPECT_EQ(r.setuid_files.size(), 2u);
}

TEST(Scan, ForeignLayersAreNotInspected) {
  LayerScanner scanner("sha256:f", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip");
  EXPECT_FALSE(scanner.feed(std::string_view("whatever")));
  auto r = scanner.finish();
  EXPECT_EQ(r.status, LayerReport::Status::foreign);
}

TEST(Scan, EmptyLayerIsFine) {
  EXPECT_EQ(scan(gzip(Tar().bytes())).status, LayerReport::Status::ok);
  EXPECT_EQ(scan("", tar_type).status, LayerReport::Status::ok);
}

TEST(Scan, ReportJsonRoundTrips) {
  auto r = scan(gzip(busy_layer()));
  auto back = LayerReport::from_json(r.to_json());
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, r);
  EXPECT_FALSE(LayerReport::from_json(nlohmann::json{{"digest", 1}}));
  EXPECT_FALSE(LayerReport::from_json(nlohmann::json::array()));
}

TEST(Scan, InvalidUtf8BecomesValidJson) {
  Tar t;
  t.file("usr/bin/\xff\xfesu", "elf", 04755).file("etc/passwd", "r\xc3(t:x:0:0::/:/bin/sh\n");
  t.file("lib/apk/db/installed", "P:pkg\x80\nV:1\xff\n");
  auto r = scan(gzip(t.bytes()));
  ASSERT_EQ(r.setuid_files.size(), 1u);
  EXPECT_EQ(r.setuid_files[0].path, "usr/bin/??su");
  std::string dumped = r.to_json().dump();  // throws on invalid UTF-8
  EXPECT_EQ(*LayerReport::from_json(nlohmann::json::parse(dumped)), r);
}

TEST(Scan, NormalisesPaths) {
  EXPECT_EQ(normalise_path("./usr//bin/"), "usr/bin");
  EXPECT_EQ(normalise_path("/etc/./passwd"), "etc/passwd");
  EXPECT_EQ(normalise_path("../../etc/passwd"), "etc/passwd");
  EXPECT_EQ(normalise_path("a/b/../c"), "a/c");
  EXPECT_EQ(normalise_path("./"), "");
}

// The uid is the third passwd column, the gid the fourth: an alias of root with another group
// is still root, and a user in group 0 is not.
TEST(Scan, PasswdUidIsTheThirdColumnNotTheGroup) {
  Tar t;
  t.file("etc/passwd", "toor:x:0:1000:alias of root:/root:/bin/sh\napp:x:1000:0::/home/app:/bin/sh\n");
  auto r = scan(gzip(t.bytes()));
  ASSERT_EQ(r.status, LayerReport::Status::ok) << r.error;
  ASSERT_TRUE(r.passwd);
  EXPECT_EQ(r.passwd->users.at("toor"), 0);
  EXPECT_EQ(r.passwd->users.at("app"), 1000);
}
