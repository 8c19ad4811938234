// Layer-scan throughput on realistic layers: a seeded generator writes tars that look like real
// container filesystems (text files, ELF-like binaries, already-compressed files, a mix of sizes,
// /etc/os-release and a dpkg database), compresses them with real gzip (zlib level 6) and zstd
// (level 3), then times layers::scan_stream over each on one thread:
//   - one large layer (256 MiB of tar by default; the first argument in MiB),
//   - an image of 50 small layers (64 KiB to 8 MiB of tar each, seeded; --image-mib scales it).
// Prints one JSON object: MB/s (10^6 bytes) of compressed input per CPU second of the scanning
// thread, and per wall second, the compression ratios, and the gzip engine built in (isa-l or
// zlib). Built by bench/run (bench/CMakeLists.txt, -DOCIGATE_BENCH=ON); run by bench/bench.py.
// Deterministic: the same arguments give byte-identical layers. Memory: one compressed layer set
// at a time (the tar itself is generated piece by piece and never held whole).
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <istream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <vector>

#include "ocigate/layers/decompress.hpp"
#include "ocigate/layers/scan.hpp"

namespace {

struct MemBuf : std::streambuf {
  explicit MemBuf(const std::string& s) {
    char* p = const_cast<char*>(s.data());
    setg(p, p, p + s.size());
  }
};

// splitmix64: a small, seeded, portable generator (std:: distributions differ between libraries).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return n ? next() % n : 0; }
  double unit() { return static_cast<double>(next() >> 11) / 9007199254740992.0; }
  // Zipf-like rank in [0, n): small ranks are much more frequent, as words and opcodes are.
  std::size_t zipf(std::size_t n) {
    return std::min(n - 1, static_cast<std::size_t>(std::exp(unit() * std::log(static_cast<double>(n) + 1.0))) - 1);
  }
  // Log-uniform size in [lo, hi].
  std::uint64_t log_uniform(std::uint64_t lo, std::uint64_t hi) {
    return static_cast<std::uint64_t>(std::exp(std::log(double(lo)) + unit() * (std::log(double(hi)) - std::log(double(lo)))));
  }

 private:
  std::uint64_t state_;
};

using Sink = std::function<void(const char*, std::size_t)>;

std::string tar_header(const std::string& name, std::uint64_t size, char type, unsigned mode, const std::string& link = "") {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<std::size_t>(name.size(), 99));
  std::snprintf(&h[100], 8, "%07o", mode);
  std::snprintf(&h[108], 8, "%07o", 0);
  std::snprintf(&h[116], 8, "%07o", 0);
  std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(&h[136], 12, "%011o", 1700000000);
  std::memset(&h[148], ' ', 8);
  h[156] = type;
  std::memcpy(&h[157], link.data(), std::min<std::size_t>(link.size(), 99));
  std::memcpy(&h[257], "ustar\0" "00", 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  h[155] = ' ';
  return h;
}

// A vocabulary of made-up words (syllables), shared by text files, string tables and paths.
const std::vector<std::string>& vocabulary() {
  static const std::vector<std::string> words = [] {
    static const char* const syl[] = {"ta", "re", "in", "co", "de", "ma", "lo", "si", "un", "per", "ex", "al",
                                      "con", "fig", "lib", "str", "get", "set", "init", "user", "data", "ver", "ent",
                                      "ion", "ing", "ed", "er", "pro", "sys", "net", "file", "path", "ous", "ble"};
    Rng rng(7);
    std::vector<std::string> w = {"the", "of", "and", "to", "a", "in", "is", "for", "if", "return", "int", "const",
                                  "void", "struct", "#include", "static", "else", "NULL", "self", "def"};
    while (w.size() < 3000) {
      std::string s;
      for (std::uint64_t k = 1 + rng.below(3); k > 0; --k) s += syl[rng.below(sizeof syl / sizeof *syl)];
      w.push_back(s);
    }
    return w;
  }();
  return words;
}

// Text: lines of Zipf-distributed words with indentation, punctuation and a few numbers
// (source code, configs, docs, scripts). Each file draws on its own working vocabulary and
// sometimes repeats an earlier line with a change, as source files do. zlib level 6
// compresses it about 4x.
void text_bytes(Rng& rng, std::uint64_t size, std::string& out) {
  const auto& words = vocabulary();
  static const char* const punct[] = {" ", " ", " ", " ", ", ", "(", ") ", ".", " = ", "_", "/", ": ", "; ", "->"};
  std::vector<const std::string*> local(64 + rng.below(192));
  for (auto& w : local) w = &words[rng.zipf(words.size())];
  std::size_t start = out.size();
  std::vector<std::size_t> lines;
  while (out.size() - start < size) {
    if (lines.size() > 4 && rng.below(4) == 0) {  // a near-copy of an earlier line
      std::size_t from = lines[lines.size() - 1 - rng.below(std::min<std::size_t>(lines.size() - 1, 30))];
      std::size_t end = out.find('\n', from);
      std::string line = out.substr(from, end - from);
      lines.push_back(out.size());
      out += line;
      out += local[rng.zipf(local.size())]->c_str();
      out += '\n';
      continue;
    }
    lines.push_back(out.size());
    out.append(2 * rng.below(5), ' ');
    for (std::uint64_t k = 2 + rng.below(8); k > 0; --k) {
      out += *local[rng.zipf(local.size())];
      out += punct[rng.zipf(sizeof punct / sizeof *punct)];
      if (rng.below(40) == 0) out += std::to_string(rng.below(1000));
    }
    out += '\n';
  }
  out.resize(start + size);
}

