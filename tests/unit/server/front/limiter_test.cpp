#include "front/limiter.hpp"

#include <gtest/gtest.h>

namespace ocigate::server {
namespace {

using namespace std::chrono_literals;

TEST(RateLimiterTest, DisabledAtZeroRate) {
  RateLimiter limiter(0, 0);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(limiter.take("10.0.0.1"), 0u);
}

TEST(RateLimiterTest, BurstThenRetryAfterThenRefill) {
  RateLimiter limiter(2, 3);  // 2/s, bucket of 3
  auto t0 = RateLimiter::Clock::now();
  EXPECT_EQ(limiter.take("a", t0), 0u);
  EXPECT_EQ(limiter.take("a", t0), 0u);
  EXPECT_EQ(limiter.take("a", t0), 0u);
  EXPECT_EQ(limiter.take("a", t0), 1u);  // empty: one token comes back in 0.5 s, rounded up to 1
  EXPECT_EQ(limiter.take("b", t0), 0u);  // per address
  EXPECT_EQ(limiter.take("a", t0 + 600ms), 0u);
  EXPECT_EQ(limiter.take("a", t0 + 600ms), 1u);
  EXPECT_EQ(limiter.take("a", t0 + 10s), 0u);  // refilled, capped at the burst
  EXPECT_EQ(limiter.take("a", t0 + 10s), 0u);
  EXPECT_EQ(limiter.take("a", t0 + 10s), 0u);
  EXPECT_EQ(limiter.take("a", t0 + 10s), 1u);
}

TEST(RateLimiterTest, SlowRatesAskForLongerWaits) {
  RateLimiter limiter(0.1, 1);
  auto t0 = RateLimiter::Clock::now();
  EXPECT_EQ(limiter.take("a", t0), 0u);
  EXPECT_EQ(limiter.take("a", t0), 10u);
}

TEST(RateLimiterTest, DefaultBurstIsTwiceTheRate) {
  RateLimiter limiter(5, 0);
  auto t0 = RateLimiter::Clock::now();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(limiter.take("a", t0), 0u) << i;
  EXPECT_GT(limiter.take("a", t0), 0u);
}

TEST(RateLimiterTest, StaysBoundedUnderAddressChurn) {
  RateLimiter limiter(1, 1, 100);
  auto t0 = RateLimiter::Clock::now();
  for (int i = 0; i < 10000; ++i) {
    EXPECT_EQ(limiter.take("addr" + std::to_string(i), t0), 0u);
    ASSERT_LE(limiter.tracked(), 100u) << "after address " << i;
  }
}

TEST(RateLimiterTest, PruningDropsIdleClientsFirstAndKeepsBusyOnesLimited) {
  RateLimiter limiter(1, 2, 10);
  auto t0 = RateLimiter::Clock::now();
  EXPECT_EQ(limiter.take("busy", t0), 0u);
  EXPECT_EQ(limiter.take("busy", t0), 0u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(limiter.take("idle" + std::to_string(i), t0 - std::chrono::seconds(60)), 0u);
  ASSERT_EQ(limiter.tracked(), 9u);
  // A tenth address fills the table; the eleventh prunes the idle buckets (refilled by now), not "busy".
  EXPECT_EQ(limiter.take("tenth", t0), 0u);
  EXPECT_EQ(limiter.take("eleventh", t0), 0u);
  EXPECT_LT(limiter.tracked(), 10u);
  EXPECT_GT(limiter.take("busy", t0), 0u) << "a client over its budget keeps its empty bucket through a prune";
}

TEST(ConnectionCounterTest, LimitsPerAddress) {
  ConnectionCounter counter(2);
  EXPECT_TRUE(counter.acquire("a"));
  EXPECT_TRUE(counter.acquire("a"));
  EXPECT_FALSE(counter.acquire("a"));
  EXPECT_TRUE(counter.acquire("b"));
  counter.release("a");
  EXPECT_TRUE(counter.acquire("a"));
  EXPECT_EQ(counter.count("a"), 2u);
  counter.release("a");
  counter.release("a");
  EXPECT_EQ(counter.count("a"), 0u);
}

TEST(ConnectionCounterTest, ZeroMeansUnlimited) {
  ConnectionCounter counter(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(counter.acquire("a"));
}

}  // namespace
}  // namespace ocigate::server
