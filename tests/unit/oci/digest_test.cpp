#include "ocigate/oci/digest.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace ocigate::oci {
namespace {

const std::string empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string abc_sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string empty_sha512 =
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
const std::string abc_sha512 =
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

TEST(DigestParse, AcceptsSha256WithLowercaseHex) {
  auto d = Digest::parse("sha256:" + abc_sha256);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->algorithm, "sha256");
  EXPECT_EQ(d->hex, abc_sha256);
  EXPECT_EQ(d->str(), "sha256:" + abc_sha256);
}

TEST(DigestParse, AcceptsSha512WithLowercaseHex) {
  auto d = Digest::parse("sha512:" + abc_sha512);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->algorithm, "sha512");
  EXPECT_EQ(d->hex, abc_sha512);
}

TEST(DigestParse, AcceptsAllZeroAndAllFHex) {
  EXPECT_TRUE(Digest::parse("sha256:" + std::string(64, '0')));
  EXPECT_TRUE(Digest::parse("sha256:" + std::string(64, 'f')));
}

TEST(DigestParse, RejectsUppercaseHex) {
  std::string upper = abc_sha256;
  upper[0] = 'B';
  EXPECT_FALSE(Digest::parse("sha256:" + upper));
  EXPECT_FALSE(Digest::parse("sha256:" + std::string(64, 'A')));
}

TEST(DigestParse, RejectsUppercaseAlgorithm) {
  EXPECT_FALSE(Digest::parse("SHA256:" + abc_sha256));
  EXPECT_FALSE(Digest::parse("Sha256:" + abc_sha256));
}

TEST(DigestParse, RejectsWrongHexLength) {
  EXPECT_FALSE(Digest::parse("sha256:" + abc_sha256.substr(1)));
  EXPECT_FALSE(Digest::parse("sha256:" + abc_sha256 + "0"));
  EXPECT_FALSE(Digest::parse("sha256:" + abc_sha512));  // right hex, wrong algorithm length
  EXPECT_FALSE(Digest::parse("sha512:" + abc_sha256));
  EXPECT_FALSE(Digest::parse("sha256:"));
}

TEST(DigestParse, RejectsNonHexCharacters) {
  std::string bad = abc_sha256;
  bad[10] = 'g';
  EXPECT_FALSE(Digest::parse("sha256:" + bad));
  bad[10] = ':';
  EXPECT_FALSE(Digest::parse("sha256:" + bad));
  bad[10] = '\0';
  EXPECT_FALSE(Digest::parse("sha256:" + bad));
}

TEST(DigestParse, RejectsMissingColonAndEmptyText) {
  EXPECT_FALSE(Digest::parse(""));
  EXPECT_FALSE(Digest::parse(":"));
  EXPECT_FALSE(Digest::parse(abc_sha256));
  EXPECT_FALSE(Digest::parse("sha256" + abc_sha256));
  EXPECT_FALSE(Digest::parse(":" + abc_sha256));
}

TEST(DigestParse, RejectsOtherAlgorithms) {
  EXPECT_FALSE(Digest::parse("md5:" + std::string(32, '0')));
  EXPECT_FALSE(Digest::parse("sha1:" + std::string(40, '0')));
  EXPECT_FALSE(Digest::parse("sha384:" + std::string(96, '0')));
  EXPECT_FALSE(Digest::parse("blake3:" + std::string(64, '0')));
  EXPECT_FALSE(Digest::parse("sha256+b64u:" + std::string(64, '0')));
}

TEST(DigestParse, RejectsSurroundingWhitespaceAndTrailingJunk) {
  EXPECT_FALSE(Digest::parse(" sha256:" + abc_sha256));
  EXPECT_FALSE(Digest::parse("sha256:" + abc_sha256 + " "));
  EXPECT_FALSE(Digest::parse("sha256:" + abc_sha256 + "\n"));
  EXPECT_FALSE(Digest::parse("sha256: " + abc_sha256.substr(1)));
  EXPECT_FALSE(Digest::parse("sha256:" + abc_sha256 + ":"));
  EXPECT_FALSE(Digest::parse("sha256::" + abc_sha256.substr(1)));
}

TEST(DigestParse, RejectsEmbeddedNulEvenWithTheRightLength) {
  std::string text = "sha256:" + abc_sha256;
  text[7] = '\0';
  EXPECT_FALSE(Digest::parse(text));
  std::string algorithm_nul("sha256\0", 7);
  EXPECT_FALSE(Digest::parse(algorithm_nul + ":" + abc_sha256));
}

