// How the cache's costs grow with its size (issue #26, part 3): fills a cache directory with
// synthetic images straight through cache::Store (no HTTP, no upstream), and measures an eviction
// pass on a filled one. bench/scale.py (`bench/run --scale`) drives it; it prints one JSON object.
//
//   ocigate_bench_cache_fill fill DIR BLOBS [--layers K] [--threads T] [--paths PREFIX] [--sample S]
//   ocigate_bench_cache_fill evict DIR [--fraction F]
//   ocigate_bench_cache_fill open DIR
//
// fill: BLOBS blobs as images of one config blob and K layers (default 9) of 1-4 KiB of random
// bytes, each blob written with begin_blob/append/commit; each image's OCI manifest put with
// put_manifest and tagged v1 under origin/bench/scale-NNNNNNN (`origin` is the upstream name
// bench/scale.py gives ocigate). --paths writes PREFIX.tags (manifest GET by tag) and PREFIX.blobs
// (one layer per image) for S images spread over the whole cache (default 10,000), for httpload.
//
// open: opens the cache once and reports how long that took and the process's RSS then (the
// cache's own share of the server's).
//
// evict: opens the cache with max_size lowered to (1 - F) of its size (default F = 0.1), waits for
// the file check that follows open (checked_seconds: open until every blob was checked), commits
// one more blob (the commit runs the eviction pass) and reports how long that commit took
// (eviction_commit_seconds: the cache's own thread deletes the evicted blobs' files after it) and
// how long until every evicted file was deleted (files_deleted_seconds, from the commit's start),
// while another thread asks for random cached blobs' sizes one after the other and reports how
// long the lookups that overlapped the commit waited (each takes the index lock, as every open
// does). The prober only asks for sizes: a reader's release runs the eviction pass itself when the
// cache is over budget, which would start the pass before the measured commit.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ocigate/cache/store.hpp"
#include "ocigate/oci/digest.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using ocigate::cache::Store;

constexpr const char* oci_manifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* oci_config = "application/vnd.oci.image.config.v1+json";
constexpr const char* oci_layer = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr std::uint64_t unlimited = 1ull << 50;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

long status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key));
  }
  return -1;
}

// splitmix64: cheap, seedable and good enough to make every blob's bytes (and digest) distinct.
struct Random {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::string bytes(std::size_t n) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; i += 8) {
      const std::uint64_t v = next();
      std::memcpy(out.data() + i, &v, std::min<std::size_t>(8, n - i));
    }
    return out;
  }
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "cache_fill: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<Store> open_store(const std::string& dir, std::uint64_t max_size) {
  ocigate::cache::Options options;
  options.path = dir;
  options.max_size = max_size;
  auto store = Store::open(options);
  if (!store) die("cannot open " + dir + ": " + store.error().message);
  return std::move(*store);
}

std::string put_blob(Store& store, const std::string& bytes) {
  const std::string digest = ocigate::oci::sha256_digest(bytes);
  auto writer = store.begin_blob(digest);
  if (!writer) die("begin_blob: " + writer.error().message);
  if (auto appended = (*writer)->append(bytes); !appended) die("append: " + appended.error().message);
  if (auto committed = (*writer)->commit(); !committed) die("commit: " + committed.error().message);
  return digest;
}

std::string repo_name(std::size_t image) {
  char name[32];
  std::snprintf(name, sizeof name, "bench/scale-%07zu", image);
  return name;
}

nlohmann::json descriptor(const char* media_type, const std::string& digest, std::size_t size) {
  return {{"mediaType", media_type}, {"digest", digest}, {"size", size}};
}

struct Image {
  std::string layer;  // one of its layers, for the HEAD blob paths
  std::uint64_t bytes = 0;
};

