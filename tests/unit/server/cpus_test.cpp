#include "cpus.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>

namespace ocigate::server {
namespace {

TEST(CpusTest, ThreadCountFollowsTheAllowedCpus) {
  EXPECT_EQ(io_thread_count(0, {0, 1, 2}), 3u);
  EXPECT_EQ(io_thread_count(0, {5}), 1u);
  EXPECT_EQ(io_thread_count(0, {}), 1u);  // the mask could not be read: one thread still serves
  EXPECT_EQ(io_thread_count(4, {0}), 4u);  // configured wins
}

TEST(CpusTest, PlanGivesEachThreadAnAllowedCpuOfItsOwn) {
  EXPECT_EQ(cpu_plan(2, {0, 1}), (std::vector<int>{0, 1}));
  EXPECT_EQ(cpu_plan(3, {2, 5, 7}), (std::vector<int>{2, 5, 7}));  // a cpuset: its own CPU numbers
  EXPECT_EQ(cpu_plan(1, {3}), (std::vector<int>{3}));
}

TEST(CpusTest, NoPlanWhenThreadsWouldShareACpu) {
  EXPECT_EQ(cpu_plan(3, {0, 1}), std::nullopt);
  EXPECT_EQ(cpu_plan(1, {}), std::nullopt);
  EXPECT_EQ(cpu_plan(0, {0, 1}), std::nullopt);
}

TEST(CpusTest, NoPlanWhenThreadsLeaveCpusFree) {
  // Two such processes on one host would both pin to CPUs 0 and 1.
  EXPECT_EQ(cpu_plan(2, {0, 1, 2, 3}), std::nullopt);
  EXPECT_EQ(cpu_plan(1, {0, 1}), std::nullopt);
}

TEST(CpusTest, AllowedCpusAreThisProcessMask) {
  auto cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  EXPECT_TRUE(std::is_sorted(cpus.begin(), cpus.end()));
}

TEST(CpusTest, PinningAThreadNarrowsOnlyThatThread) {
  const auto before = allowed_cpus();
  std::optional<std::string> refused;
  std::vector<int> inside;
  std::thread pinned([&] {
    refused = pin_current_thread(before.back());
    inside = allowed_cpus();
  });
  pinned.join();
  EXPECT_EQ(refused, std::nullopt);
  EXPECT_EQ(inside, (std::vector<int>{before.back()}));
  EXPECT_EQ(allowed_cpus(), before);
  EXPECT_NE(pin_current_thread(CPU_SETSIZE + 1), std::nullopt) << "a CPU that does not exist is refused";
}

// What `top -H` and /proc show: the name, cut to the kernel's 15 characters.
TEST(CpusTest, NamesTheCallingThread) {
  std::string seen, cut;
  std::thread([&] {
    name_current_thread("hash");
    std::ifstream("/proc/thread-self/comm") >> seen;
    name_current_thread("a-name-longer-than-fifteen");
    std::ifstream("/proc/thread-self/comm") >> cut;
  }).join();
  EXPECT_EQ(seen, "hash");
  EXPECT_EQ(cut, "a-name-longer-t");
}

}  // namespace
}  // namespace ocigate::server
