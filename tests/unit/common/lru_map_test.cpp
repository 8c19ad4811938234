// common/lru_map: a bounded map that drops its least recently used entry.
#include "ocigate/common/lru_map.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ocigate {
namespace {

TEST(LruMap, FindsWhatWasPut) {
  LruMap<int> map(4);
  map.put("a", 1);
  map.put("b", 2);
  ASSERT_NE(map.find("a"), nullptr);
  EXPECT_EQ(*map.find("a"), 1);
  EXPECT_EQ(*map.find("b"), 2);
  EXPECT_EQ(map.find("c"), nullptr);
  EXPECT_EQ(map.size(), 2U);
}

TEST(LruMap, PutReplacesAValueWithoutGrowing) {
  LruMap<std::string> map(2);
  map.put("a", "old");
  map.put("a", "new");
  EXPECT_EQ(*map.find("a"), "new");
  EXPECT_EQ(map.size(), 1U);
}

TEST(LruMap, WhenFullTheLeastRecentlyUsedGoes) {
  LruMap<int> map(3);
  map.put("a", 1);
  map.put("b", 2);
  map.put("c", 3);
  ASSERT_NE(map.find("a"), nullptr);  // a is now the most recently used; b the least
  map.put("d", 4);
  EXPECT_EQ(map.size(), 3U);
  EXPECT_FALSE(map.contains("b"));
  EXPECT_TRUE(map.contains("a"));
  EXPECT_TRUE(map.contains("c"));
  EXPECT_TRUE(map.contains("d"));
  map.put("c", 30);  // a replaced value counts as used too: a goes next
  map.put("e", 5);
  EXPECT_FALSE(map.contains("a"));
  EXPECT_EQ(*map.find("c"), 30);
}

TEST(LruMap, ContainsDoesNotCountAsAUse) {
  LruMap<int> map(2);
  map.put("a", 1);
  map.put("b", 2);
  EXPECT_TRUE(map.contains("a"));
  map.put("c", 3);
  EXPECT_FALSE(map.contains("a"));
}

TEST(LruMap, EraseAndClear) {
  LruMap<int> map(3);
  map.put("a", 1);
  map.put("b", 2);
  map.erase("a");
  map.erase("missing");
  EXPECT_FALSE(map.contains("a"));
  EXPECT_EQ(map.size(), 1U);
  map.put("c", 3);
  map.put("d", 4);
  EXPECT_EQ(map.size(), 3U) << "an erased entry leaves room";
  map.clear();
  EXPECT_EQ(map.size(), 0U);
  EXPECT_EQ(map.find("b"), nullptr);
  map.put("e", 5);
  EXPECT_EQ(*map.find("e"), 5);
}

TEST(LruMap, CapacityZeroKeepsNothing) {
  LruMap<int> map(0);
  map.put("a", 1);
  EXPECT_EQ(map.size(), 0U);
  EXPECT_EQ(map.find("a"), nullptr);
}

}  // namespace
}  // namespace ocigate
