#include "ocigate/auth/auth.hpp"

#include <memory>

#include <gtest/gtest.h>
#include <openssl/x509.h>

namespace ocigate::auth {
namespace {

// Made with `htpasswd -nbB -C 5 alice 'correct horse'` and `htpasswd -nbB -C 5 bob 's3cret:with:colons'`.
constexpr const char* alice_hash = "$2y$05$LGZ1Hb/RmgxlFJmL4.0QWex4PItBX.kCUaBjjtgGLE5IS5clqoLL2";
constexpr const char* bob_hash = "$2y$05$vo142QdzBz.hMtM/MRQwKegwbV9CVo5gL6EHvYW1eE7DPHzoZcTUa";
// sha256("tok-ci-123")
constexpr const char* ci_token_sha256 = "e4ea8107aa5ef8385652a74c9a457b267f0025cd322ccccb8658bee1f80e278d";

std::string basic(const std::string& user_pass) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < user_pass.size(); i += 3) {
    unsigned v = (unsigned char)user_pass[i] << 16 | (unsigned char)user_pass[i + 1] << 8 | (unsigned char)user_pass[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += table[(v >> s) & 63];
  }
  if (i + 1 == user_pass.size()) {
    unsigned v = (unsigned char)user_pass[i] << 16;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == user_pass.size()) {
    unsigned v = (unsigned char)user_pass[i] << 16 | (unsigned char)user_pass[i + 1] << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += "=";
  }
  return "Basic " + out;
}

config::Located glob(std::string value) { return config::Located{std::move(value), "test", 1}; }

config::Auth sample_config() {
  config::Auth auth;
  auth.tokens.push_back({"ci", ci_token_sha256});
  auth.groups.push_back({"devs", {"bob"}});
  auth.anonymous = {glob("docker.io/library/**")};
  config::AuthRule alice_rule;
  alice_rule.users = {"alice"};
  alice_rule.repositories = {glob("docker.io/acme/*"), glob("ghcr.io/**")};
  config::AuthRule devs_rule;
  devs_rule.groups = {"devs"};
  devs_rule.repositories = {glob("docker.io/devs/**")};
  config::AuthRule ci_rule;
  ci_rule.users = {"ci"};
  ci_rule.repositories = {glob("**")};
  auth.rules = {alice_rule, devs_rule, ci_rule};
  return auth;
}

Authenticator sample() { return Authenticator(sample_config(), {{"alice", alice_hash}, {"bob", bob_hash}}); }

TEST(HtpasswdTest, ParsesBcryptEntriesCommentsAndCrlf) {
  auto parsed = parse_htpasswd(std::string("# users\n\nalice:") + alice_hash + "\r\nbob:" + bob_hash + "\n", "pw");
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].first, "alice");
  EXPECT_EQ((*parsed)[1].second, bob_hash);
}

