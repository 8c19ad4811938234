#include <gtest/gtest.h>

#include "helpers.hpp"
#include "ocigate/policy/checks.hpp"

namespace {

using namespace ocigate::policy;
using namespace ocigate::policy::test;

CheckResult run(CheckFn fn, const ImageFacts& facts, nlohmann::json params = nlohmann::json::object(),
                const Policy& policy = default_policy()) {
  auto history = parse_history(facts.config);
  return fn(CheckInput{facts, policy, params, history});
}

ImageFacts with_user(const std::string& user) {
  auto config = good_config();
  config["config"]["User"] = user;
  return facts_with(config);
}

ImageFacts with_env(std::vector<std::string> env) {
  auto config = good_config();
  config["config"]["Env"] = env;
  return facts_with(config);
}

ImageFacts with_history(std::initializer_list<std::string> created_by) {
  auto config = good_config();
  config["history"] = history(created_by);
  return facts_with(config);
}

}  // namespace

// ---- non-root-user

TEST(NonRootUser, FailsForRootSpellings) {
  for (const char* user : {"", "root", "0", "0:0", "root:root", "root:1000", "0:1000", "00"}) {
    auto r = run(check_non_root_user, with_user(user));
    EXPECT_EQ(r.outcome, Outcome::fail) << "'" << user << "'";
    EXPECT_FALSE(r.remediation.empty());
  }
}

TEST(NonRootUser, PassesForOtherUsers) {
  for (const char* user : {"1000", "1000:1000", "nobody", "app:app", "10", "rootless"}) {
    EXPECT_EQ(run(check_non_root_user, with_user(user)).outcome, Outcome::pass) << user;
  }
}

TEST(NonRootUser, FailsWhenTheConfigOmitsUser) {
  auto config = good_config();
  config["config"].erase("User");
  EXPECT_EQ(run(check_non_root_user, facts_with(config)).outcome, Outcome::fail);
}

TEST(NonRootUser, IsUnknownWithoutAConfig) {
  auto facts = good_facts();
  facts.config.reset();
  EXPECT_EQ(run(check_non_root_user, facts).outcome, Outcome::unknown);
}

// ---- healthcheck

TEST(Healthcheck, PassesWithATest) { EXPECT_EQ(run(check_healthcheck, good_facts()).outcome, Outcome::pass); }

TEST(Healthcheck, FailsWhenMissingOrNone) {
  auto config = good_config();
  config["config"].erase("Healthcheck");
  EXPECT_EQ(run(check_healthcheck, facts_with(config)).outcome, Outcome::fail);
  config["config"]["Healthcheck"] = {{"Test", {"NONE"}}};
  EXPECT_EQ(run(check_healthcheck, facts_with(config)).outcome, Outcome::fail);
  config.erase("config");
  EXPECT_EQ(run(check_healthcheck, facts_with(config)).outcome, Outcome::fail);
}

TEST(Healthcheck, IsUnknownWithoutAConfig) {
  auto facts = good_facts();
  facts.config.reset();
  EXPECT_EQ(run(check_healthcheck, facts).outcome, Outcome::unknown);
}

// ---- no-secrets

TEST(CredentialName, RecognisesCredentialWords) {
  for (const char* name : {"DB_PASSWORD", "password", "MYSQL_ROOT_PASSWD", "SECRET_KEY", "GITHUB_TOKEN", "APIKEY",
                           "STRIPE_API_KEY", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "SSH_PRIVATE_KEY",
                           "GOOGLE_CREDENTIALS", "NPM_AUTH", "db-pass", "APP_PWD"}) {
    EXPECT_TRUE(credential_name(name)) << name;
  }
}

TEST(CredentialName, LeavesSafeNamesAlone) {
  for (const char* name : {"MONKEY", "GPG_KEY", "JWT_PUBLIC_KEY", "PUBLIC_KEY", "PASSWORD_FILE", "TOKEN_URL",
                           "SECRET_PATH", "NODE_VERSION", "PYTHON_SHA256", "PWD", "PATH", "KEYCLOAK_VERSION",
                           "AUTHOR", "TOKENIZER", "PASSPORT"}) {
    EXPECT_FALSE(credential_name(name)) << name;
  }
}

