#include "ocigate/common/glob.hpp"

#include <gtest/gtest.h>

#include <string>

using ocigate::glob_error;
using ocigate::glob_match;

TEST(GlobMatch, LiteralMatchesOnlyItself) {
  EXPECT_TRUE(glob_match("docker.io/library/alpine", "docker.io/library/alpine"));
  EXPECT_FALSE(glob_match("docker.io/library/alpine", "docker.io/library/alpine2"));
  EXPECT_FALSE(glob_match("docker.io/library/alpine", "docker.io/library/alpin"));
}

TEST(GlobMatch, SingleStarStaysWithinASegment) {
  EXPECT_TRUE(glob_match("docker.io/library/*", "docker.io/library/alpine"));
  EXPECT_FALSE(glob_match("docker.io/library/*", "docker.io/library/sub/alpine"));
  EXPECT_TRUE(glob_match("docker.io/*/alpine", "docker.io/library/alpine"));
  EXPECT_TRUE(glob_match("docker.io/library/al*e", "docker.io/library/alpine"));
  EXPECT_TRUE(glob_match("docker.io/library/*", "docker.io/library/"));  // * may match nothing
}

TEST(GlobMatch, DoubleStarCrossesSegments) {
  EXPECT_TRUE(glob_match("docker.io/library/**", "docker.io/library/alpine"));
  EXPECT_TRUE(glob_match("docker.io/library/**", "docker.io/library/a/b/c"));
  EXPECT_FALSE(glob_match("docker.io/library/**", "docker.io/libraryx/alpine"));
  EXPECT_FALSE(glob_match("docker.io/library/**", "docker.io/library"));
  EXPECT_TRUE(glob_match("**", "ghcr.io/acme/app"));
  EXPECT_TRUE(glob_match("ghcr.io/**/app", "ghcr.io/acme/team/app"));
}

TEST(GlobMatch, SlashDoubleStarSlashAlsoMatchesNoSegment) {
  EXPECT_TRUE(glob_match("ghcr.io/**/app", "ghcr.io/app"));
  EXPECT_FALSE(glob_match("ghcr.io/**/app", "ghcr.io/xapp"));
}

TEST(GlobMatch, QuestionMarkIsOneCharacterButNotASlash) {
  EXPECT_TRUE(glob_match("docker.io/library/alpin?", "docker.io/library/alpine"));
  EXPECT_FALSE(glob_match("docker.io/library/alpin?", "docker.io/library/alpin"));
  EXPECT_FALSE(glob_match("docker.io/library?alpine", "docker.io/library/alpine"));
}

TEST(GlobMatch, PortsInUpstreamNamesAreLiteral) {
  EXPECT_TRUE(glob_match("localhost:5001/*", "localhost:5001/app"));
  EXPECT_FALSE(glob_match("localhost:5001/*", "localhost:5002/app"));
}

TEST(GlobMatch, PathologicalGlobsFinishQuickly) {
  std::string text(2000, 'a');
  std::string glob;
  for (int i = 0; i < 60; ++i) glob += "*a";
  glob += "b";
  EXPECT_FALSE(glob_match(glob, text));
  EXPECT_TRUE(glob_match("**a**a**a**a", text));
}

TEST(GlobError, AcceptsTheDocumentedCharset) {
  EXPECT_FALSE(glob_error("docker.io/library/**"));
  EXPECT_FALSE(glob_error("localhost:5001/a_b-c.d/*"));
  EXPECT_FALSE(glob_error("ghcr.io/acme/app@sha256:*"));
}

TEST(GlobError, RejectsEmptyUppercaseSpacesAndTripleStars) {
  EXPECT_TRUE(glob_error(""));
  EXPECT_TRUE(glob_error("docker.io/Library/*"));
  EXPECT_TRUE(glob_error("docker.io/library/ alpine"));
  EXPECT_TRUE(glob_error("docker.io/[abc]"));
  EXPECT_TRUE(glob_error("docker.io/***"));
}