// Machine code: a few dozen common x86-64 instruction shapes with Zipf frequency, small stack
// displacements, and calls to a per-binary set of functions, as compiled code has.
void code_bytes(Rng& rng, std::uint64_t size, std::string& out) {
  static const char* const ops[] = {
      "\x48\x89\xe5", "\x55", "\xc3", "\x48\x8b\x45", "\x48\x89\x45", "\xe8", "\x0f\x1f\x44\x00\x00", "\x89\xc7",
      "\x48\x83\xec", "\x48\x83\xc4", "\x85\xc0", "\x74", "\x75", "\xeb", "\x31\xc0", "\x48\x8d\x3d", "\x41\x54",
      "\x41\x5c", "\x5d", "\x48\x8b\x05", "\xff\x15", "\x0f\xb6\x45", "\x8b\x45", "\x89\x45", "\x48\x39\xc2",
      "\x0f\x84", "\x0f\x85", "\xc7\x45", "\x66\x90", "\xf3\x0f\x1e\xfa", "\x48\x63\xd0", "\x4c\x89\xe7"};
  // bytes of immediate after each shape: 1 = small displacement, 4 = call/jump target or offset
  static const std::uint8_t imm[] = {0, 0, 0, 1, 1, 4, 0, 0, 1, 1, 0, 1, 1, 1, 0, 4, 0, 0, 0, 4, 4, 1, 1, 1, 0, 4, 4, 5, 0, 0, 0, 0};
  const std::size_t n = sizeof ops / sizeof *ops;
  std::uint32_t targets[96];
  for (auto& t : targets) t = static_cast<std::uint32_t>(rng.below(1u << 20));
  std::size_t start = out.size();
  while (out.size() - start < size) {
    std::size_t i = rng.zipf(n);
    out += ops[i];
    if (imm[i] == 1) {
      out += static_cast<char>(0xf8 - 8 * rng.zipf(8));
    } else if (imm[i] >= 4) {
      std::uint32_t t = targets[rng.zipf(96)];
      out.append(reinterpret_cast<const char*>(&t), 4);
      if (imm[i] == 5) out += static_cast<char>(rng.below(3));
    }
  }
  out.resize(start + size);
}

// An ELF-like binary: header, code, a string table, a symbol table of 24-byte records, zero
// padding between sections. zlib level 6 compresses it about 2-3x, like real executables.
void elf_bytes(Rng& rng, std::uint64_t size, std::string& out) {
  static const char elf_header[] = "\x7f" "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0\x01\0\0\0";
  out.append(elf_header, sizeof elf_header - 1);
  out.append(64 - out.size(), '\0');
  const auto& words = vocabulary();
  std::uint64_t addr = 0x1000;
  while (out.size() < size) {
    std::uint64_t left = size - out.size();
    switch (rng.below(10)) {
      case 0: case 1: case 2: case 3: {  // .text
        std::string code;
        code_bytes(rng, std::min<std::uint64_t>(left, 512 + rng.below(16384)), code);
        out += code;
        break;
      }
      case 4: case 8: {  // .rodata / .dynstr
        std::uint64_t until = out.size() + std::min<std::uint64_t>(left, 256 + rng.below(4096));
        while (out.size() < until) {
          out += words[rng.zipf(words.size())];
          if (rng.below(3)) out += "_" + words[rng.zipf(words.size())];
          out += '\0';
        }
        break;
      }
      case 5: {  // .symtab / .rela: structured records
        for (std::uint64_t k = std::min<std::uint64_t>(left / 24, 16 + rng.below(256)); k > 0; --k) {
          std::uint64_t rec[3] = {addr, (rng.below(64) << 32) | 0x12, rng.below(512)};
          addr += 8 + 8 * rng.below(64);
          out.append(reinterpret_cast<const char*>(rec), sizeof rec);
        }
        break;
      }
      case 6: case 7: {  // alignment padding, .bss-like zeros
        out.append(std::min<std::uint64_t>(left, (4096 - out.size() % 4096) % 4096 / (1 + rng.below(3))), '\0');
        break;
      }
      default: {  // .data: pointers and small constants
        for (std::uint64_t k = std::min<std::uint64_t>(left / 8, 8 + rng.below(128)); k > 0; --k) {
          std::uint64_t v = rng.below(3) ? 0x400000 + 8 * rng.below(65536) : rng.below(256);
          out.append(reinterpret_cast<const char*>(&v), 8);
        }
        break;
      }
    }
  }
  out.resize(size);
}