TEST(NoSecrets, FailsForACredentialNamedVariableWithAValue) {
  auto r = run(check_no_secrets, with_env({"PATH=/bin", "DB_PASSWORD=hunter22"}));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.evidence.find("DB_PASSWORD=hunt"), std::string::npos) << r.evidence;
  EXPECT_EQ(r.evidence.find("hunter22"), std::string::npos) << "evidence must be redacted: " << r.evidence;
}

TEST(NoSecrets, PassesForACredentialNameWithAnEmptyValue) {
  EXPECT_EQ(run(check_no_secrets, with_env({"DB_PASSWORD=", "API_TOKEN="})).outcome, Outcome::pass);
}

TEST(NoSecrets, MonkeyIsNotASecret) {
  EXPECT_EQ(run(check_no_secrets, with_env({"MONKEY=1", "GPG_KEY=A4A9406876FCBD3C456770C88C718D3B5072E1F5",
                                            "PASSWORD_FILE=/run/secrets/db"})).outcome,
            Outcome::pass);
}

TEST(NoSecrets, FailsForAKnownTokenFormatUnderAnInnocentName) {
  auto r = run(check_no_secrets, with_env({"CONFIG=ghp_" + std::string(36, 'x')}));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_EQ(r.evidence.find(std::string(36, 'x')), std::string::npos) << r.evidence;
}

TEST(NoSecrets, FailsForAnAwsKeyIdInsideARunLine) {
  auto r = run(check_no_secrets,
               with_history({"RUN /bin/sh -c aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE # buildkit"}));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_EQ(r.origin, "image");
  EXPECT_NE(r.evidence.find("history[1]"), std::string::npos) << r.evidence;
  EXPECT_EQ(r.evidence.find("AKIAIOSFODNN7EXAMPLE"), std::string::npos) << r.evidence;
}

TEST(NoSecrets, FailsForACredentialBuildArg) {
  auto r = run(check_no_secrets, with_history({"RUN |2 NPM_TOKEN=abcdef123 VERSION=1 /bin/sh -c npm ci # buildkit"}));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.evidence.find("NPM_TOKEN=abcd"), std::string::npos) << r.evidence;
  EXPECT_EQ(r.evidence.find("abcdef123"), std::string::npos);
  EXPECT_EQ(run(check_no_secrets, with_history({"|1 VERSION=1 /bin/sh -c make"})).outcome, Outcome::pass);
}

TEST(NoSecrets, FailsForASecretInALabelValue) {
  auto config = good_config();
  config["config"]["Labels"]["ci.token"] = "glpat-" + std::string(20, 'Z');
  EXPECT_EQ(run(check_no_secrets, facts_with(config)).outcome, Outcome::fail);
}

TEST(NoSecrets, SaysWhenTheSecretIsInTheBaseImage) {
  auto config = good_config();
  config["history"] = {{{"created_by", "/bin/sh -c echo AKIAIOSFODNN7EXAMPLE > /x"}},
                       {{"created_by", "/bin/sh -c #(nop) ADD file:5d9b in / "}},
                       {{"created_by", "RUN /bin/sh -c make # buildkit"}}};
  auto r = run(check_no_secrets, facts_with(config));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_EQ(r.origin, "base");
}

TEST(NoSecrets, IsUnknownWithoutHistoryWhenEnvIsClean) {
  auto config = good_config();
  config.erase("history");
  EXPECT_EQ(run(check_no_secrets, facts_with(config)).outcome, Outcome::unknown);
  config["config"]["Env"] = {"API_KEY=x1"};
  EXPECT_EQ(run(check_no_secrets, facts_with(config)).outcome, Outcome::fail);
}

