// Edge cases beyond the table: parameters, wrong-typed config fields, secrets that
// other checks' evidence would otherwise quote, and shell shapes.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <tuple>

#include "helpers.hpp"
#include "ocigate/policy/checks.hpp"
#include "ocigate/policy/engine.hpp"

namespace {

using namespace ocigate::policy;
using namespace ocigate::policy::test;

CheckResult run(CheckFn fn, const ImageFacts& facts, nlohmann::json params = nlohmann::json::object()) {
  static const Policy policy = default_policy();
  auto history = parse_history(facts.config);
  return fn(CheckInput{facts, policy, params, history});
}

ImageFacts with_history(std::initializer_list<std::string> created_by) {
  auto config = good_config();
  config["history"] = history(created_by);
  return facts_with(config);
}

ocigate::Result<Policy> parse_text(const std::string& yaml) {
  return parse_policy(YAML::Load(yaml)["policy"], "p.yaml");
}

Policy only(const std::string& id) {
  Policy policy = default_policy();
  policy.mode = Mode::enforce;
  for (auto& [name, setting] : policy.checks) setting.action = name == id ? Action::block : Action::off;
  stamp_version(policy);
  return policy;
}

}  // namespace

// ---- credential names

TEST(CredentialName, SplitsCamelCaseNames) {
  EXPECT_TRUE(credential_name("dbPassword"));
  EXPECT_TRUE(credential_name("githubToken"));
  EXPECT_TRUE(credential_name("stripeApiKey"));
  EXPECT_FALSE(credential_name("monkeyBusiness"));
}

TEST(CredentialName, NamesThatDescribeASecretAreNotOne) {
  for (const char* name : {"AUTH_TYPE", "SECRET_NAME", "TOKEN_ENDPOINT", "AUTH_USER", "PASSWORD_LENGTH", "AUTH_ENABLED"}) {
    EXPECT_FALSE(credential_name(name)) << name;
  }
  for (const char* name : {"ENCRYPTION_KEY", "JWT_SIGNING_KEY", "MASTER_KEY", "LICENSE_KEY", "OAUTH_AUTH_TOKEN"}) {
    EXPECT_TRUE(credential_name(name)) << name;
  }
}

TEST(CredentialName, ExtraNamesMatchAsWordRuns) {
  const std::vector<std::string> extra = {"ACME_LOGIN", "pin"};
  EXPECT_TRUE(credential_name("ACME_LOGIN", extra));
  EXPECT_TRUE(credential_name("CI_ACME_LOGIN", extra));
  EXPECT_TRUE(credential_name("SIM_PIN", extra));
  EXPECT_FALSE(credential_name("ACME_LOGIN_URL_X", {"LOGIN_ACME"}));
  EXPECT_FALSE(credential_name("SPINNER", extra));  // a word part, not a substring
  EXPECT_FALSE(credential_name("SIM_PIN"));
}

// ---- no-secrets

TEST(NoSecrets, ExtraNamesFromThePolicyApply) {
  auto policy = parse_text("policy:\n  mode: enforce\n  checks:\n    no-secrets: {extra_names: [ACME_LOGIN]}\n");
  ASSERT_TRUE(policy.ok()) << policy.error().message;
  EXPECT_EQ(policy->checks.at("no-secrets").params.at("extra_names"), nlohmann::json::array({"ACME_LOGIN"}));
  auto config = good_config();
  config["config"]["Env"] = {"ACME_LOGIN=bob:pw123456"};
  auto verdict = evaluate(*policy, facts_with(config));
  const Finding* f = finding(verdict, "no-secrets");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->outcome, Outcome::fail);
  EXPECT_EQ(f->evidence.find("pw123456"), std::string::npos) << f->evidence;
  EXPECT_EQ(finding(evaluate(default_policy(), facts_with(config)), "no-secrets")->outcome, Outcome::pass);
}

