#include "ocigate/oci/challenge.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ocigate::oci {
namespace {

using Params = std::map<std::string, std::string>;

TEST(ParseChallenges, ReadsDockerHubsBearerChallenge) {
  auto c = parse_challenges(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params, (Params{{"realm", "https://auth.docker.io/token"},
                                 {"service", "registry.docker.io"},
                                 {"scope", "repository:library/alpine:pull"}}));
}

TEST(ParseChallenges, ReadsBasic) {
  auto c = parse_challenges(R"(Basic realm="Registry Realm")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params, (Params{{"realm", "Registry Realm"}}));
}

TEST(ParseChallenges, ReadsSeveralChallengesInOneValue) {
  auto c = parse_challenges(R"(Bearer realm="x",service="y", Basic realm="z")");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params, (Params{{"realm", "x"}, {"service", "y"}}));
  EXPECT_EQ(c[1].scheme, "basic");
  EXPECT_EQ(c[1].params, (Params{{"realm", "z"}}));
}

TEST(ParseChallenges, ReadsABareSchemeBetweenOthers) {
  auto c = parse_challenges(R"(Basic realm="a", Negotiate, Bearer realm="b")");
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[1].scheme, "negotiate");
  EXPECT_TRUE(c[1].params.empty());
  EXPECT_EQ(c[2].scheme, "bearer");
  EXPECT_EQ(c[2].params.at("realm"), "b");
}

TEST(ParseChallenges, LowerCasesSchemesAndParamNamesButNotValues) {
  auto c = parse_challenges(R"(BEARER Realm="HTTPS://Auth/Token",SERVICE=Reg)");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params, (Params{{"realm", "HTTPS://Auth/Token"}, {"service", "Reg"}}));
}

TEST(ParseChallenges, UnquotesBackslashEscapes) {
  auto c = parse_challenges(R"(Basic realm="say \"hi\" \\ there\x")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].params.at("realm"), R"(say "hi" \ therex)");
}

TEST(ParseChallenges, KeepsCommasAndSpacesInsideQuotes) {
  auto c = parse_challenges(R"(Bearer realm="a, Basic b=c",scope="repository:x:pull,push", Basic realm="z")");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].params, (Params{{"realm", "a, Basic b=c"}, {"scope", "repository:x:pull,push"}}));
  EXPECT_EQ(c[1].params.at("realm"), "z");
}

TEST(ParseChallenges, AcceptsTokenValuesAndSpacesAroundEquals) {
  auto c = parse_challenges("Bearer realm = \"x\" , service=registry.example.com ,error=invalid_token");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].params, (Params{{"realm", "x"}, {"service", "registry.example.com"}, {"error", "invalid_token"}}));
}

TEST(ParseChallenges, AcceptsEmptyQuotedValue) {
  auto c = parse_challenges(R"(Bearer realm="",service="s")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].params, (Params{{"realm", ""}, {"service", "s"}}));
}

TEST(ParseChallenges, SkipsToken68Credentials) {
  auto c = parse_challenges("Negotiate YIIBhwYGKwYBBQUCoIIBezCCAXeg+/abc==, Basic realm=\"z\"");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "negotiate");
  EXPECT_TRUE(c[0].params.empty());
  EXPECT_EQ(c[1].scheme, "basic");
  EXPECT_EQ(c[1].params.at("realm"), "z");

  c = parse_challenges("Custom abc");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "custom");
  EXPECT_TRUE(c[0].params.empty());
}

TEST(ParseChallenges, DoesNotMistakeAParamForToken68) {
  auto c = parse_challenges("Bearer realm=x");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].params, (Params{{"realm", "x"}}));
}

TEST(ParseChallenges, FirstOfARepeatedParamWins) {
  auto c = parse_challenges(R"(Bearer realm="first",realm="second")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].params.at("realm"), "first");
}

TEST(ParseChallenges, ToleratesExtraCommasAndWhitespace) {
  auto c = parse_challenges(" ,, Bearer  realm=\"x\",,,service=\"y\" ,\t, Basic realm=\"z\" ,, ");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].params, (Params{{"realm", "x"}, {"service", "y"}}));
  EXPECT_EQ(c[1].params, (Params{{"realm", "z"}}));
}

TEST(ParseChallenges, EmptyOrBlankHeaderHasNoChallenges) {
  EXPECT_TRUE(parse_challenges("").empty());
  EXPECT_TRUE(parse_challenges("   ").empty());
  EXPECT_TRUE(parse_challenges(",,,").empty());
}

TEST(ParseChallenges, UnterminatedQuoteKeepsWhatCameBefore) {
  auto c = parse_challenges(R"(Bearer service="s",realm="https://auth)");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params, (Params{{"service", "s"}}));
}

TEST(ParseChallenges, SkipsAParamWhereASchemeShouldBe) {
  auto c = parse_challenges(R"(realm="x", Basic realm="y")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params.at("realm"), "y");
}

TEST(ParseChallenges, SkipsJunkCharactersWithoutLosingLaterChallenges) {
  auto c = parse_challenges(R"(@@@ "quoted, junk", Bearer realm="x")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params.at("realm"), "x");
}

TEST(ParseChallenges, SurvivesRandomBytes) {
  unsigned state = 4242;
  const std::string alphabet = "Bearer realm=\"\\,  =Basic\t";
  for (int round = 0; round < 5000; ++round) {
    std::string header;
    int length = static_cast<int>(state % 80);
    for (int i = 0; i < length; ++i) {
      state = state * 1103515245u + 12345u;
      header.push_back(round % 2 ? alphabet[(state >> 16) % alphabet.size()] : static_cast<char>(state >> 16));
    }
    auto challenges = parse_challenges(header);
    for (const auto& c : challenges) {
      EXPECT_FALSE(c.scheme.empty()) << header;
      for (char ch : c.scheme) EXPECT_FALSE(ch >= 'A' && ch <= 'Z') << header;
    }
  }
}

TEST(ParseChallenges, HandlesAVeryLongHeader) {
  std::string header;
  for (int i = 0; i < 10000; ++i) header += "Bearer realm=\"r" + std::to_string(i) + "\", ";
  auto c = parse_challenges(header);
  ASSERT_EQ(c.size(), 10000u);
  EXPECT_EQ(c.back().params.at("realm"), "r9999");
}

}  // namespace
}  // namespace ocigate::oci
