// The checks that read layer-inspection facts (FilesystemFacts built by hand here; the layers
// module's own tests build them from synthesized layers).

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "helpers.hpp"
#include "ocigate/policy/checks.hpp"

namespace {

using namespace ocigate::policy;
using namespace ocigate::policy::test;

const std::string layer_a = "sha256:" + std::string(64, 'a');

CheckResult run(CheckFn fn, const ImageFacts& facts, nlohmann::json params = nlohmann::json::object()) {
  auto history = parse_history(facts.config);
  Policy policy = default_policy();
  return fn(CheckInput{facts, policy, params, history});
}

ImageFacts with_fs(FilesystemFacts fs) {
  auto facts = good_facts();
  facts.filesystem = std::move(fs);
  return facts;
}

FilesystemFacts setuid_fs() {
  FilesystemFacts fs;
  fs.setuid_files = {{"/usr/bin/passwd", layer_a, "setuid, mode 4755"}, {"/usr/bin/wall", layer_a, "setgid, mode 2755"}};
  return fs;
}

ocigate::Result<Policy> parse_text(const std::string& yaml) {
  return parse_policy(YAML::Load(yaml)["policy"], "ocigate.yaml");
}

}  // namespace

// ---- no-setuid

TEST(NoSetuid, IsUnknownWithoutLayerInspection) {
  for (CheckFn fn : {check_no_setuid, check_no_package_manager}) {
    auto r = run(fn, good_facts());
    EXPECT_EQ(r.outcome, Outcome::unknown);
    EXPECT_EQ(r.message.rfind("not evaluated: ", 0), 0u) << r.message;
  }
}

TEST(NoSetuid, FailsNamingPathAndLayer) {
  auto r = run(check_no_setuid, with_fs(setuid_fs()));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.evidence.find("/usr/bin/passwd (setuid, mode 4755, layer sha256:aaaaaaaaaaaa)"), std::string::npos) << r.evidence;
  EXPECT_NE(r.evidence.find("/usr/bin/wall"), std::string::npos);
  EXPECT_FALSE(r.remediation.empty());
}

TEST(NoSetuid, AllowListPassesListedPaths) {
  auto one = run(check_no_setuid, with_fs(setuid_fs()), {{"allow", {"/usr/bin/passwd"}}});
  EXPECT_EQ(one.outcome, Outcome::fail);
  EXPECT_EQ(one.evidence.find("passwd"), std::string::npos);
  EXPECT_EQ(run(check_no_setuid, with_fs(setuid_fs()), {{"allow", {"/usr/bin/*"}}}).outcome, Outcome::pass);
}

TEST(NoSetuid, PassesWithoutSetuidFilesUnlessALayerWasNotInspected) {
  EXPECT_EQ(run(check_no_setuid, with_fs(FilesystemFacts{})).outcome, Outcome::pass);
  FilesystemFacts partial;
  partial.not_inspected = {layer_a + ": truncated gzip stream"};
  auto r = run(check_no_setuid, with_fs(partial));
  EXPECT_EQ(r.outcome, Outcome::unknown);
  EXPECT_NE(r.message.find("truncated gzip"), std::string::npos);
  auto found = setuid_fs();
  found.not_inspected = partial.not_inspected;
  EXPECT_EQ(run(check_no_setuid, with_fs(found)).outcome, Outcome::fail);
}

// ---- no-package-manager

TEST(NoPackageManager, FailsWhenAnInstallerIsPresent) {
  FilesystemFacts fs;
  fs.installers = {{"/sbin/apk", layer_a, "apk"}};
  auto r = run(check_no_package_manager, with_fs(fs));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.evidence.find("/sbin/apk"), std::string::npos);
}

