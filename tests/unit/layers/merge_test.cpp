#include <gtest/gtest.h>

#include "helpers.hpp"
#include "ocigate/layers/merge.hpp"

namespace {

using namespace ocigate::layers;
using namespace ocigate::layers::test;
using ocigate::policy::FilesystemFacts;

LayerReport layer(const Tar& t, char id) {
  return scan_bytes(gzip_type, as_bytes(gzip(t.bytes())), "sha256:" + std::string(64, id));
}

std::vector<std::string> paths(const std::vector<ocigate::policy::FileFinding>& findings) {
  std::vector<std::string> out;
  for (const auto& f : findings) out.push_back(f.path);
  return out;
}

Tar base() {
  Tar t;
  t.dir("bin/").file("bin/su", "elf", 04755).file("usr/bin/passwd", "elf", 04755).file("usr/bin/chage", "elf", 02755);
  t.file("usr/bin/apt-get", "elf", 0755).file("usr/bin/dpkg", "elf", 0755);
  t.file("etc/passwd", "root:x:0:0::/root:/bin/bash\n");
  t.file("usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n");
  t.file("var/lib/dpkg/status", "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n"
                                "Package: apt\nStatus: install ok installed\nVersion: 2.6.1\n\n");
  t.dir("opt/vendor/").file("opt/vendor/helper", "elf", 04711);
  return t;
}

}  // namespace

