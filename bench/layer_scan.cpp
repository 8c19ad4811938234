// Layer-scan throughput: builds a 256 MiB layer (a tar of incompressible files), compresses it as
// gzip and as zstd, then times layers::scan_stream over each on one thread. Prints one JSON object:
// MB/s (10^6 bytes) of compressed input per CPU second of the scanning thread, and per wall second.
// Built by bench/run (bench/CMakeLists.txt, -DOCIGATE_BENCH=ON); run by bench/bench.py.
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <istream>
#include <stdexcept>
#include <streambuf>
#include <string>

#include "ocigate/layers/scan.hpp"

namespace {

struct MemBuf : std::streambuf {
  MemBuf(const std::string& s) {
    char* p = const_cast<char*>(s.data());
    setg(p, p, p + s.size());
  }
};

std::uint64_t rng_state = 0x9e3779b97f4a7c15ull;
std::uint64_t next() {  // splitmix64: incompressible for gzip and zstd
  std::uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string tar_header(const std::string& name, std::uint64_t size) {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), name.size());
  std::snprintf(&h[100], 8, "%07o", 0644);
  std::snprintf(&h[108], 8, "%07o", 1000);
  std::snprintf(&h[116], 8, "%07o", 1000);
  std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(&h[136], 12, "%011o", 1700000000);
  std::memset(&h[148], ' ', 8);
  h[156] = '0';
  std::memcpy(&h[257], "ustar\0" "00", 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  h[155] = ' ';
  return h;
}

// The layer, produced piece by piece (so the 256 MiB tar is never held whole).
template <class Sink>
void make_tar(std::uint64_t total, Sink&& sink) {
  const std::uint64_t file_size = 16ull << 20;
  std::string buf(1 << 20, '\0');
  std::uint64_t written = 0;
  for (int i = 0; static_cast<std::uint64_t>(i) < total / file_size; ++i) {
    std::string h = tar_header("data/file" + std::to_string(i) + ".bin", file_size);
    sink(h.data(), h.size());
    written += 512;
    for (std::uint64_t left = file_size; left; left -= buf.size()) {
      for (std::size_t j = 0; j < buf.size(); j += 8) {
        std::uint64_t v = next();
        std::memcpy(&buf[j], &v, 8);
      }
      sink(buf.data(), buf.size());
    }
    written += file_size;
  }
  std::string end(1024, '\0');
  sink(end.data(), end.size());
}

std::string gzip_layer(std::uint64_t total) {
  z_stream z{};
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("deflateInit2");
  std::string out;
  std::string chunk(1 << 20, '\0');
  auto pump = [&](const char* p, std::size_t n, int flush) {
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(p));
    z.avail_in = static_cast<uInt>(n);
    int rc;
    do {
      z.next_out = reinterpret_cast<Bytef*>(chunk.data());
      z.avail_out = static_cast<uInt>(chunk.size());
      rc = deflate(&z, flush);
      out.append(chunk.data(), chunk.size() - z.avail_out);
    } while (z.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
  };
  make_tar(total, [&](const char* p, std::size_t n) { pump(p, n, Z_NO_FLUSH); });
  pump(nullptr, 0, Z_FINISH);
  deflateEnd(&z);
  return out;
}

std::string zstd_layer(std::uint64_t total) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
  std::string out;
  std::string chunk(ZSTD_CStreamOutSize(), '\0');
  auto pump = [&](const char* p, std::size_t n, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{p, n, 0};
    for (;;) {
      ZSTD_outBuffer o{chunk.data(), chunk.size(), 0};
      std::size_t rem = ZSTD_compressStream2(c, &o, &in, mode);
      if (ZSTD_isError(rem)) throw std::runtime_error(ZSTD_getErrorName(rem));
      out.append(chunk.data(), o.pos);
      if (mode == ZSTD_e_end ? rem == 0 : in.pos == in.size) break;
    }
  };
  make_tar(total, [&](const char* p, std::size_t n) { pump(p, n, ZSTD_e_continue); });
  pump(nullptr, 0, ZSTD_e_end);
  ZSTD_freeCCtx(c);
  return out;
}

double now(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void measure(const char* name, const char* media_type, const std::string& layer, std::uint64_t tar_size, bool last) {
  MemBuf buf(layer);
  std::istream in(&buf);
  double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
  auto report = ocigate::layers::scan_stream(media_type, in);
  double cpu = now(CLOCK_THREAD_CPUTIME_ID) - c0, wall = now(CLOCK_MONOTONIC) - w0;
  // A scan that stopped early would look fast: report what it read and refuse a partial scan.
  const bool complete = report.status == ocigate::layers::LayerReport::Status::ok &&
                        report.uncompressed_bytes >= tar_size - 1024;
  std::printf("  \"%s\": {\"compressed_bytes\": %zu, \"tar_bytes\": %llu, \"scanned_bytes\": %llu, "
              "\"entries\": %llu, \"complete\": %s, \"cpu_s\": %.4f, \"wall_s\": %.4f, "
              "\"mb_s_cpu\": %.1f, \"mb_s_wall\": %.1f}%s\n",
              name, layer.size(), static_cast<unsigned long long>(tar_size),
              static_cast<unsigned long long>(report.uncompressed_bytes),
              static_cast<unsigned long long>(report.entries), complete ? "true" : "false", cpu, wall,
              layer.size() / cpu / 1e6, layer.size() / wall / 1e6, last ? "" : ",");
  if (!complete) {
    std::fprintf(stderr, "layer_scan: %s scan incomplete: %s (%s)\n", name,
                 ocigate::layers::status_text(report.status), report.error.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 256;
  std::uint64_t total = mib << 20;
  std::uint64_t tar_size = (total / (16ull << 20)) * ((16ull << 20) + 512) + 1024;
  std::printf("{\n");
  {
    std::string gz = gzip_layer(total);
    measure("gzip", "application/vnd.oci.image.layer.v1.tar+gzip", gz, tar_size, false);
  }
  {
    rng_state = 0x9e3779b97f4a7c15ull;
    std::string zs = zstd_layer(total);
    measure("zstd", "application/vnd.oci.image.layer.v1.tar+zstd", zs, tar_size, true);
  }
  std::printf("}\n");
  return 0;
}