TEST(FindCredential, RecognisesEachFormat) {
  const std::vector<std::string> samples = {
      "AKIAIOSFODNN7EXAMPLE",
      "ASIAIOSFODNN7EXAMPLE",
      "-----BEGIN RSA PRIVATE KEY-----",
      "-----BEGIN PRIVATE KEY-----",
      "-----BEGIN OPENSSH PRIVATE KEY-----",
      "ghp_" + std::string(36, 'a'),
      "gho_" + std::string(36, 'B'),
      "ghs_" + std::string(36, '1'),
      "github_pat_" + std::string(40, 'A'),
      "glpat-" + std::string(20, 'x'),
      "xoxb-1234567890-abcdef",
      "xoxp-1234567890-abcdef",
      "AIza" + std::string(35, 'Q'),
      "dckr_pat_" + std::string(27, 'k'),
      "npm_" + std::string(36, 'n'),
      "sk_live_" + std::string(24, 's'),
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
  };
  for (const auto& s : samples) {
    EXPECT_TRUE(find_credential("x=" + s + " y")) << s;
  }
}

TEST(FindCredential, IgnoresLookAlikes) {
  for (const std::string& s : std::vector<std::string>{"AKIA1234", "MONKEYAKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLEX",
                              "-----BEGIN PUBLIC KEY-----", "-----BEGIN CERTIFICATE-----", "ghp_short",
                              "glpat-short", "eyJhbGciOiJIUzI1NiJ9", "eyJa.eyJb", "sk_test_" + std::string(24, 's'),
                              "apk add --no-cache ca-certificates"}) {
    EXPECT_FALSE(find_credential(s)) << s;
  }
}

TEST(FindCredential, ScansLongInputsInLinearTime) {
  std::string big(1 << 20, 'A');  // every position starts like "AKIA"/"AIza" would
  EXPECT_FALSE(find_credential(big));
  std::string jwtish;
  for (int i = 0; i < 20000; ++i) jwtish += "eyJ.";
  EXPECT_FALSE(find_credential(jwtish));
}

TEST(Redact, ShowsAtMostFourCharacters) {
  EXPECT_EQ(redact("A", "supersecret"), "A=supe\u2026");
  EXPECT_EQ(redact("A", "ab"), "A=a\u2026");
  EXPECT_EQ(redact("A", "x"), "A=\u2026");
}

// ---- copy-not-add

TEST(CopyNotAdd, FailsForRemoteAdds) {
  for (const char* line : {"ADD https://example.com/tool.tgz /opt/ # buildkit", "ADD --chown=1 https://x/y /z # buildkit",
                           "ADD http://x/y /z", "ADD git@github.com:acme/repo.git /src # buildkit",
                           "ADD https://github.com/acme/repo.git#v1 /src # buildkit",
                           "/bin/sh -c #(nop) ADD [\"https://x/y\",\"/z\"]"}) {
    auto r = run(check_copy_not_add, with_history({line}));
    EXPECT_EQ(r.outcome, Outcome::fail) << line;
    EXPECT_EQ(r.origin, "image");
  }
}

TEST(CopyNotAdd, OnlyNotesALocalAdd) {
  auto r = run(check_copy_not_add, with_history({"ADD app.tar.gz /opt/ # buildkit", "/bin/sh -c #(nop) ADD file:abc in /app/"}));
  EXPECT_EQ(r.outcome, Outcome::pass);
  EXPECT_EQ(r.notes.size(), 2u);
}

TEST(CopyNotAdd, NeverFlagsTheBaseRootfs) {
  auto config = good_config();
  config["history"] = {{{"created_by", "ADD alpine-minirootfs-3.19.1-x86_64.tar.gz / # buildkit"}},
                       {{"created_by", "CMD [\"/bin/sh\"] # buildkit"}}};
  auto r = run(check_copy_not_add, facts_with(config));
  EXPECT_EQ(r.outcome, Outcome::pass);
  EXPECT_TRUE(r.notes.empty());
  EXPECT_EQ(run(check_copy_not_add, good_facts()).notes.size(), 0u);
}

TEST(CopyNotAdd, IsUnknownWithoutHistory) {
  auto config = good_config();
  config.erase("history");
  EXPECT_EQ(run(check_copy_not_add, facts_with(config)).outcome, Outcome::unknown);
}

