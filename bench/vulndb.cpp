// Vulnerability database load and match costs: loads a database directory (osv.dev zips and/or
// *.json records; bench/vulndb_gen.py writes a synthetic one of realistic shape and size) and
// reports load time, the resident memory it added, what it holds, and the time to match an
// inventory (a JSON list of {name, version, format, source?, source_version?}, e.g. the 500
// packages vulndb_gen.py writes) against an os-release (default debian 12), as the median and
// worst of --rounds matches. Prints one JSON object. Built by bench/run (-DOCIGATE_BENCH=ON).
//
//   ocigate_bench_vulndb DIR [--inventory FILE] [--os ID:VERSION_ID] [--rounds N]
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ocigate/vuln/database.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Resident set size in KiB (VmRSS of /proc/self/status), or its peak (VmHWM).
long status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::string(key).size());
  }
  return -1;
}

// CPU seconds of the whole process (all threads), user + system: wall time on a shared machine
// says more about the neighbours than about the code.
double cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

double ms_since(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

std::vector<ocigate::policy::Package> read_inventory(const std::string& path) {
  std::ifstream in(path);
  auto json = nlohmann::json::parse(in, nullptr, false);
  std::vector<ocigate::policy::Package> out;
  if (!json.is_array()) return out;
  for (const auto& p : json) {
    out.emplace_back(p.value("name", ""), p.value("version", ""), p.value("format", "dpkg"), p.value("source", ""),
                     p.value("source_version", ""));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [--inventory FILE] [--os ID:VERSION_ID] [--rounds N]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1], inventory_path, os_arg = "debian:12";
  int rounds = 200;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--inventory") inventory_path = argv[i + 1];
    if (flag == "--os") os_arg = argv[i + 1];
    if (flag == "--rounds") rounds = std::max(1, std::atoi(argv[i + 1]));
  }
  long rss_before = status_kib("VmRSS:");
  auto start = Clock::now();
  double cpu_start = cpu_ms();
  auto db = ocigate::vuln::load(dir);
  double load_ms = ms_since(start), load_cpu_ms = cpu_ms() - cpu_start;
  if (!db) {
    std::fprintf(stderr, "load failed: %s\n", db.error().message.c_str());
    return 1;
  }
  long peak = status_kib("VmHWM:");
  malloc_trim(0);  // what stays is the index, not the loader's freed buffers
  long rss_after = status_kib("VmRSS:");
  const auto& meta = (*db)->metadata();

  nlohmann::json out = {{"load_ms", load_ms},
                        {"load_cpu_ms", load_cpu_ms},
                        {"threads", std::thread::hardware_concurrency()},
                        {"rss_added_mib", (rss_after - rss_before) / 1024.0},
                        {"peak_rss_mib", peak / 1024.0},
                        {"records_loaded", meta.records_loaded},
                        {"records_withdrawn", meta.records_withdrawn},
                        {"records_other", meta.records_other},
                        {"ranges_skipped", meta.ranges_skipped},
                        {"records", meta.records},
                        {"version", meta.version}};
  if (!inventory_path.empty()) {
    auto inventory = read_inventory(inventory_path);
    auto colon = os_arg.find(':');
    ocigate::vuln::Os os{os_arg.substr(0, colon), colon == std::string::npos ? "" : os_arg.substr(colon + 1)};
    std::vector<double> times;
    ocigate::vuln::MatchResult result;
    double match_cpu_start = cpu_ms();
    for (int i = 0; i < rounds; ++i) {
      auto t = Clock::now();
      result = (*db)->match(os, inventory);
      times.push_back(ms_since(t));
    }
    double match_cpu = (cpu_ms() - match_cpu_start) / rounds;
    std::sort(times.begin(), times.end());
    out["match"] = {{"packages", inventory.size()},
                    {"checked", result.packages_checked},
                    {"supported", result.supported},
                    {"findings", result.findings.size()},
                    {"median_ms", times[times.size() / 2]},
                    {"cpu_ms_per_match", match_cpu},
                    {"max_ms", times.back()},
                    {"rounds", rounds}};
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