TEST(DigestParse, NeverAcceptsRandomBytes) {
  unsigned state = 12345;
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    int length = static_cast<int>(state % 140);
    for (int i = 0; i < length; ++i) {
      state = state * 1103515245u + 12345u;
      text.push_back(static_cast<char>(state >> 16));
    }
    auto d = Digest::parse(text);
    if (d) {
      EXPECT_EQ(d->str(), text);  // only an exact, well-formed digest may come back
    }
  }
}

TEST(DigestEquality, ComparesAlgorithmAndHex) {
  EXPECT_EQ(Digest::parse("sha256:" + abc_sha256), Digest::parse("sha256:" + abc_sha256));
  EXPECT_NE(Digest::parse("sha256:" + abc_sha256), Digest::parse("sha256:" + empty_sha256));
}

TEST(Hasher, HashesTheEmptyInput) {
  Hasher hasher;
  EXPECT_EQ(hasher.finish(), "sha256:" + empty_sha256);
}

TEST(Hasher, HashesAbc) {
  Hasher hasher("sha256");
  hasher.update("abc");
  EXPECT_EQ(hasher.finish(), "sha256:" + abc_sha256);
}

TEST(Hasher, HashesIncrementallyTheSameAsAtOnce) {
  Hasher hasher;
  hasher.update("a");
  hasher.update("");
  hasher.update("b", 1);
  hasher.update(std::string_view("c"));
  EXPECT_EQ(hasher.finish(), "sha256:" + abc_sha256);
}

TEST(Hasher, HashesAMillionAs) {
  Hasher hasher;
  std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) hasher.update(chunk);
  EXPECT_EQ(hasher.finish(), "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Hasher, SupportsSha512) {
  Hasher empty("sha512");
  EXPECT_EQ(empty.finish(), "sha512:" + empty_sha512);
  Hasher abc("sha512");
  abc.update("abc");
  EXPECT_EQ(abc.finish(), "sha512:" + abc_sha512);
}

TEST(Hasher, ResultParsesAsADigest) {
  Hasher sha256;
  Hasher sha512("sha512");
  EXPECT_TRUE(Digest::parse(sha256.finish()));
  EXPECT_TRUE(Digest::parse(sha512.finish()));
}

TEST(Hasher, FinishTwiceReturnsTheSameDigestAndIgnoresLateUpdates) {
  Hasher hasher;
  hasher.update("abc");
  auto first = hasher.finish();
  hasher.update("more");
  EXPECT_EQ(hasher.finish(), first);
  EXPECT_EQ(first, "sha256:" + abc_sha256);
}

TEST(Hasher, MoveConstructionCarriesTheState) {
  Hasher original;
  original.update("ab");
  Hasher moved(std::move(original));
  moved.update("c");
  EXPECT_EQ(moved.finish(), "sha256:" + abc_sha256);
}

TEST(Hasher, MoveAssignmentCarriesTheStateAndAlgorithm) {
  Hasher source("sha512");
  source.update("abc");
  Hasher target;
  target.update("something else");
  target = std::move(source);
  EXPECT_EQ(target.finish(), "sha512:" + abc_sha512);
}

TEST(Hasher, MovedFromHasherIsInertInsteadOfCrashing) {
  Hasher original;
  Hasher moved(std::move(original));
  original.update("abc");                  // NOLINT(bugprone-use-after-move): on purpose
  EXPECT_EQ(original.finish(), "");        // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(Digest::parse(original.finish()));
  EXPECT_EQ(moved.finish(), "sha256:" + empty_sha256);
}

TEST(Sha256Digest, MatchesKnownVectors) {
  EXPECT_EQ(sha256_digest(""), "sha256:" + empty_sha256);
  EXPECT_EQ(sha256_digest("abc"), "sha256:" + abc_sha256);
}

TEST(Sha256Digest, HashesBinaryBytesIncludingNul) {
  std::string with_nul("a\0b", 3);
  EXPECT_NE(sha256_digest(with_nul), sha256_digest("a"));
  Hasher hasher;
  hasher.update(with_nul.data(), with_nul.size());
  EXPECT_EQ(hasher.finish(), sha256_digest(with_nul));
}

}  // namespace
}  // namespace ocigate::oci
