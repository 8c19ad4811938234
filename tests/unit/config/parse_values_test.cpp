#include <gtest/gtest.h>

#include "ocigate/config/config.hpp"

namespace ocigate::config {
namespace {

using std::chrono::seconds;

TEST(ParseSize, AcceptsBinaryUnits) {
  EXPECT_EQ(parse_size("1KiB"), 1024u);
  EXPECT_EQ(parse_size("512MiB"), 512ull << 20);
  EXPECT_EQ(parse_size("20GiB"), 20ull << 30);
  EXPECT_EQ(parse_size("2TiB"), 2ull << 40);
}

TEST(ParseSize, AcceptsDecimalUnits) {
  EXPECT_EQ(parse_size("1KB"), 1000u);
  EXPECT_EQ(parse_size("20GB"), 20000000000ull);
  EXPECT_EQ(parse_size("3MB"), 3000000u);
  EXPECT_EQ(parse_size("1TB"), 1000000000000ull);
}

TEST(ParseSize, AcceptsBareBytesAndTheByteUnit) {
  EXPECT_EQ(parse_size("1048576"), 1048576u);
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("17B"), 17u);
}

TEST(ParseSize, AcceptsASpaceBeforeTheUnit) {
  EXPECT_EQ(parse_size("20 GiB"), 20ull << 30);
  EXPECT_EQ(parse_size("64 KiB"), 64u << 10);
}

TEST(ParseSize, ComputesFractionsExactly) {
  EXPECT_EQ(parse_size("1.5GB"), 1500000000ull);
  EXPECT_EQ(parse_size("1.5KiB"), 1536u);
  EXPECT_EQ(parse_size("0.5MiB"), 524288u);
  EXPECT_EQ(parse_size("1.1KiB"), 1126u);  // 1126.4 rounds to the nearest byte
}

TEST(ParseSize, AcceptsTheLargestValue) {
  EXPECT_EQ(parse_size("18446744073709551615"), 18446744073709551615ull);
  EXPECT_EQ(parse_size("16777215TiB"), 16777215ull << 40);
}

TEST(ParseSize, RejectsOverflow) {
  EXPECT_FALSE(parse_size("18446744073709551616"));
  EXPECT_FALSE(parse_size("99999999999999999999"));
  EXPECT_FALSE(parse_size("16777216TiB"));
  EXPECT_FALSE(parse_size("20000000000GB"));
  EXPECT_FALSE(parse_size("18446744073709551615.5"));  // rounds up past the limit
  EXPECT_FALSE(parse_size("123456789012345678901234567890"));
}

TEST(ParseSize, RejectsWordsSignsAndUnknownUnits) {
  EXPECT_FALSE(parse_size("lots"));
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("-1GiB"));
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_FALSE(parse_size("+1GiB"));
  EXPECT_FALSE(parse_size("GiB"));
  EXPECT_FALSE(parse_size("20XB"));
  EXPECT_FALSE(parse_size("20gib"));  // case matters: "Mb" could mean megabits
  EXPECT_FALSE(parse_size("20 GiB extra"));
  EXPECT_FALSE(parse_size(" 20GiB"));
}

TEST(ParseSize, RejectsMalformedFractions) {
  EXPECT_FALSE(parse_size(".5GiB"));
  EXPECT_FALSE(parse_size("1.GiB"));
  EXPECT_FALSE(parse_size("1.2.3GiB"));
  EXPECT_FALSE(parse_size("1..5GiB"));
  EXPECT_FALSE(parse_size("1.0000000000001KiB"));  // more precision than any byte count needs
}

}  // namespace
}  // namespace ocigate::config