// Already-compressed content (.gz, .png, .jar, .pyc archives): incompressible.
void random_bytes(Rng& rng, std::uint64_t size, std::string& out) {
  out.resize(size);
  for (std::uint64_t j = 0; j < size; j += 8) {
    std::uint64_t v = rng.next();
    std::memcpy(&out[j], &v, std::min<std::uint64_t>(8, size - j));
  }
}

void write_file(const Sink& sink, const std::string& name, const std::string& content, unsigned mode = 0644) {
  std::string h = tar_header(name, content.size(), '0', mode);
  sink(h.data(), h.size());
  sink(content.data(), content.size());
  std::string pad((512 - content.size() % 512) % 512, '\0');
  sink(pad.data(), pad.size());
}

// One layer of about `total` bytes of tar, piece by piece. Files: by bytes roughly half
// binaries, 40% text, 5% already compressed; by count mostly small text files.
std::uint64_t make_layer(std::uint64_t seed, std::uint64_t total, const Sink& sink) {
  Rng rng(seed);
  std::uint64_t written = 0;
  auto counting = [&](const char* p, std::size_t n) {
    written += n;
    sink(p, n);
  };
  const auto& words = vocabulary();
  std::string content;
  if (seed % 4 == 0) {  // base layers carry the OS metadata the scanner reads
    write_file(counting, "etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n");
    write_file(counting, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n");
    std::string status;
    for (int p = 0; p < 120; ++p) {
      std::string pkg = words[20 + rng.below(2000)];
      status += "Package: " + pkg + "\nStatus: install ok installed\nPriority: optional\nSection: libs\n"
                "Installed-Size: " + std::to_string(rng.below(5000)) + "\nMaintainer: Debian <debian@example.org>\n"
                "Architecture: amd64\nVersion: " + std::to_string(rng.below(10)) + "." + std::to_string(rng.below(30)) +
                "-1\nDescription: ";
      text_bytes(rng, 200 + rng.below(400), content);
      status += content + "\n\n";
      content.clear();
    }
    write_file(counting, "var/lib/dpkg/status", status);
  }
  for (int file = 0; written + 1024 < total; ++file) {
    std::string dir = "usr/" + std::string(rng.below(2) ? "lib/" : "share/") + words[rng.zipf(200)] + "/";
    if (file % 40 == 0) {
      std::string h = tar_header(dir, 0, '5', 0755);
      counting(h.data(), h.size());
    }
    std::uint64_t room = total - written - 1024;
    std::uint64_t kind = rng.below(100);
    std::uint64_t size;
    if (kind < 35) {  // binaries and shared libraries: about half the bytes
      size = std::min(room, rng.log_uniform(4096, 2u << 20));
      content.clear();
      elf_bytes(rng, size, content);
      write_file(counting, dir + words[rng.zipf(words.size())] + ".so." + std::to_string(rng.below(9)), content, 0755);
    } else if (kind < 95) {  // text: sources, configs, docs, scripts, data files; 40% of the bytes
      size = std::min(room, rng.log_uniform(200, 2u << 20));
      content.clear();
      text_bytes(rng, size, content);
      write_file(counting, dir + words[rng.zipf(words.size())] + (kind % 3 ? ".py" : ".conf"), content);
    } else {  // already compressed
      size = std::min(room, rng.log_uniform(1024, 1u << 20));
      random_bytes(rng, size, content);
      write_file(counting, dir + words[rng.zipf(words.size())] + ".gz", content);
    }
    if (rng.below(50) == 0) {
      std::string h = tar_header(dir + "link" + std::to_string(file), 0, '2', 0777, "../lib/x");
      counting(h.data(), h.size());
    }
  }
  std::string end(1024, '\0');
  counting(end.data(), end.size());
  return written;
}

std::string gzip_layer(std::uint64_t seed, std::uint64_t total, std::uint64_t* tar_size) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("deflateInit2");
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
  *tar_size = make_layer(seed, total, [&](const char* p, std::size_t n) { pump(p, n, Z_NO_FLUSH); });
  pump(nullptr, 0, Z_FINISH);
  deflateEnd(&z);
  return out;
}