TEST(Merge, SingleLayerFactsNameTheirLayer) {
  auto facts = merge({layer(base(), 'a')});
  EXPECT_EQ(paths(facts.setuid_files),
            (std::vector<std::string>{"/bin/su", "/usr/bin/passwd", "/usr/bin/chage", "/opt/vendor/helper"}));
  EXPECT_EQ(facts.setuid_files[0].layer, "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(paths(facts.installers), (std::vector<std::string>{"/usr/bin/apt-get", "/usr/bin/dpkg"}));
  EXPECT_EQ(facts.os_id, "debian");
  EXPECT_EQ(facts.os_version_id, "12");
  EXPECT_EQ(facts.packages.size(), 2u);
  EXPECT_TRUE(facts.has_passwd);
  EXPECT_TRUE(facts.not_inspected.empty());
}

TEST(Merge, WhiteoutOpaqueDirAndOverridesRemoveFacts) {
  Tar top;
  top.file("bin/.wh.su", "");                              // deleted
  top.file("usr/bin/passwd", "elf", 0755);                 // chmod u-s: replaced without the bit
  top.file("opt/vendor/.wh..wh..opq", "").file("opt/vendor/readme", "hi");  // opaque dir
  top.file("usr/bin/.wh.apt-get", "").file("usr/bin/.wh.dpkg", "");
  auto facts = merge({layer(base(), 'a'), layer(top, 'b')});
  EXPECT_EQ(paths(facts.setuid_files), (std::vector<std::string>{"/usr/bin/chage"}));
  EXPECT_TRUE(facts.installers.empty());
}

TEST(Merge, WhiteoutOfADirectoryRemovesEverythingBelow) {
  Tar top;
  top.file(".wh.opt", "");
  auto facts = merge({layer(base(), 'a'), layer(top, 'b')});
  for (const auto& f : facts.setuid_files) EXPECT_NE(f.path, "/opt/vendor/helper");
}

TEST(Merge, ANonDirectoryOverAParentDirectoryHidesItsChildren) {
  Tar top;
  top.symlink("opt/vendor", "/srv/vendor");
  auto facts = merge({layer(base(), 'a'), layer(top, 'b')});
  EXPECT_EQ(facts.setuid_files.size(), 3u);
  // A directory entry over a parent keeps the children.
  Tar dir_top;
  dir_top.dir("opt/vendor/");
  EXPECT_EQ(merge({layer(base(), 'a'), layer(dir_top, 'b')}).setuid_files.size(), 4u);
}

TEST(Merge, SetuidAddedInALaterLayerIsNamedByThatLayer) {
  Tar top;
  top.file("usr/local/bin/tool", "elf", 04755);
  auto facts = merge({layer(base(), 'a'), layer(top, 'b')});
  ASSERT_EQ(facts.setuid_files.size(), 5u);
  EXPECT_EQ(facts.setuid_files.back().layer, "sha256:" + std::string(64, 'b'));
}

TEST(Merge, SecretFilesFromEveryLayerEvenWhenDeletedLater) {
  Tar l1;
  l1.file("build/key.txt", "-----BEGIN PRIVATE KEY-----\n" + std::string(64, 'A') + "\n-----END PRIVATE KEY-----\n");
  Tar l2;
  l2.file("build/.wh.key.txt", "");
  auto facts = merge({layer(l1, 'a'), layer(l2, 'b')});
  ASSERT_EQ(facts.secret_files.size(), 1u);
  EXPECT_EQ(facts.secret_files[0].path, "/build/key.txt");
  EXPECT_EQ(facts.secret_files[0].layer, "sha256:" + std::string(64, 'a'));
}

TEST(Merge, PasswdAndPackagesFromTheTopmostVersion) {
  Tar top;
  top.file("etc/passwd", "root:x:0:0::/root:/bin/bash\nsvc:x:0:0::/:/bin/sh\napp:x:10001:10001::/:/bin/sh\n");
  top.file("var/lib/dpkg/status", "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n");
  top.file("etc/os-release", "ID=debian\nVERSION_ID=\"12.5\"\n");
  auto facts = merge({layer(base(), 'a'), layer(top, 'b')});
  EXPECT_EQ(facts.users.at("svc"), 0);
  EXPECT_EQ(facts.users.at("app"), 10001);
  EXPECT_EQ(facts.packages, (std::vector<ocigate::policy::Package>{{"libc6", "2.36-9", "dpkg"}}));
  EXPECT_EQ(facts.os_version_id, "12.5");
}

TEST(Merge, DeletedPasswdMeansNone) {
  Tar top;
  top.file("etc/.wh.passwd", "");
  auto facts = merge({layer(base(), 'a'), layer(top, 'b')});
  EXPECT_FALSE(facts.has_passwd);
  EXPECT_TRUE(facts.users.empty());
}

TEST(Merge, UninspectedLayersAreListed) {
  std::string gz = gzip(base().bytes());
  auto broken = scan_bytes(gzip_type, as_bytes(gz.substr(0, gz.size() / 2)), "sha256:bad");
  auto foreign = foreign_report("sha256:win", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip");
  auto facts = merge({broken, foreign});
  ASSERT_EQ(facts.not_inspected.size(), 2u);
  EXPECT_EQ(facts.not_inspected[0].rfind("sha256:bad: ", 0), 0u);
  EXPECT_EQ(facts.not_inspected[1], "sha256:win: foreign layer, not inspected");
}

TEST(Merge, FactsJsonRoundTrips) {
  Tar top;
  top.file("home/app/.env", "STRIPE_SECRET_KEY=sk_live_abcdef\n");
  auto facts = merge({layer(base(), 'a'), layer(top, 'b')});
  auto back = FilesystemFacts::from_json(facts.to_json());
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, facts);
  EXPECT_FALSE(FilesystemFacts::from_json(nlohmann::json::object()));
}

TEST(Merge, ReportsReadBackFromJsonMergeTheSame) {
  std::vector<LayerReport> reports{layer(base(), 'a'), layer(Tar().file("bin/.wh.su", ""), 'b')};
  std::vector<LayerReport> cached;
  for (const auto& r : reports) cached.push_back(*LayerReport::from_json(nlohmann::json::parse(r.to_json().dump())));
  EXPECT_EQ(merge(cached), merge(reports));
}

TEST(Merge, UsersKeepTheirUidWhateverTheirGroup) {
  Tar top;
  top.file("etc/passwd", "toor:x:0:1000::/root:/bin/sh\nops:x:1000:0::/:/bin/sh\n");
  auto facts = merge({layer(base(), 'a'), layer(top, 'b')});
  ASSERT_TRUE(facts.has_passwd);
  EXPECT_EQ(facts.users.at("toor"), 0);
  EXPECT_EQ(facts.users.at("ops"), 1000);
}