// ---- no-update-alone

TEST(LoneIndexUpdate, UpdateFollowedByInstallPasses) {
  for (const char* cmd : {"apt-get update && apt-get install -y x", "apt-get update; apt-get install -y x",
                          "apk add --update x", "apk update && apk add x", "apt update && apt upgrade -y",
                          "apt-get -o Acquire::Retries=3 update && apt-get -o Dpkg::Options::=--force-confold install -y x",
                          "DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y x",
                          "yum makecache && yum install -y x", "dnf update -y openssl", "zypper refresh && zypper in -y x",
                          "echo hello", "make install", "set -eux; apt-get update; apt-get install -y --no-install-recommends ca-certificates; rm -rf /var/lib/apt/lists/*",
                          "sudo apt-get update && sudo /usr/bin/apt-get install -y x"}) {
    EXPECT_FALSE(lone_index_update(cmd)) << cmd;
  }
}

TEST(LoneIndexUpdate, UpdateAloneFails) {
  for (const char* cmd : {"apk update", "apt-get update", "apt-get -qq update", "apt update",
                          "apt-get install -y x && apt-get update", "yum makecache", "dnf -y update", "zypper ref",
                          "zypper refresh", "if true; then apt-get update; fi", "/usr/bin/apt-get update || true"}) {
    EXPECT_TRUE(lone_index_update(cmd)) << cmd;
  }
}

TEST(NoUpdateAlone, FailsForALoneUpdateRunWithOrigin) {
  auto r = run(check_no_update_alone, with_history({"/bin/sh -c apk update", "RUN /bin/sh -c apk add x # buildkit"}));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_EQ(r.origin, "image");
  EXPECT_NE(r.evidence.find("history[1]"), std::string::npos) << r.evidence;
}

TEST(NoUpdateAlone, PassesForACombinedRun) {
  EXPECT_EQ(run(check_no_update_alone,
                with_history({"RUN /bin/sh -c apt-get update && apt-get install -y x # buildkit"})).outcome,
            Outcome::pass);
}

TEST(NoUpdateAlone, DoesNotTreatAnEchoedCommandInMetadataAsARun) {
  EXPECT_EQ(run(check_no_update_alone, with_history({"/bin/sh -c #(nop)  CMD [\"apt-get\", \"update\"]"})).outcome,
            Outcome::pass);
}

// ---- history classification

TEST(ClassifyCreatedBy, RecognisesBuilderShapes) {
  auto nop = classify_created_by("/bin/sh -c #(nop)  CMD [\"sh\"]");
  EXPECT_EQ(nop.instruction, "CMD");
  auto classic = classify_created_by("/bin/sh -c apt-get update");
  EXPECT_EQ(classic.instruction, "RUN");
  EXPECT_EQ(classic.body, "apt-get update");
  auto args = classify_created_by("RUN |2 A=x B=y /bin/sh -c make all # buildkit");
  EXPECT_EQ(args.instruction, "RUN");
  EXPECT_EQ(args.body, "make all");
  ASSERT_EQ(args.build_args.size(), 2u);
  EXPECT_EQ(args.build_args[1].first, "B");
  EXPECT_EQ(args.build_args[1].second, "y");
  auto classic_args = classify_created_by("|1 X=1 /bin/sh -c make");
  EXPECT_EQ(classic_args.instruction, "RUN");
  EXPECT_EQ(classic_args.body, "make");
  auto pipefail = classify_created_by("RUN /bin/bash -o pipefail -c curl x | sh # buildkit");
  EXPECT_EQ(pipefail.instruction, "RUN");
  EXPECT_EQ(pipefail.body, "curl x | sh");
  auto exec_form = classify_created_by("RUN apt-get update # buildkit");
  EXPECT_EQ(exec_form.instruction, "RUN");
  auto add = classify_created_by("ADD https://x/y /z # buildkit");
  EXPECT_EQ(add.instruction, "ADD");
  EXPECT_EQ(add_sources(add.body), std::vector<std::string>{"https://x/y"});
  auto unknown = classify_created_by("nix-build something");
  EXPECT_EQ(unknown.instruction, "");
}

