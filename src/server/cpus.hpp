#pragma once
// Where the I/O threads run. Each thread keeps its own connections (sockets, buffers, coroutines);
// pinned to its own CPU it keeps their caches warm and is not moved next to whatever it talks to
// (a loopback client, the upstream), which on a small machine costs a stream up to a quarter of
// its rate. Pinning applies only when the threads are exactly as many as the allowed CPUs: then the
// process owns its CPUs (the default thread count, or a container's cpuset). With fewer threads
// than CPUs, two processes on one host would both pin to the first CPUs and crowd them.

#include <optional>
#include <string>
#include <vector>

namespace ocigate::server {

// The CPUs this process may run on (its affinity mask: a container's cpuset), in order.
std::vector<int> allowed_cpus();

// How many I/O threads to run: configured, or one per allowed CPU (at least one).
unsigned io_thread_count(unsigned configured, const std::vector<int>& allowed);

// The CPU for each of `threads` threads: the allowed CPUs in order, or nullopt unless there are
// exactly `threads` of them.
std::optional<std::vector<int>> cpu_plan(unsigned threads, const std::vector<int>& allowed);

// Pins the calling thread to cpu; an error text when the kernel refuses.
std::optional<std::string> pin_current_thread(int cpu);

// Names the calling thread (at most 15 characters are kept), as `top -H`, `perf` and /proc show it:
// "io-0", "hash", "commit".
void name_current_thread(const std::string& name);

}  // namespace ocigate::server