// One image: K layers, a config naming them, a manifest, a tag.
Image put_image(Store& store, std::size_t index, std::size_t layers, std::int64_t now) {
  Random random{index * 0x5851f42d4c957f2dull + 1};
  Image image;
  nlohmann::json layer_list = nlohmann::json::array();
  nlohmann::json diff_ids = nlohmann::json::array();
  for (std::size_t i = 0; i < layers; ++i) {
    const std::string bytes = random.bytes(1024 + random.next() % 3073);
    const std::string digest = put_blob(store, bytes);
    layer_list.push_back(descriptor(oci_layer, digest, bytes.size()));
    diff_ids.push_back(digest);  // not the digest of an uncompressed tar: nothing here reads layers
    image.bytes += bytes.size();
    if (i == index % layers) image.layer = digest;
  }
  const std::string config = nlohmann::json{{"architecture", "amd64"}, {"os", "linux"}, {"config", nlohmann::json::object()},
                                            {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}}
                                 .dump();
  const std::string config_digest = put_blob(store, config);
  const std::string manifest = nlohmann::json{{"schemaVersion", 2}, {"mediaType", oci_manifest},
                                              {"config", descriptor(oci_config, config_digest, config.size())},
                                              {"layers", layer_list}}
                                   .dump();
  const std::string manifest_digest = ocigate::oci::sha256_digest(manifest);
  if (auto put = store.put_manifest(manifest_digest, {oci_manifest, manifest}); !put) die("put_manifest: " + put.error().message);
  if (auto put = store.put_tag("origin/" + repo_name(index), "v1", {manifest_digest, oci_manifest, now}); !put) {
    die("put_tag: " + put.error().message);
  }
  image.bytes += config.size() + manifest.size();
  return image;
}

struct FillArgs {
  std::string dir;
  std::size_t blobs = 0;
  std::size_t layers = 9;
  std::size_t threads = 8;
  std::size_t sample = 10000;
  std::string paths;
};

