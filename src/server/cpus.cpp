#include "cpus.hpp"

#include <pthread.h>
#include <sched.h>

#include <cstring>

namespace ocigate::server {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

unsigned io_thread_count(unsigned configured, const std::vector<int>& allowed) {
  if (configured > 0) return configured;
  return allowed.empty() ? 1u : static_cast<unsigned>(allowed.size());
}

std::optional<std::vector<int>> cpu_plan(unsigned threads, const std::vector<int>& allowed) {
  if (threads == 0 || threads != allowed.size()) return std::nullopt;
  return allowed;
}

std::optional<std::string> pin_current_thread(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return "no such CPU: " + std::to_string(cpu);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0) return std::strerror(rc);
  return std::nullopt;
}

void name_current_thread(const std::string& name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

}  // namespace ocigate::server