TEST(ParseHistory, MarksEntriesUpToTheLastRootfsAsBase) {
  auto config = good_config();
  auto entries = parse_history(config);
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->size(), 4u);
  EXPECT_TRUE((*entries)[0].base);
  EXPECT_FALSE((*entries)[1].base);
  EXPECT_FALSE((*entries)[3].base);
}

TEST(ParseHistory, AnOwnCopyIntoASubdirectoryIsNotTheBase) {
  auto config = good_config();
  config["history"] = history({"/bin/sh -c #(nop) COPY file:abc in /usr/local/bin/ "});
  auto entries = parse_history(config);
  ASSERT_TRUE(entries);
  EXPECT_FALSE(entries->back().base);
}

TEST(ParseHistory, IsNulloptWithoutHistoryAndToleratesJunk) {
  EXPECT_FALSE(parse_history(std::nullopt));
  EXPECT_FALSE(parse_history(nlohmann::json{{"history", nlohmann::json::array()}}));
  EXPECT_FALSE(parse_history(nlohmann::json{{"history", "x"}}));
  auto junk = parse_history(nlohmann::json{{"history", {1, nullptr, {{"created_by", 5}}}}});
  ASSERT_TRUE(junk);
  EXPECT_EQ(junk->size(), 3u);
}

// ---- pinned-base

TEST(PinnedBase, PassesForADigestAnnotationOrLabel) {
  EXPECT_EQ(run(check_pinned_base, good_facts()).outcome, Outcome::pass);
  auto config = good_config();
  config["config"]["Labels"] = nlohmann::json::object();
  auto facts = facts_with(config);
  facts.manifest_annotations["org.opencontainers.image.base.name"] = "docker.io/library/alpine@sha256:" + std::string(64, 'd');
  EXPECT_EQ(run(check_pinned_base, facts).outcome, Outcome::pass);
}

TEST(PinnedBase, FailsForATagOnlyOrInvalidBase) {
  auto config = good_config();
  config["config"]["Labels"] = {{"org.opencontainers.image.base.digest", "sha256:short"}};
  auto facts = facts_with(config);
  facts.manifest_annotations["org.opencontainers.image.base.name"] = "docker.io/library/alpine:3.19";
  auto r = run(check_pinned_base, facts);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.evidence.find("alpine:3.19"), std::string::npos);
}

// ---- pinned-reference

TEST(PinnedReference, FailsForLatestOrNoTag) {
  auto facts = good_facts();
  facts.reference = "latest";
  EXPECT_EQ(run(check_pinned_reference, facts).outcome, Outcome::fail);
  facts.reference = "";
  EXPECT_EQ(run(check_pinned_reference, facts).outcome, Outcome::fail);
}

TEST(PinnedReference, PassesForVersionedTagsAndDigests) {
  auto facts = good_facts();
  EXPECT_EQ(run(check_pinned_reference, facts).outcome, Outcome::pass);
  facts.reference = digest_b;
  EXPECT_EQ(run(check_pinned_reference, facts).outcome, Outcome::pass);
}

TEST(PinnedReference, RequireDigestRefusesTags) {
  auto facts = good_facts();
  auto r = run(check_pinned_reference, facts, {{"require_digest", true}});
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.remediation.find(digest_a), std::string::npos) << r.remediation;
  facts.reference = digest_b;
  EXPECT_EQ(run(check_pinned_reference, facts, {{"require_digest", true}}).outcome, Outcome::pass);
}

// ---- trusted-source

TEST(TrustedSource, PassesWithANoteWhenNotConfigured) {
  auto r = run(check_trusted_source, good_facts());
  EXPECT_EQ(r.outcome, Outcome::pass);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("no trusted_sources configured"), std::string::npos);
}

