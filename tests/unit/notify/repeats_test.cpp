// Which events repeat each other, and how long a webhook holds repeats back (notify/repeats.hpp).
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "repeats.hpp"
#include "sample_events.hpp"

namespace ocigate::notify::detail {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = Repeats::Clock;

// Two findings, so that their order can change.
Event blocked() {
  Event event = test::blocked();
  event.violations.push_back({{"check", "healthcheck"}, {"action", "warn"}, {"message", "none"}});
  return event;
}

TEST(RepeatKey, IgnoresWhoPulledWhenAndByWhichReference) {
  auto other = blocked();
  other.client = "10.9.9.9 bob";
  other.reference = "sha256:" + std::string(64, 'a');
  other.time += 1h;
  other.policy_version = "pv-2";
  EXPECT_EQ(repeat_key(other), repeat_key(blocked()));
}

TEST(RepeatKey, FindingsInAnotherOrderAreTheSame) {
  auto other = blocked();
  other.violations = json::array({other.violations[1], other.violations[0]});
  EXPECT_EQ(repeat_key(other), repeat_key(blocked()));
}

TEST(RepeatKey, TellsApartWhatSaysSomethingElse) {
  const auto base = repeat_key(blocked());
  auto warned = blocked();
  warned.kind = EventKind::warn;
  auto image = blocked();
  image.image = "docker.io/library/busybox";
  auto digest = blocked();
  digest.digest = "sha256:" + std::string(64, 'b');
  auto fewer = blocked();
  fewer.violations = json::array({fewer.violations[0]});
  auto action = blocked();
  action.violations[1]["action"] = "block";
  for (const auto* event : {&warned, &image, &digest, &fewer, &action}) EXPECT_NE(repeat_key(*event), base);

  const Event mismatch = test::mismatch();
  auto other_actual = mismatch;
  other_actual.actual = "sha256:3";
  EXPECT_NE(repeat_key(mismatch), repeat_key(other_actual));
  Event reload;
  reload.kind = EventKind::policy_reload_failed;
  reload.error = "line 3: bad";
  auto other_error = reload;
  other_error.error = "line 4: bad";
  EXPECT_NE(repeat_key(reload), repeat_key(other_error));
}

TEST(RepeatKey, ViolationsOfAnyShapeNeverThrow) {
  auto odd = blocked();
  odd.violations = json::array({1, "text", {{"check", 7}, {"action", nullptr}}});
  EXPECT_NO_THROW(repeat_key(odd));
  odd.violations = json::object();
  EXPECT_NO_THROW(repeat_key(odd));
}

TEST(Repeats, HoldsBackWithinTheWindowThenCountsWhatItHeld) {
  Repeats repeats(10min);
  const auto t0 = Clock::now();
  EXPECT_EQ(repeats.admit("a", t0), 0u);
  EXPECT_EQ(repeats.admit("a", t0 + 1s), std::nullopt);
  EXPECT_EQ(repeats.admit("a", t0 + 9min), std::nullopt);
  EXPECT_EQ(repeats.admit("b", t0 + 9min), 0u);  // another key is its own
  EXPECT_EQ(repeats.admit("a", t0 + 10min), 2u);
  EXPECT_EQ(repeats.admit("a", t0 + 11min), std::nullopt);  // the window starts again at what went out
  EXPECT_EQ(repeats.admit("a", t0 + 21min), 1u);
}

// An event that never reached its receiver (dropped, or its delivery failed) holds nothing back.
TEST(Repeats, AfterReopenTheNextRepeatGoesOutCountingWhatWasHeldBack) {
  Repeats repeats(10min);
  const auto t0 = Clock::now();
  EXPECT_EQ(repeats.admit("a", t0), 0u);
  EXPECT_EQ(repeats.admit("a", t0 + 1s), std::nullopt);
  repeats.reopen("a", t0 + 2s);
  EXPECT_EQ(repeats.admit("a", t0 + 3s), 1u);
  EXPECT_EQ(repeats.admit("a", t0 + 4s), std::nullopt);  // this one went out: its window holds
  repeats.reopen("never seen", t0 + 5s);
  EXPECT_EQ(repeats.admit("never seen", t0 + 5s), 0u);
}

TEST(Repeats, AZeroWindowLetsEverythingThrough) {
  Repeats repeats(0ms);
  const auto t0 = Clock::now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(repeats.admit("a", t0), 0u);
}

TEST(Repeats, RemembersAtMostMaxKeysForgettingEndedWindowsFirst) {
  Repeats repeats(1min);
  const auto t0 = Clock::now();
  const std::size_t half = Repeats::max_keys / 2;
  for (std::size_t i = 0; i < half; ++i) ASSERT_EQ(repeats.admit("old" + std::to_string(i), t0), 0u);
  EXPECT_EQ(repeats.admit("old0", t0 + 30s), std::nullopt);  // held back: "old0" now owes one
  for (std::size_t i = 0; i < half; ++i) ASSERT_EQ(repeats.admit("new" + std::to_string(i), t0 + 50s), 0u);
  // Full at t0 + 70s: the old keys' windows ended, so they go; the new ones stay.
  EXPECT_EQ(repeats.admit("newest", t0 + 70s), 0u);
  EXPECT_EQ(repeats.admit("new0", t0 + 70s), std::nullopt);
  EXPECT_EQ(repeats.admit("old0", t0 + 70s), 0u);  // forgotten with the repeat it held
}

TEST(Repeats, WhenEveryRememberedWindowIsOpenItStartsAfresh) {
  Repeats repeats(1min);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < Repeats::max_keys; ++i) ASSERT_EQ(repeats.admit(std::to_string(i), t0), 0u);
  EXPECT_EQ(repeats.admit("one more", t0 + 1s), 0u);
  EXPECT_EQ(repeats.admit("0", t0 + 1s), 0u);  // a repeat that goes out again: the price of the bound
}

}  // namespace
}  // namespace ocigate::notify::detail