TEST(NoSecrets, FailsForALiteralCredentialAssignmentInARun) {
  for (const char* line : {"RUN /bin/sh -c export GITHUB_TOKEN=abc123def && make # buildkit",
                           "/bin/sh -c NPM_TOKEN=s3cr3tvalue npm ci",
                           "RUN /bin/sh -c echo \"DB_PASSWORD=hunter22\" > /app/.env # buildkit",
                           "RUN /bin/sh -c ./login --password=hunter22 # buildkit"}) {
    auto r = run(check_no_secrets, with_history({line}));
    EXPECT_EQ(r.outcome, Outcome::fail) << line;
    EXPECT_EQ(r.evidence.find("hunter22"), std::string::npos) << r.evidence;
    EXPECT_EQ(r.evidence.find("s3cr3tvalue"), std::string::npos) << r.evidence;
    EXPECT_EQ(r.origin, "image");
  }
}

TEST(NoSecrets, PassesForReferencesAndFeatureFlagsInARun) {
  for (const char* line : {"RUN /bin/sh -c TOKEN=$(cat /run/secrets/token) make # buildkit",
                           "RUN /bin/sh -c export API_KEY=${API_KEY} # buildkit",
                           "RUN /bin/sh -c ./configure --with-auth=pam --enable-auth=yes # buildkit",
                           "RUN /bin/sh -c AUTH=none make # buildkit",
                           "RUN /bin/sh -c PASSWORD_FILE=/run/secrets/pw make # buildkit"}) {
    EXPECT_EQ(run(check_no_secrets, with_history({line})).outcome, Outcome::pass) << line;
  }
}

TEST(NoSecrets, FailsForAnArgDefaultInClassicHistory) {
  auto r = run(check_no_secrets, with_history({"/bin/sh -c #(nop)  ARG DEPLOY_TOKEN=tok_12345"}));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_EQ(run(check_no_secrets, with_history({"/bin/sh -c #(nop)  ARG DEPLOY_TOKEN"})).outcome, Outcome::pass);
}

TEST(NoSecrets, IsUnknownWhenEnvOrLabelsHaveTheWrongType) {
  auto config = good_config();
  config["config"]["Env"] = "PASSWORD=x";
  EXPECT_EQ(run(check_no_secrets, facts_with(config)).outcome, Outcome::unknown);
  config = good_config();
  config["config"]["Env"] = {1, 2};
  EXPECT_EQ(run(check_no_secrets, facts_with(config)).outcome, Outcome::unknown);
  config = good_config();
  config["config"]["Labels"] = {"a", "b"};
  EXPECT_EQ(run(check_no_secrets, facts_with(config)).outcome, Outcome::unknown);
  // A finding elsewhere still fails.
  config["config"]["Env"] = {"API_KEY=abcdef"};
  EXPECT_EQ(run(check_no_secrets, facts_with(config)).outcome, Outcome::fail);
}

TEST(FindCredential, RecognisesUrlPasswordsButNotReferences) {
  auto match = find_credential("pip install --index-url=https://ci:pa55word@pypi.acme.io/simple x");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->kind, "URL password");
  EXPECT_EQ(match->token, "pa55word");
  EXPECT_FALSE(find_credential("git clone https://ci:${CI_TOKEN}@git.acme.io/x.git"));
  EXPECT_FALSE(find_credential("git clone ssh://git@github.com:22/acme/x.git"));
  EXPECT_FALSE(find_credential("curl https://example.com/a@b https://user@host/x"));
}

TEST(NoSecrets, FailsForAPasswordInAUrlOfARun) {
  auto r = run(check_no_secrets, with_history({"RUN /bin/sh -c pip install --index-url=https://ci:pa55word@pypi.acme.io/simple x # buildkit"}));
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_EQ(r.evidence.find("pa55word"), std::string::npos) << r.evidence;
}

