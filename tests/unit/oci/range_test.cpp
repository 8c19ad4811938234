#include "ocigate/oci/range.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace ocigate::oci {
namespace {

constexpr std::uint64_t max64 = std::numeric_limits<std::uint64_t>::max();

void expect_range(const ParsedRange& r, std::uint64_t first, std::uint64_t last) {
  ASSERT_EQ(r.result, RangeResult::satisfiable);
  EXPECT_EQ(r.range.first, first);
  EXPECT_EQ(r.range.last, last);
  EXPECT_EQ(r.range.length(), last - first + 1);
}

TEST(ParseRange, ClosedRange) {
  expect_range(parse_range("bytes=0-99", 1000), 0, 99);
  expect_range(parse_range("bytes=10-10", 1000), 10, 10);
  expect_range(parse_range("bytes=999-999", 1000), 999, 999);
}

TEST(ParseRange, ClosedRangeLastIsClampedToTheEnd) {
  expect_range(parse_range("bytes=0-1000", 1000), 0, 999);
  expect_range(parse_range("bytes=500-999999", 1000), 500, 999);
}

TEST(ParseRange, OpenRangeRunsToTheEnd) {
  expect_range(parse_range("bytes=100-", 1000), 100, 999);
  expect_range(parse_range("bytes=0-", 1), 0, 0);
  expect_range(parse_range("bytes=999-", 1000), 999, 999);
}

TEST(ParseRange, SuffixRangeIsTheLastNBytes) {
  expect_range(parse_range("bytes=-500", 1000), 500, 999);
  expect_range(parse_range("bytes=-1", 1000), 999, 999);
  expect_range(parse_range("bytes=-1000", 1000), 0, 999);
}

TEST(ParseRange, SuffixLongerThanTheBodyIsTheWholeBody) {
  expect_range(parse_range("bytes=-5000", 1000), 0, 999);
}

TEST(ParseRange, FirstAtOrPastTheEndIsUnsatisfiable) {
  EXPECT_EQ(parse_range("bytes=1000-", 1000).result, RangeResult::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=1000-2000", 1000).result, RangeResult::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=5000-6000", 1000).result, RangeResult::unsatisfiable);
}

TEST(ParseRange, ZeroLengthSuffixIsUnsatisfiable) {
  EXPECT_EQ(parse_range("bytes=-0", 1000).result, RangeResult::unsatisfiable);
}

TEST(ParseRange, EmptyBodyMakesEveryRangeUnsatisfiable) {
  for (const char* header : {"bytes=0-", "bytes=0-0", "bytes=0-99", "bytes=-1", "bytes=-100", "bytes=-0", "bytes=5-"}) {
    EXPECT_EQ(parse_range(header, 0).result, RangeResult::unsatisfiable) << header;
  }
}

TEST(ParseRange, LastBeforeFirstIsInvalidAndIgnored) {
  EXPECT_EQ(parse_range("bytes=10-5", 1000).result, RangeResult::none);
  EXPECT_EQ(parse_range("bytes=5000-10", 1000).result, RangeResult::none);
}

TEST(ParseRange, MultiRangeIsServedWhole) {
  EXPECT_EQ(parse_range("bytes=0-1,5-6", 1000).result, RangeResult::none);
  EXPECT_EQ(parse_range("bytes=0-1, -5", 1000).result, RangeResult::none);
  EXPECT_EQ(parse_range("bytes=0-1,", 1000).result, RangeResult::none);
}

TEST(ParseRange, NoHeaderOrOtherUnitIsNone) {
  EXPECT_EQ(parse_range("", 1000).result, RangeResult::none);
  EXPECT_EQ(parse_range("items=0-1", 1000).result, RangeResult::none);
  EXPECT_EQ(parse_range("byte=0-1", 1000).result, RangeResult::none);
  EXPECT_EQ(parse_range("bytes0-1", 1000).result, RangeResult::none);
  EXPECT_EQ(parse_range("bytes 0-1", 1000).result, RangeResult::none);
  EXPECT_EQ(parse_range("0-1", 1000).result, RangeResult::none);
  EXPECT_EQ(parse_range("bytesx=0-1", 1000).result, RangeResult::none);
}

TEST(ParseRange, UnitIsCaseInsensitive) {
  expect_range(parse_range("Bytes=0-1", 1000), 0, 1);
  expect_range(parse_range("BYTES=0-1", 1000), 0, 1);
}

TEST(ParseRange, ToleratesSurroundingWhitespace) {
  expect_range(parse_range("  bytes=0-1  ", 1000), 0, 1);
  expect_range(parse_range("bytes= 0 - 1 ", 1000), 0, 1);
  expect_range(parse_range("\tbytes=\t-5\t", 1000), 995, 999);
}

TEST(ParseRange, SyntacticGarbageIsNone) {
  for (const char* header : {"bytes=", "bytes=-", "bytes=abc", "bytes=0", "bytes=a-b", "bytes=0-b", "bytes=a-5",
                             "bytes=--5", "bytes=0--5", "bytes=+1-2", "bytes=1-+2", "bytes=0x10-20", "bytes=1.5-2",
                             "bytes=1-2-3", "bytes=-1-2", "bytes=1 2-3", "bytes=0-1;x", "bytes==0-1"}) {
    EXPECT_EQ(parse_range(header, 1000).result, RangeResult::none) << header;
  }
}

TEST(ParseRange, HugeFirstIsUnsatisfiableNotAnOverflow) {
  EXPECT_EQ(parse_range("bytes=18446744073709551615-", 1000).result, RangeResult::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=18446744073709551616-", 1000).result, RangeResult::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=99999999999999999999999999999999-", 1000).result, RangeResult::unsatisfiable);
}

TEST(ParseRange, HugeLastIsClampedNotAnOverflow) {
  expect_range(parse_range("bytes=0-18446744073709551615", 1000), 0, 999);
  expect_range(parse_range("bytes=0-99999999999999999999999999999999", 1000), 0, 999);
}

TEST(ParseRange, HugeSuffixIsTheWholeBody) {
  expect_range(parse_range("bytes=-99999999999999999999999999999999", 1000), 0, 999);
}

TEST(ParseRange, HugeFirstBeyondHugeLastIsInvalid) {
  EXPECT_EQ(parse_range("bytes=99999999999999999999999-5", 1000).result, RangeResult::none);
}

TEST(ParseRange, WorksAtTheLargestSizes) {
  expect_range(parse_range("bytes=-10", max64), max64 - 10, max64 - 1);
  expect_range(parse_range("bytes=0-", max64), 0, max64 - 1);
  EXPECT_EQ(parse_range("bytes=18446744073709551615-", max64).result, RangeResult::unsatisfiable);
}

TEST(ParseRange, SurvivesRandomBytes) {
  unsigned state = 7;
  const std::string alphabet = "bytes=-0123456789, \t";
  for (int round = 0; round < 5000; ++round) {
    std::string header = round % 2 ? "bytes=" : "";
    int length = static_cast<int>(state % 30);
    for (int i = 0; i < length; ++i) {
      state = state * 1103515245u + 12345u;
      header.push_back(round % 3 ? alphabet[(state >> 16) % alphabet.size()] : static_cast<char>(state >> 16));
    }
    std::uint64_t size = state % 3 == 0 ? 0 : state % 5000;
    auto r = parse_range(header, size);
    if (r.result == RangeResult::satisfiable) {
      EXPECT_LE(r.range.first, r.range.last) << header;
      EXPECT_LT(r.range.last, size) << header;
    }
  }
}

}  // namespace
}  // namespace ocigate::oci