TEST(NoPackageManager, PassesWithoutInstallersAndCountsPackages) {
  FilesystemFacts fs;
  fs.packages = {{"libc6", "2.36-9", "dpkg"}, {"tzdata", "2024a", "dpkg"}};
  EXPECT_EQ(run(check_no_package_manager, with_fs(fs)).outcome, Outcome::pass);
  EXPECT_EQ(run(check_no_package_manager, with_fs(fs), {{"max_packages", 2}}).outcome, Outcome::pass);
  auto r = run(check_no_package_manager, with_fs(fs), {{"max_packages", 1}});
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.message.find("2 packages installed, more than max_packages 1"), std::string::npos) << r.message;
  EXPECT_EQ(run(check_no_package_manager, good_facts()).outcome, Outcome::unknown);
}

// ---- no-secrets, with files

TEST(NoSecrets, FailsForSecretFilesInAnyLayer) {
  FilesystemFacts fs;
  fs.secret_files = {{"/app/config/settings.dat", layer_a, "private key: -----BEGIN RSA PRIVATE KEY-----"}};
  auto r = run(check_no_secrets, with_fs(fs));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.evidence.find("file /app/config/settings.dat"), std::string::npos) << r.evidence;
}

TEST(NoSecrets, CleanLayersKeepTheConfigLevelVerdict) {
  EXPECT_EQ(run(check_no_secrets, with_fs(FilesystemFacts{})).outcome, Outcome::pass);
  auto config = good_config();
  config["config"]["Env"] = {"DB_PASSWORD=hunter2"};
  auto facts = facts_with(config);
  facts.filesystem = FilesystemFacts{};
  EXPECT_EQ(run(check_no_secrets, facts).outcome, Outcome::fail);
}

// ---- non-root-user, with /etc/passwd

TEST(NonRootUser, FailsForANameMappingToUidZero) {
  FilesystemFacts fs;
  fs.has_passwd = true;
  fs.users = {{"root", 0}, {"admin", 0}, {"app", 10001}};
  auto facts = with_fs(fs);
  (*facts.config)["config"]["User"] = "admin";
  auto r = run(check_non_root_user, facts);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.message.find("uid 0 in /etc/passwd"), std::string::npos);
  (*facts.config)["config"]["User"] = "app:app";
  EXPECT_EQ(run(check_non_root_user, facts).outcome, Outcome::pass);
  (*facts.config)["config"]["User"] = "10001";
  EXPECT_EQ(run(check_non_root_user, facts).outcome, Outcome::pass);
}

// ---- parameters

TEST(FilesystemParams, AllowAndMaxPackagesParse) {
  auto p = parse_text(
      "policy:\n  checks:\n    no-setuid: {action: warn, allow: [/usr/bin/passwd, \"/opt/**\"]}\n"
      "    no-package-manager: {action: block, max_packages: 50}\n");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->checks.at("no-setuid").params.at("allow"), nlohmann::json({"/usr/bin/passwd", "/opt/**"}));
  EXPECT_EQ(p->checks.at("no-package-manager").params.at("max_packages"), 50);
  auto d = default_policy();
  EXPECT_EQ(d.checks.at("no-setuid").params.at("allow"), nlohmann::json::array());
  EXPECT_TRUE(d.checks.at("no-package-manager").params.at("max_packages").is_null());
}

TEST(FilesystemParams, BadPathsAreRefused) {
  for (const char* bad : {"[usr/bin/passwd]", "[\"/usr/bin/with space\"]", "/usr/bin/passwd", "[\"/\"]"}) {
    auto p = parse_text(std::string("policy:\n  checks:\n    no-setuid: {allow: ") + bad + "}\n");
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_NE(p.error().message.find("policy.checks.no-setuid.allow"), std::string::npos) << p.error().message;
  }
  EXPECT_FALSE(parse_text("policy:\n  checks:\n    no-package-manager: {max_packages: 0}\n").ok());
}

TEST(FilesystemEngine, VerdictCarriesLayerFindings) {
  Policy policy = default_policy();
  policy.mode = Mode::enforce;
  stamp_version(policy);
  auto verdict = evaluate(policy, with_fs(setuid_fs()));
  const Finding* f = finding(verdict, "no-setuid");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->outcome, Outcome::fail);
  EXPECT_EQ(verdict.decision, Decision::block);
}