TEST(FindCredential, RecognisesPgpPrivateKeyBlocks) {
  EXPECT_TRUE(find_credential("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
  EXPECT_FALSE(find_credential("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
}

TEST(RedactCredentials, CutsTokensAndUrlPasswords) {
  std::string token = "ghp_" + std::string(36, 'q');
  std::string out = redact_credentials("git clone https://x:" + token + "@github.com/a/b && echo AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(out.find(std::string(36, 'q')), std::string::npos) << out;
  EXPECT_EQ(out.find("IOSFODNN7EXAMPLE"), std::string::npos) << out;
  EXPECT_NE(out.find("git clone https://x:"), std::string::npos) << out;
  EXPECT_NE(out.find("@github.com/a/b"), std::string::npos) << out;
  std::string pw = redact_credentials("curl https://user:hunter22@example.com/x");
  EXPECT_EQ(pw.find("hunter22"), std::string::npos) << pw;
  EXPECT_NE(pw.find("https://user:hunt"), std::string::npos) << pw;
  EXPECT_EQ(redact_credentials("no secrets here: https://example.com/a@b"), "no secrets here: https://example.com/a@b");
  EXPECT_EQ(redact_credentials(""), "");
}

TEST(Evaluate, NoCheckQuotesACredentialInItsEvidence) {
  std::string token = "ghp_" + std::string(36, 'q');
  auto facts = with_history({"RUN /bin/sh -c apt-get update && curl -H 'Authorization: token " + token + "' x # buildkit",
                             "ADD https://bob:hunter22@example.com/tool.tgz /opt/ # buildkit"});
  Policy policy = default_policy();
  policy.mode = Mode::enforce;
  stamp_version(policy);
  auto json = evaluate(policy, facts).to_json().dump();
  EXPECT_EQ(json.find(std::string(36, 'q')), std::string::npos) << json;
  EXPECT_EQ(json.find("hunter22"), std::string::npos) << json;
  // The checks still say what they found.
  auto verdict = evaluate(policy, facts);
  EXPECT_EQ(finding(verdict, "no-update-alone")->outcome, Outcome::fail);
  EXPECT_EQ(finding(verdict, "copy-not-add")->outcome, Outcome::fail);
  EXPECT_EQ(finding(verdict, "no-secrets")->outcome, Outcome::fail);
}

// ---- wrong types are unknown, not fail or pass

TEST(NonRootUser, IsUnknownWhenUserIsNotAString) {
  auto config = good_config();
  config["config"]["User"] = 0;
  EXPECT_EQ(run(check_non_root_user, facts_with(config)).outcome, Outcome::unknown);
  config["config"]["User"] = nullptr;  // null is "not set": root
  EXPECT_EQ(run(check_non_root_user, facts_with(config)).outcome, Outcome::fail);
}

TEST(Healthcheck, IsUnknownWhenMalformed) {
  auto config = good_config();
  config["config"]["Healthcheck"] = "CMD true";
  EXPECT_EQ(run(check_healthcheck, facts_with(config)).outcome, Outcome::unknown);
  config["config"]["Healthcheck"] = {{"Test", "NONE"}};
  EXPECT_EQ(run(check_healthcheck, facts_with(config)).outcome, Outcome::unknown);
  config["config"]["Healthcheck"] = {{"Test", {1}}};
  EXPECT_EQ(run(check_healthcheck, facts_with(config)).outcome, Outcome::unknown);
  config["config"]["Healthcheck"] = nullptr;
  EXPECT_EQ(run(check_healthcheck, facts_with(config)).outcome, Outcome::fail);
}

TEST(ImageAge, IsUnknownWhenCreatedIsNotAString) {
  auto config = good_config();
  config["created"] = 1700000000;
  EXPECT_EQ(run(check_image_age, facts_with(config)).outcome, Outcome::unknown);
}

TEST(Evaluate, NeverThrowsOnWrongTypesAnywhere) {
  for (nlohmann::json config : {nlohmann::json::array(), nlohmann::json("x"), nlohmann::json{{"config", 1}},
                                nlohmann::json{{"config", {{"Env", {{"a", 1}}}, {"Labels", 3}, {"User", {1}}}},
                                               {"history", {{{"created_by", 5}}, 7, nullptr}},
                                               {"created", nullptr}}}) {
    auto facts = good_facts();
    facts.config = config;
    EXPECT_NO_THROW({
      auto verdict = evaluate(default_policy(), facts);
      (void)verdict.to_json().dump();
    }) << config.dump();
  }
}

// ---- copy-not-add

TEST(CopyNotAdd, AChecksummedDownloadIsOnlyANote) {
  auto r = run(check_copy_not_add,
               with_history({"ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d "
                             "https://example.com/tool.tgz /opt/ # buildkit"}));
  EXPECT_EQ(r.outcome, Outcome::pass);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("checksum"), std::string::npos);
  auto git = run(check_copy_not_add,
                 with_history({"ADD --checksum=sha256:abc https://github.com/acme/repo.git#v1 /src # buildkit"}));
  EXPECT_EQ(git.outcome, Outcome::fail);
}

// ---- no-update-alone

TEST(LoneIndexUpdate, SeesThroughQuotesAndGrouping) {
  EXPECT_TRUE(lone_index_update("sh -c \"apt-get update\""));
  EXPECT_TRUE(lone_index_update("(apk update)"));
  EXPECT_FALSE(lone_index_update("(apk update && apk add curl)"));
  EXPECT_FALSE(lone_index_update("bash -c 'apt-get update && apt-get install -y curl'"));
}

// ---- parsing

TEST(ParsePolicy, RefusesMalformedExtraNames) {
  for (const char* value : {"ACME", "[\"\"]", "[\"A B\"]", "[[A]]", "[\"123\"]"}) {
    auto policy = parse_text(std::string("policy:\n  checks:\n    no-secrets: {extra_names: ") + value + "}\n");
    ASSERT_FALSE(policy.ok()) << value;
    EXPECT_NE(policy.error().message.find("p.yaml:3:"), std::string::npos) << policy.error().message;
    EXPECT_NE(policy.error().message.find("policy.checks.no-secrets.extra_names"), std::string::npos)
        << policy.error().message;
  }
}

TEST(ParsePolicy, PrefetchTimeoutTakesADurationOrWholeSeconds) {
  auto seconds = parse_text("policy:\n  prefetch_timeout: 45\n");
  ASSERT_TRUE(seconds.ok()) << seconds.error().message;
  EXPECT_EQ(seconds->prefetch_timeout, std::chrono::seconds(45));
  auto minutes = parse_text("policy:\n  prefetch_timeout: 2m\n");
  ASSERT_TRUE(minutes.ok());
  EXPECT_EQ(minutes->prefetch_timeout, std::chrono::seconds(120));
  for (const char* bad : {"0", "-3", "1.5", "99999999999999999999"}) {
    EXPECT_FALSE(parse_text(std::string("policy:\n  prefetch_timeout: ") + bad + "\n").ok()) << bad;
  }
}

TEST(ParsePolicy, RefusesDuplicateKeysWithTheLineOfTheSecond) {
  for (const auto& [yaml, key, line] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"policy:\n  mode: enforce\n  mode: audit\n", "policy.mode", "p.yaml:3:"},
           {"policy:\n  checks:\n    healthcheck: off\n    healthcheck: block\n", "policy.checks.healthcheck", "p.yaml:4:"},
           {"policy:\n  checks:\n    image-age: {max_days: 3, max_days: 400}\n", "policy.checks.image-age.max_days", "p.yaml:3:"},
           {"policy:\n  rules:\n    - match: \"a/**\"\n      checks: {healthcheck: off}\n      match: \"b/**\"\n",
            "policy.rules[0].match", "p.yaml:5:"}}) {
    auto policy = parse_text(yaml);
    ASSERT_FALSE(policy.ok()) << yaml;
    EXPECT_NE(policy.error().message.find(line + " " + key + ": duplicate key"), std::string::npos)
        << policy.error().message;
  }
}

TEST(ParsePolicy, ARuleCanReplaceExtraNames) {
  auto policy = parse_text(
      "policy:\n  checks:\n    no-secrets: {extra_names: [A_LOGIN]}\n"
      "  rules:\n    - match: \"ghcr.io/**\"\n      checks: {no-secrets: {extra_names: [B_LOGIN]}}\n");
  ASSERT_TRUE(policy.ok()) << policy.error().message;
  EXPECT_EQ(policy->rules[0].checks.at("no-secrets").params.at("extra_names"), nlohmann::json::array({"B_LOGIN"}));
  EXPECT_EQ(policy->rules[0].checks.at("no-secrets").action, Action::block);
}

TEST(Evaluate, AReservedCheckIsUnknownAndSaysWhatIsMissing) {
  auto verdict = evaluate(only("no-setuid"), good_facts());
  ASSERT_EQ(verdict.findings.size(), 1u);
  EXPECT_EQ(verdict.findings[0].outcome, Outcome::unknown);
  EXPECT_EQ(verdict.findings[0].message.rfind("not evaluated: ", 0), 0u) << verdict.findings[0].message;
  EXPECT_EQ(verdict.decision, Decision::allow);
}