std::string zstd_layer(std::uint64_t seed, std::uint64_t total, std::uint64_t* tar_size) {
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
  *tar_size = make_layer(seed, total, [&](const char* p, std::size_t n) { pump(p, n, ZSTD_e_continue); });
  pump(nullptr, 0, ZSTD_e_end);
  ZSTD_freeCCtx(c);
  return out;
}

double now(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct Layer {
  std::string bytes;
  std::uint64_t tar_size = 0;
};

struct Timing {
  std::uint64_t compressed = 0, tar = 0, scanned = 0, entries = 0;
  double cpu = 0, wall = 0;
};

// Scans every layer on this thread; exits non-zero on a partial scan (it would look fast).
Timing scan_all(const char* name, const char* media_type, const std::vector<Layer>& layers) {
  Timing t;
  for (const Layer& layer : layers) {
    MemBuf buf(layer.bytes);
    std::istream in(&buf);
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    auto report = ocigate::layers::scan_stream(media_type, in);
    t.cpu += now(CLOCK_THREAD_CPUTIME_ID) - c0;
    t.wall += now(CLOCK_MONOTONIC) - w0;
    if (report.status != ocigate::layers::LayerReport::Status::ok || report.uncompressed_bytes < layer.tar_size - 1024) {
      std::fprintf(stderr, "layer_scan: %s scan incomplete: %s (%s), %llu of %llu bytes\n", name,
                   ocigate::layers::status_text(report.status), report.error.c_str(),
                   static_cast<unsigned long long>(report.uncompressed_bytes),
                   static_cast<unsigned long long>(layer.tar_size));
      std::exit(1);
    }
    t.compressed += layer.bytes.size();
    t.tar += layer.tar_size;
    t.scanned += report.uncompressed_bytes;
    t.entries += report.entries;
  }
  return t;
}

void print(const char* key, const Timing& t, std::size_t layers, bool last) {
  std::printf("  \"%s\": {\"layers\": %zu, \"compressed_bytes\": %llu, \"tar_bytes\": %llu, \"ratio\": %.2f, "
              "\"scanned_bytes\": %llu, \"entries\": %llu, \"complete\": true, \"cpu_s\": %.4f, \"wall_s\": %.4f, "
              "\"mb_s_cpu\": %.1f, \"mb_s_wall\": %.1f, \"tar_mb_s_cpu\": %.1f}%s\n",
              key, layers, static_cast<unsigned long long>(t.compressed), static_cast<unsigned long long>(t.tar),
              double(t.tar) / double(t.compressed), static_cast<unsigned long long>(t.scanned),
              static_cast<unsigned long long>(t.entries), t.cpu, t.wall, t.compressed / t.cpu / 1e6,
              t.compressed / t.wall / 1e6, t.tar / t.cpu / 1e6, last ? "" : ",");
  std::fflush(stdout);
}

// `count` layers of seeded sizes; the sizes are log-uniform between lo and hi bytes of tar.
std::vector<Layer> build(bool gzip, std::uint64_t first_seed, std::size_t count, std::uint64_t lo, std::uint64_t hi) {
  std::vector<Layer> layers(count);
  Rng sizes(first_seed);
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t total = lo == hi ? lo : sizes.log_uniform(lo, hi);
    layers[i].bytes = gzip ? gzip_layer(first_seed + i, total, &layers[i].tar_size)
                           : zstd_layer(first_seed + i, total, &layers[i].tar_size);
  }
  return layers;
}

}  // namespace

int main(int argc, char** argv) {
  // layer_scan [big-layer-MiB] [--image-mib N]: N scales the 50 small layers (default 8: each
  // 64 KiB..8 MiB of tar); 0 skips the image.
  std::uint64_t mib = 256, image_mib = 8;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--image-mib") == 0 && i + 1 < argc) image_mib = std::strtoull(argv[++i], nullptr, 10);
    else mib = std::strtoull(argv[i], nullptr, 10);
  }
  std::printf("{\n  \"gzip_engine\": \"%s\",\n", ocigate::layers::gzip_engine());
  const char* gz_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  const char* zs_type = "application/vnd.oci.image.layer.v1.tar+zstd";
  for (bool gzip : {true, false}) {
    auto big = build(gzip, 1000, 1, mib << 20, mib << 20);
    print(gzip ? "gzip" : "zstd", scan_all(gzip ? "gzip" : "zstd", gzip ? gz_type : zs_type, big), 1, false);
  }
  if (image_mib > 0) {
    for (bool gzip : {true, false}) {
      auto image = build(gzip, 2000, 50, std::min<std::uint64_t>(64u << 10, image_mib << 20), image_mib << 20);
      const char* key = gzip ? "image50_gzip" : "image50_zstd";
      print(key, scan_all(key, gzip ? gz_type : zs_type, image), image.size(), !gzip);
    }
  } else {
    std::printf("  \"image50\": null\n");
  }
  std::printf("}\n");
  return 0;
}
