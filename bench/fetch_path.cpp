// The cold fetch path without sockets: how fast one blob can be hashed and written to the cache,
// with the hash inline (on the thread that writes, as before) and piped (server/piped_hash: on a
// pool thread, beside the writes). On a loopback run of two cores the upstream and the client take
// the CPU the piped hash would use; this shows what the fetch path itself allows where the cores
// exist. Input: a 64 MiB seeded random buffer, fed in 256 KiB pieces until `MiB` (argument 1,
// default 1024) are written, into a real cache::Store in a temporary directory (argument 2: its
// parent, default /tmp); each writer is dropped uncommitted, so its file is removed.
// Prints one JSON object: GiB/s of each, the best of three rounds, alternating.
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "cpus.hpp"
#include "ocigate/cache/store.hpp"
#include "ocigate/oci/digest.hpp"
#include "piped_hash.hpp"

namespace {

namespace asio = boost::asio;
using namespace ocigate;

constexpr std::size_t piece_size = 256 * 1024;  // as server/blob_fetch
constexpr std::size_t hash_depth = 3;

std::string random_bytes(std::size_t n) {
  std::mt19937_64 rng(42);
  std::string out(n, '\0');
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  return out;
}

std::unique_ptr<cache::BlobWriter> writer_for(cache::Store& store, int round) {
  auto writer = store.begin_blob("sha256:" + std::string(63, '0') + std::to_string(round % 10));
  if (!writer) throw std::runtime_error(writer.error().message);
  return std::move(*writer);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double run_inline(cache::Store& store, const std::string& input, std::uint64_t total, int round) {
  auto writer = writer_for(store, round);
  oci::Hasher hasher("sha256");
  std::string buffer(piece_size, '\0');
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t done = 0; done < total; done += piece_size) {
    std::memcpy(buffer.data(), input.data() + done % input.size(), piece_size);  // the socket read's copy
    hasher.update(buffer.data(), piece_size);
    if (!writer->append(buffer)) throw std::runtime_error("append failed");
  }
  std::string digest = hasher.finish();
  return static_cast<double>(total) / seconds_since(start);
}

asio::awaitable<void> piped_loop(asio::thread_pool& pool, cache::BlobWriter& writer, const std::string& input,
                                 std::uint64_t total) {
  server::PipedHasher hasher(co_await asio::this_coro::executor, asio::make_strand(pool), "sha256", piece_size,
                             hash_depth);
  for (std::uint64_t done = 0; done < total; done += piece_size) {
    auto buffer = co_await hasher.next_buffer();
    std::memcpy(buffer.data(), input.data() + done % input.size(), piece_size);
    hasher.submit(piece_size);
    if (!writer.append(std::string_view(buffer.data(), piece_size))) throw std::runtime_error("append failed");
  }
  std::string digest = co_await hasher.finish();
}

double run_piped(asio::thread_pool& pool, cache::Store& store, const std::string& input, std::uint64_t total,
                 int round) {
  auto writer = writer_for(store, round);
  asio::io_context ioc;
  const auto start = std::chrono::steady_clock::now();
  auto done = asio::co_spawn(ioc, piped_loop(pool, *writer, input, total), asio::use_future);
  ioc.run();
  done.get();
  return static_cast<double>(total) / seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t total = std::max<std::uint64_t>(argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024, 1) << 20;
  std::string parent = argc > 2 ? argv[2] : "/tmp";
  std::string dir = parent + "/ocigate-bench-fetch-XXXXXX";
  if (!mkdtemp(dir.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  int status = 0;
  try {
    cache::Options options;
    options.path = dir;
    options.max_size = 64ull << 30;
    options.chunk_size = 1u << 20;
    auto store = cache::Store::open(options);
    if (!store) throw std::runtime_error(store.error().message);
    const std::string input = random_bytes(64u << 20);
    asio::thread_pool pool(std::max<std::size_t>(server::allowed_cpus().size(), 1));
    double best_inline = 0, best_piped = 0;
    for (int round = 0; round < 3; ++round) {
      best_inline = std::max(best_inline, run_inline(**store, input, total, round));
      best_piped = std::max(best_piped, run_piped(pool, **store, input, total, round));
    }
    constexpr double gib = 1024.0 * 1024.0 * 1024.0;
    std::printf("{\"bytes\": %llu, \"inline_gib_s\": %.3f, \"piped_gib_s\": %.3f}\n",
                static_cast<unsigned long long>(total), best_inline / gib, best_piped / gib);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fetch_path: %s\n", e.what());
    status = 1;
  }
  std::filesystem::remove_all(dir);
  return status;
}
