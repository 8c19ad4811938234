#pragma once
// Synthesized layers: a small tar writer and the two compressors, so every test builds exactly
// the archive it needs (including broken ones).

#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "ocigate/layers/scan.hpp"

namespace ocigate::layers::test {

inline const char* const tar_type = "application/vnd.oci.image.layer.v1.tar";
inline const char* const gzip_type = "application/vnd.oci.image.layer.v1.tar+gzip";
inline const char* const zstd_type = "application/vnd.oci.image.layer.v1.tar+zstd";
inline const char* const docker_type = "application/vnd.docker.image.rootfs.diff.tar.gzip";

class Tar {
 public:
  struct Options {
    char type = '0';
    unsigned mode = 0644;
    unsigned uid = 0;
    std::string link;
    std::uint64_t size_field = ~0ull;  // header size when it differs from the content
  };
  static Options opts(char type, unsigned mode = 0644, std::string link = "", std::uint64_t size_field = ~0ull) {
    Options o;
    o.type = type;
    o.mode = mode;
    o.link = std::move(link);
    o.size_field = size_field;
    return o;
  }

  Tar& header(const std::string& name, const std::string& content, Options o) {
    char h[512] = {};
    std::memcpy(h, name.data(), std::min<std::size_t>(name.size(), 100));
    std::snprintf(h + 100, 8, "%07o", o.mode);
    std::snprintf(h + 108, 8, "%07o", o.uid);
    std::snprintf(h + 116, 8, "%07o", o.uid);
    std::uint64_t size = o.size_field == ~0ull ? content.size() : o.size_field;
    std::snprintf(h + 124, 12, "%011llo", static_cast<unsigned long long>(size));
    std::snprintf(h + 136, 12, "%011o", 1700000000u);
    h[156] = o.type;
    std::memcpy(h + 157, o.link.data(), std::min<std::size_t>(o.link.size(), 100));
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    out_.append(h, 512);
    out_ += content;
    out_.append((512 - content.size() % 512) % 512, '\0');
    return *this;
  }

  Tar& file(const std::string& name, const std::string& content = "x", unsigned mode = 0644) {
    return header(name, content, opts('0', mode, "", ~0ull));
  }
  Tar& dir(const std::string& name, unsigned mode = 0755) { return header(name, "", opts('5', mode, "", ~0ull)); }
  Tar& symlink(const std::string& name, const std::string& target) {
    return header(name, "", opts('2', 0777, target, ~0ull));
  }
  Tar& hardlink(const std::string& name, const std::string& target, unsigned mode = 0) {
    return header(name, "", opts('1', mode, target, ~0ull));
  }
  Tar& pax(const std::vector<std::pair<std::string, std::string>>& records, char type = 'x') {
    std::string body;
    for (const auto& [k, v] : records) {
      std::string rec = " " + k + "=" + v + "\n";
      std::size_t len = rec.size() + 1;
      while (std::to_string(len).size() + rec.size() != len) ++len;
      body += std::to_string(len) + rec;
    }
    return header("PaxHeaders/x", body, opts(type, 0644, "", ~0ull));
  }
  Tar& gnu_long(char type, const std::string& name) {
    return header("././@LongLink", name + std::string(1, '\0'), opts(type, 0644, "", ~0ull));
  }
  std::string bytes() const { return out_ + std::string(1024, '\0'); }
  std::string unterminated() const { return out_; }

 private:
  std::string out_;
};

// header: optional gzip header fields; zlib reads them (and its strings) during the call.
inline std::string gzip(const std::string& in, int level = 6, gz_header* header = nullptr) {
  z_stream z{};
  deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  if (header) deflateSetHeader(&z, header);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');  // the bound counts the header fields
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

inline std::string zstd(const std::string& in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  return out;
}

inline std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

inline LayerReport scan(const std::string& bytes, const char* type = gzip_type, ScanLimits limits = {}) {
  return scan_bytes(type, as_bytes(bytes), "sha256:" + std::string(64, '1'), limits);
}

// Feeds `bytes` in pieces of the given sizes (cycled).
inline LayerReport scan_in_pieces(const std::string& bytes, const std::vector<std::size_t>& sizes,
                                  const char* type = gzip_type) {
  LayerScanner scanner("sha256:" + std::string(64, '1'), type);
  std::size_t at = 0, k = 0;
  while (at < bytes.size()) {
    std::size_t n = std::min(sizes[k++ % sizes.size()], bytes.size() - at);
    scanner.feed(std::string_view(bytes).substr(at, n));
    at += n;
  }
  return scanner.finish();
}

inline LayerReport scan_randomly(const std::string& bytes, unsigned seed, const char* type = gzip_type) {
  std::mt19937 rng(seed);
  std::vector<std::size_t> sizes;
  for (int i = 0; i < 64; ++i) sizes.push_back(1 + rng() % 3000);
  return scan_in_pieces(bytes, sizes, type);
}

}  // namespace ocigate::layers::test