TEST(HtpasswdTest, RefusesNonBcryptWithLineAndWithoutTheHash) {
  auto md5 = parse_htpasswd("alice:$2y$05$ok\ncarol:$apr1$abc$0123456789abcdef012345\n", "pw");
  ASSERT_FALSE(md5);
  EXPECT_NE(md5.error().message.find("pw:1: user 'alice'"), std::string::npos) << md5.error().message;
  auto sha = parse_htpasswd(std::string("alice:") + alice_hash + "\ncarol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "pw");
  ASSERT_FALSE(sha);
  EXPECT_NE(sha.error().message.find("pw:2:"), std::string::npos);
  EXPECT_EQ(sha.error().message.find("W6ph5"), std::string::npos);
  EXPECT_FALSE(parse_htpasswd("no colon here\n", "pw"));
  EXPECT_FALSE(parse_htpasswd(std::string("a:") + alice_hash + "\na:" + alice_hash + "\n", "pw"));
}

TEST(BcryptTest, VerifiesHtpasswdHashes) {
  EXPECT_TRUE(bcrypt_verify("correct horse", alice_hash));
  EXPECT_FALSE(bcrypt_verify("correct horsf", alice_hash));
  EXPECT_FALSE(bcrypt_verify("", alice_hash));
  EXPECT_TRUE(bcrypt_verify("s3cret:with:colons", bob_hash));
}

TEST(BcryptTest, KnownAnswerVectorFromOpenwallCryptBlowfish) {
  EXPECT_TRUE(bcrypt_verify("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
  EXPECT_FALSE(bcrypt_verify("U*V", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
}

TEST(BcryptTest, MalformedHashNeverVerifies) {
  EXPECT_FALSE(bcrypt_verify("x", "$2y$05$short"));
  EXPECT_FALSE(bcrypt_verify("x", "*0"));
  EXPECT_FALSE(bcrypt_verify("x", ""));
  EXPECT_FALSE(bcrypt_verify(std::string("correct horse\0x", 15), alice_hash));
}

TEST(AuthorizationHeaderTest, ParsesBasicBearerAndAnonymous) {
  auto c = parse_authorization(basic("alice:correct horse"));
  EXPECT_EQ(c.kind, Credentials::Kind::basic);
  EXPECT_EQ(c.user, "alice");
  EXPECT_EQ(c.secret, "correct horse");
  auto colons = parse_authorization(basic("bob:s3cret:with:colons"));
  EXPECT_EQ(colons.secret, "s3cret:with:colons");
  EXPECT_EQ(parse_authorization("").kind, Credentials::Kind::none);
  EXPECT_EQ(parse_authorization("Basic Og==").kind, Credentials::Kind::none);  // skopeo without credentials
  EXPECT_EQ(parse_authorization("bearer abc").kind, Credentials::Kind::bearer);
  EXPECT_EQ(parse_authorization("Basic !!!!").kind, Credentials::Kind::malformed);
  EXPECT_EQ(parse_authorization(basic("nocolon")).kind, Credentials::Kind::malformed);
  EXPECT_EQ(parse_authorization(basic(":password")).kind, Credentials::Kind::malformed);
  EXPECT_EQ(parse_authorization("Digest x").kind, Credentials::Kind::malformed);
  EXPECT_EQ(parse_authorization("Bearer ").kind, Credentials::Kind::malformed);
}

TEST(AuthenticatorTest, AuthenticatesPasswordsTokensAndAnonymous) {
  auto a = sample();
  EXPECT_EQ(a.authenticate(parse_authorization(basic("alice:correct horse"))), std::optional<std::string>("alice"));
  EXPECT_EQ(a.authenticate(parse_authorization(basic("alice:wrong"))), std::nullopt);
  EXPECT_EQ(a.authenticate(parse_authorization(basic("mallory:correct horse"))), std::nullopt);
  EXPECT_EQ(a.authenticate(parse_authorization("Bearer tok-ci-123")), std::optional<std::string>("ci"));
  EXPECT_EQ(a.authenticate(parse_authorization("Bearer tok-ci-124")), std::nullopt);
  // docker login -u ci -p <token>
  EXPECT_EQ(a.authenticate(parse_authorization(basic("ci:tok-ci-123"))), std::optional<std::string>("ci"));
  EXPECT_EQ(a.authenticate(parse_authorization(basic("alice:tok-ci-123"))), std::nullopt);
  EXPECT_EQ(a.authenticate(parse_authorization("")), std::optional<std::string>(""));
  EXPECT_EQ(a.authenticate(parse_authorization("Basic !!!!")), std::nullopt);
}

TEST(AuthenticatorTest, RemembersVerifiedPasswordsButNotOtherPasswords) {
  auto a = sample();
  auto good = parse_authorization(basic("alice:correct horse"));
  EXPECT_TRUE(a.needs_slow_check(good));
  EXPECT_TRUE(a.authenticate(good));
  EXPECT_FALSE(a.needs_slow_check(good));
  EXPECT_TRUE(a.authenticate(good));
  auto other = parse_authorization(basic("alice:correct horsf"));
  EXPECT_TRUE(a.needs_slow_check(other));
  EXPECT_FALSE(a.authenticate(other));
  EXPECT_FALSE(a.needs_slow_check(other));  // failures are remembered too: guessing stays expensive per guess
  EXPECT_FALSE(a.authenticate(other));
  EXPECT_FALSE(a.needs_slow_check(parse_authorization("Bearer x")));
  // An unknown user costs a bcrypt too: timing does not reveal which names exist.
  auto nobody = parse_authorization(basic("nobody:x"));
  EXPECT_TRUE(a.needs_slow_check(nobody));
  EXPECT_FALSE(a.authenticate(nobody));
  EXPECT_FALSE(a.needs_slow_check(nobody));
}

TEST(BcryptTest, TheDummyHashForUnknownUsersIsValidAndMatchesNothing) {
  const std::string dummy = std::string(alice_hash).substr(0, 7) + std::string(53, '.');
  EXPECT_FALSE(bcrypt_verify("", dummy));
  EXPECT_FALSE(bcrypt_verify("x", dummy));
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) bcrypt_verify("x", alice_hash);
  auto real = std::chrono::steady_clock::now() - start;
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) bcrypt_verify("x", dummy);
  auto fake = std::chrono::steady_clock::now() - start;
  EXPECT_GT(fake * 10, real) << "the dummy check must cost about as much as a real one";
}

TEST(VerifyCacheTest, ExpiresAndStaysBounded) {
  VerifyCache cache(2, std::chrono::seconds(10));
  auto t0 = std::chrono::steady_clock::now();
  cache.store("a", true, t0);
  cache.store("b", false, t0);
  EXPECT_EQ(cache.find("a", t0), std::optional<bool>(true));
  EXPECT_EQ(cache.find("b", t0), std::optional<bool>(false));
  cache.store("c", true, t0);  // evicts the oldest
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.find("a", t0), std::nullopt);
  EXPECT_EQ(cache.find("c", t0 + std::chrono::seconds(11)), std::nullopt);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(AuthorizationRulesTest, GrantsUsersGroupsAndAnonymousGlobs) {
  auto a = sample();
  EXPECT_TRUE(a.may_pull("", "docker.io/library/alpine"));
  EXPECT_FALSE(a.may_pull("", "docker.io/acme/app"));
  EXPECT_TRUE(a.may_pull("alice", "docker.io/acme/app"));
  EXPECT_FALSE(a.may_pull("alice", "docker.io/acme/team/app"));  // '*' stays within a segment
  EXPECT_TRUE(a.may_pull("alice", "ghcr.io/x/y/z"));
  EXPECT_FALSE(a.may_pull("alice", "docker.io/devs/tool"));
  EXPECT_TRUE(a.may_pull("bob", "docker.io/devs/tool"));
  EXPECT_FALSE(a.may_pull("bob", "docker.io/acme/app"));
  EXPECT_TRUE(a.may_pull("ci", "quay.io/anything/at/all"));
  EXPECT_FALSE(a.may_pull("mallory", "docker.io/acme/app"));
  EXPECT_TRUE(a.may_pull("mallory", "docker.io/library/alpine"));  // anonymous grants apply to everyone
}

TEST(AuthenticatorBuildTest, RefusesBadGlobsWithKeyAndLine) {
  auto cfg = sample_config();
  cfg.rules[1].repositories.push_back(config::Located{"Docker.io/X", "auth.rules[1].repositories[1]", 17});
  auto built = Authenticator::build(cfg, "ocigate.yaml");
  ASSERT_FALSE(built);
  EXPECT_NE(built.error().message.find("ocigate.yaml:17: auth.rules[1].repositories[1]"), std::string::npos)
      << built.error().message;
}

TEST(AuthenticatorBuildTest, ReadsTheHtpasswdFile) {
  auto cfg = sample_config();
  cfg.htpasswd_file = "/nonexistent/htpasswd";
  EXPECT_FALSE(Authenticator::build(cfg, "ocigate.yaml"));
}

TEST(Sha256Test, MatchesSha256sum) { EXPECT_EQ(sha256_hex("tok-ci-123"), ci_token_sha256); }

TEST(ConstantTimeTest, ComparesExactly) {
  EXPECT_TRUE(equal_constant_time("abc", "abc"));
  EXPECT_FALSE(equal_constant_time("abc", "abd"));
  EXPECT_FALSE(equal_constant_time("abc", "ab"));
}

// Only the subject is read, so an unsigned certificate with the names under test is enough. Raw
// UTF8String entries skip OpenSSL's own 64-character CN bound, so a crafted long name reaches the check.
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;
CertPtr cert_with_subject(const std::vector<std::pair<int, std::string>>& entries, int type = V_ASN1_UTF8STRING) {
  CertPtr cert(X509_new(), &X509_free);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& [nid, value] : entries) {
    X509_NAME_add_entry_by_NID(name, nid, type, reinterpret_cast<const unsigned char*>(value.data()),
                               static_cast<int>(value.size()), -1, 0);
  }
  return cert;
}

TEST(CertificateUser, IsTheSubjectCommonName) {
  auto cert = cert_with_subject({{NID_organizationName, "acme"}, {NID_commonName, "alice"}});
  auto user = certificate_user(cert.get());
  ASSERT_TRUE(user.ok()) << user.error().message;
  EXPECT_EQ(*user, "alice");
  auto service = cert_with_subject({{NID_commonName, "ci-bot@build.example+1"}});
  ASSERT_TRUE(certificate_user(service.get()).ok());
  EXPECT_EQ(*certificate_user(service.get()), "ci-bot@build.example+1");
}

TEST(CertificateUser, RefusesASubjectWithoutOrWithSeveralCommonNames) {
  auto none = cert_with_subject({{NID_organizationName, "acme"}});
  auto result = certificate_user(none.get());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("no common name"), std::string::npos);
  auto two = cert_with_subject({{NID_commonName, "alice"}, {NID_commonName, "admin"}});
  result = certificate_user(two.get());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("more than one"), std::string::npos);
  EXPECT_FALSE(certificate_user(nullptr).ok());
}

TEST(CertificateUser, RefusesNamesThatAreNotPlainUserNames) {
  for (const std::string& bad : {std::string(""), std::string("Alice Smith"), std::string("alice:admin"),
                                std::string("../alice"), std::string("alice\nadmin"), std::string("al\0ice", 6),
                                std::string(129, 'a'), std::string("\xc3\xa9lodie")}) {
    auto cert = cert_with_subject({{NID_commonName, bad}});
    EXPECT_FALSE(certificate_user(cert.get()).ok()) << bad;
  }
  auto longest = cert_with_subject({{NID_commonName, std::string(128, 'a')}});
  EXPECT_TRUE(certificate_user(longest.get()).ok());
}

}  // namespace
}  // namespace ocigate::auth