int fill(const FillArgs& args) {
  const std::size_t images = std::max<std::size_t>(1, args.blobs / (args.layers + 1));
  const std::size_t every = std::max<std::size_t>(1, images / args.sample);
  const auto start = Clock::now();
  auto store = open_store(args.dir, unlimited);
  const std::int64_t now = std::time(nullptr);
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> bytes{0};
  std::vector<std::string> sample_layers((images + every - 1) / every);
  std::vector<std::thread> workers;
  for (std::size_t t = 0; t < args.threads; ++t) {
    workers.emplace_back([&] {
      for (std::size_t i = next++; i < images; i = next++) {
        Image image = put_image(*store, i, args.layers, now);
        bytes += image.bytes;
        if (i % every == 0) sample_layers[i / every] = std::move(image.layer);
      }
    });
  }
  for (auto& worker : workers) worker.join();
  const double fill_s = seconds_since(start);
  const auto stats = store->stats();
  store->close();
  if (!args.paths.empty()) {
    std::ofstream tags(args.paths + ".tags");
    std::ofstream blobs(args.paths + ".blobs");
    for (std::size_t i = 0; i < sample_layers.size(); ++i) {
      tags << "/v2/" << repo_name(i * every) << "/manifests/v1\n";
      blobs << "/v2/" << repo_name(i * every) << "/blobs/" << sample_layers[i] << "\n";
    }
  }
  nlohmann::json out = {{"images", images}, {"blobs", stats.blob_count}, {"manifests", images},
                        {"size_bytes", stats.size_bytes}, {"bytes_written", bytes.load()},
                        {"fill_seconds", fill_s}, {"threads", args.threads}, {"sampled_images", sample_layers.size()}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// Looks up random cached blobs one after the other until told to stop; records when each lookup
// started and how long it took.
struct Prober {
  struct Probe {
    Clock::time_point start;
    double ms = 0;
  };
  std::vector<Probe> probes;

  void run(Store& store, const std::vector<std::string>& digests, const std::atomic<bool>& stop) {
    Random random{42};
    while (!stop.load()) {
      const auto start = Clock::now();
      (void)store.blob_size(digests[random.next() % digests.size()]);
      probes.push_back({start, seconds_since(start) * 1e3});
    }
  }

  // Latencies of the lookups that overlapped [from, to], sorted.
  std::vector<double> during(Clock::time_point from, Clock::time_point to) const {
    std::vector<double> out;
    for (const auto& probe : probes) {
      const auto end = probe.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(probe.ms));
      if (end >= from && probe.start <= to) out.push_back(probe.ms);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

int evict(const std::string& dir, double fraction) {
  std::uint64_t size = 0;
  std::uint64_t count = 0;
  {
    auto store = open_store(dir, unlimited);
    size = store->stats().size_bytes;
    count = store->stats().blob_count;
  }
  const auto max_size = static_cast<std::uint64_t>(static_cast<double>(size) * (1.0 - fraction));
  const auto opening = Clock::now();
  auto store = open_store(dir, max_size);
  const double open_s = seconds_since(opening);
  // The file check after open stats every file: were it still running, it would compete with the
  // pass and its deletes for the disk.
  while (store->stats().unchecked_blobs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double checked_s = seconds_since(opening);
  auto digests = store->blob_digests();
  if (!digests || digests->empty()) die("no blobs to probe");
  std::atomic<bool> stop{false};
  Prober prober;
  std::thread probe([&] { prober.run(*store, *digests, stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the prober runs before the pass too
  Random random{7};
  const auto start = Clock::now();
  put_blob(*store, random.bytes(2048));
  const auto end = Clock::now();
  const double pass_s = std::chrono::duration<double>(end - start).count();
  store->wait_files_deleted();
  const double deleted_s = seconds_since(start);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  probe.join();
  const auto stats = store->stats();
  const std::vector<double> during = prober.during(start, end);
  nlohmann::json out = {{"blobs_before", count}, {"size_before", size}, {"max_size", max_size},
                        {"evicted", stats.evictions}, {"evicted_bytes", stats.evicted_bytes},
                        {"open_seconds", open_s}, {"checked_seconds", checked_s}, {"eviction_commit_seconds", pass_s},
                        {"files_deleted_seconds", deleted_s},
                        {"probes_during", during.size()}, {"probe_worst_ms", during.empty() ? 0.0 : during.back()},
                        {"probe_p99_ms", during.empty() ? 0.0 : during[during.size() * 99 / 100]},
                        {"vm_hwm_kib", status_kib("VmHWM:")}};
  store->close();
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// The cache's own cost at open, without the server around it: time, RSS once open, peak RSS.
int open_only(const std::string& dir) {
  const auto start = Clock::now();
  auto store = open_store(dir, unlimited);
  const double open_s = seconds_since(start);
  nlohmann::json out = {{"blobs", store->stats().blob_count}, {"open_seconds", open_s},
                        {"vm_rss_kib", status_kib("VmRSS:")}, {"vm_hwm_kib", status_kib("VmHWM:")}};
  store->close();
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

std::size_t number(const char* text) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (!end || *end != '\0') die(std::string("not a number: ") + text);
  return static_cast<std::size_t>(v);
}

int usage() {
  std::fprintf(stderr,
               "usage: ocigate_bench_cache_fill fill DIR BLOBS [--layers K] [--threads T] [--paths PREFIX] [--sample S]\n"
               "       ocigate_bench_cache_fill evict DIR [--fraction F]\n"
               "       ocigate_bench_cache_fill open DIR\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string mode = argv[1];
  if (mode == "fill" && argc >= 4) {
    FillArgs args;
    args.dir = argv[2];
    args.blobs = number(argv[3]);
    for (int i = 4; i + 1 < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag == "--layers") {
        args.layers = std::max<std::size_t>(1, number(argv[i + 1]));
      } else if (flag == "--threads") {
        args.threads = std::max<std::size_t>(1, number(argv[i + 1]));
      } else if (flag == "--sample") {
        args.sample = std::max<std::size_t>(1, number(argv[i + 1]));
      } else if (flag == "--paths") {
        args.paths = argv[i + 1];
      } else {
        return usage();
      }
    }
    return fill(args);
  }
  if (mode == "open") return open_only(argv[2]);
  if (mode == "evict") {
    double fraction = 0.1;
    for (int i = 3; i + 1 < argc; i += 2) {
      if (std::string(argv[i]) != "--fraction") return usage();
      fraction = std::atof(argv[i + 1]);
    }
    if (fraction <= 0 || fraction >= 1) die("--fraction must be between 0 and 1");
    return evict(argv[2], fraction);
  }
  return usage();
}