TEST(TrustedSource, MatchesGlobsOverUpstreamAndRepository) {
  Policy policy = default_policy();
  policy.trusted_sources = {"docker.io/library/**", "ghcr.io/acme/*"};
  auto facts = good_facts();
  EXPECT_EQ(run(check_trusted_source, facts, {}, policy).outcome, Outcome::fail);
  facts.repository = "library/alpine";
  EXPECT_EQ(run(check_trusted_source, facts, {}, policy).outcome, Outcome::pass);
  facts.upstream = "ghcr.io";
  facts.repository = "acme/team/app";
  EXPECT_EQ(run(check_trusted_source, facts, {}, policy).outcome, Outcome::fail);
}

// ---- image-age

TEST(ImageAge, FailsWhenOlderThanMaxDays) {
  auto config = good_config();
  config["created"] = "2025-01-01T00:00:00+02:00";
  EXPECT_EQ(run(check_image_age, facts_with(config), {{"max_days", 90}}).outcome, Outcome::fail);
  EXPECT_EQ(run(check_image_age, facts_with(config), {{"max_days", 200}}).outcome, Outcome::pass);
}

TEST(ImageAge, CountsFromTheExactCreatedTime) {
  auto config = good_config();
  config["created"] = "2025-03-17T12:00:00Z";  // exactly 90 days before test_now()
  EXPECT_EQ(run(check_image_age, facts_with(config), {{"max_days", 90}}).outcome, Outcome::pass);
  config["created"] = "2025-03-17T11:59:59.5Z";
  EXPECT_EQ(run(check_image_age, facts_with(config), {{"max_days", 90}}).outcome, Outcome::fail);
}

TEST(ImageAge, IsUnknownForMissingMalformedOrPlaceholderDates) {
  auto config = good_config();
  for (const char* created : {"", "yesterday", "2025-06-01", "2025-06-01T10:00:00", "2025-13-01T00:00:00Z",
                              "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"}) {
    config["created"] = created;
    EXPECT_EQ(run(check_image_age, facts_with(config)).outcome, Outcome::unknown) << created;
  }
  config.erase("created");
  EXPECT_EQ(run(check_image_age, facts_with(config)).outcome, Outcome::unknown);
}

// ---- reserved checks

TEST(ReservedChecks, AreNeverPass) {
  // no-setuid and no-package-manager: filesystem_test.cpp (unknown without layer inspection).
  for (CheckFn fn : {check_vulnerabilities}) {
    auto r = run(fn, good_facts());
    EXPECT_EQ(r.outcome, Outcome::unknown);
    EXPECT_EQ(r.message.rfind("not evaluated: ", 0), 0u) << r.message;
    EXPECT_NE(r.message.find("is not built yet"), std::string::npos);
  }
}

TEST(NoSecrets, FindsAnEnvSecretLaterOverwrittenInTheHistory) {
  auto r = run(check_no_secrets, with_history({"ENV DB_PASSWORD=\"hunter22 x\" MODE=prod # buildkit",
                                               "/bin/sh -c #(nop)  ENV API_TOKEN s3cr3tvalue",
                                               "ENV DB_PASSWORD= # buildkit"}));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.evidence.find("ENV DB_PASSWORD=hunt"), std::string::npos) << r.evidence;
  EXPECT_NE(r.evidence.find("ENV API_TOKEN=s3cr"), std::string::npos) << r.evidence;
  EXPECT_EQ(r.origin, "image");
  EXPECT_EQ(run(check_no_secrets, with_history({"ENV MONKEY=1 PASSWORD_FILE=/run/x # buildkit"})).outcome,
            Outcome::pass);
}

TEST(NoSecrets, EnvFindingsCarryNoOrigin) {
  EXPECT_EQ(run(check_no_secrets, with_env({"API_KEY=abcdef"})).origin, "");
}

TEST(NoUpdateAlone, EvidenceStaysShortForManyOffenders) {
  auto config = good_config();
  config["history"] = history({"/bin/sh -c apk update", "/bin/sh -c apk update", "/bin/sh -c apk update",
                               "/bin/sh -c apk update", "/bin/sh -c apk update", "/bin/sh -c apk update",
                               "/bin/sh -c apk update"});
  auto r = run(check_no_update_alone, facts_with(config));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.evidence.find("and 2 more"), std::string::npos) << r.evidence;
}
