// RFC 3339 timestamps, UTC days and durations (common/time).

#include "ocigate/common/time.hpp"

#include <gtest/gtest.h>

namespace ocigate {
namespace {

using std::chrono::seconds;

// 2025-06-15T12:00:00Z
std::chrono::system_clock::time_point test_now() { return std::chrono::system_clock::time_point(seconds(1749988800)); }

TEST(ParseRfc3339, HandlesFractionsAndOffsets) {
  auto a = parse_rfc3339("2025-06-15T12:00:00Z");
  auto b = parse_rfc3339("2025-06-15T14:00:00.999999999+02:00");
  auto c = parse_rfc3339("2025-06-15t07:30:00-04:30");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, test_now());
  EXPECT_EQ(*b, test_now());
  EXPECT_EQ(*c, test_now());
  EXPECT_FALSE(parse_rfc3339("2025-06-15T12:00:00+0200"));
  EXPECT_FALSE(parse_rfc3339("2025-06-15T12:00:00.Z"));
  EXPECT_FALSE(parse_rfc3339("2025-06-15T12:00:00Zjunk"));
}

TEST(UtcDate, FormatsTheCivilDate) {
  EXPECT_EQ(utc_date(test_now()), "2025-06-15");
  EXPECT_EQ(utc_date(std::chrono::system_clock::time_point{}), "1970-01-01");
}

TEST(ParseDuration, AcceptsEachUnit) {
  EXPECT_EQ(parse_duration("90s"), seconds(90));
  EXPECT_EQ(parse_duration("5m"), seconds(300));
  EXPECT_EQ(parse_duration("1h"), seconds(3600));
  EXPECT_EQ(parse_duration("2d"), seconds(2 * 86400));
  EXPECT_EQ(parse_duration("0s"), seconds(0));
}

TEST(ParseDuration, AcceptsCombinations) {
  EXPECT_EQ(parse_duration("1h30m"), seconds(5400));
  EXPECT_EQ(parse_duration("1d2h3m4s"), seconds(86400 + 7200 + 180 + 4));
}

TEST(ParseDuration, AcceptsUpToACentury) {
  EXPECT_EQ(parse_duration("36500d"), seconds(36500ll * 86400));
  EXPECT_FALSE(parse_duration("36501d"));
  EXPECT_FALSE(parse_duration("99999999999999999999s"));
}

TEST(ParseDuration, RejectsABareNumber) {
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("0"));
  EXPECT_FALSE(parse_duration("1h30"));
}

TEST(ParseDuration, RejectsSignsUnknownUnitsAndEmpty) {
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration("+1s"));
  EXPECT_FALSE(parse_duration("5x"));
  EXPECT_FALSE(parse_duration("500ms"));
  EXPECT_FALSE(parse_duration("1.5h"));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("1h 30m"));
  EXPECT_FALSE(parse_duration("5M"));
}

}  // namespace
}  // namespace ocigate
