#pragma once
// A minimal ZIP writer for the tests: stored or raw-deflated entries, optionally with zip64 end
// records (as writers emit for more than 65,535 entries), so each test builds the archive it
// needs, broken ones included.

#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ocigate::vuln::test {

struct ZipFile {
  std::string name, data;
  bool deflate = true;
};

inline void put16(std::string& out, std::uint32_t v) {
  out += static_cast<char>(v & 0xff);
  out += static_cast<char>((v >> 8) & 0xff);
}
inline void put32(std::string& out, std::uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}
inline void put64(std::string& out, std::uint64_t v) {
  put32(out, static_cast<std::uint32_t>(v));
  put32(out, static_cast<std::uint32_t>(v >> 32));
}

inline std::string raw_deflate(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

inline std::string make_zip(const std::vector<ZipFile>& files, bool zip64 = false) {
  std::string out, central;
  for (const auto& f : files) {
    std::string body = f.deflate ? raw_deflate(f.data) : f.data;
    auto crc = static_cast<std::uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(f.data.data()), static_cast<uInt>(f.data.size())));
    auto offset = static_cast<std::uint32_t>(out.size());
    std::uint16_t method = f.deflate ? 8 : 0;
    put32(out, 0x04034b50);
    put16(out, 20), put16(out, 0), put16(out, method), put16(out, 0), put16(out, 0x21);
    put32(out, crc), put32(out, static_cast<std::uint32_t>(body.size())), put32(out, static_cast<std::uint32_t>(f.data.size()));
    put16(out, static_cast<std::uint32_t>(f.name.size())), put16(out, 0);
    out += f.name + body;
    put32(central, 0x02014b50);
    put16(central, 20), put16(central, 20), put16(central, 0), put16(central, method), put16(central, 0), put16(central, 0x21);
    put32(central, crc), put32(central, static_cast<std::uint32_t>(body.size())), put32(central, static_cast<std::uint32_t>(f.data.size()));
    put16(central, static_cast<std::uint32_t>(f.name.size())), put16(central, 0), put16(central, 0);
    put16(central, 0), put16(central, 0), put32(central, 0), put32(central, offset);
    central += f.name;
  }
  std::uint64_t cd_offset = out.size();
  out += central;
  if (zip64) {
    std::uint64_t record = out.size();
    put32(out, 0x06064b50);
    put64(out, 44);
    put16(out, 45), put16(out, 45), put32(out, 0), put32(out, 0);
    put64(out, files.size()), put64(out, files.size()), put64(out, central.size()), put64(out, cd_offset);
    put32(out, 0x07064b50);
    put32(out, 0), put64(out, record), put32(out, 1);
  }
  put32(out, 0x06054b50);
  put16(out, 0), put16(out, 0);
  put16(out, zip64 ? 0xffff : static_cast<std::uint32_t>(files.size()));
  put16(out, zip64 ? 0xffff : static_cast<std::uint32_t>(files.size()));
  put32(out, zip64 ? 0xffffffff : static_cast<std::uint32_t>(central.size()));
  put32(out, zip64 ? 0xffffffff : static_cast<std::uint32_t>(cd_offset));
  put16(out, 0);
  return out;
}

}  // namespace ocigate::vuln::test
