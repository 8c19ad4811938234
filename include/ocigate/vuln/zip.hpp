#pragma once
// A small ZIP reader for osv.dev's `<ecosystem>/all.zip` files: end of central directory
// (zip64 too: the large ecosystems hold more than 65,535 records), central directory, local
// headers, stored and deflated entries (zlib raw inflate), CRC-32 checked. Reads with pread
// (no mmap, so a file truncated under us is an error, not a SIGBUS). Every size is checked
// against limits before anything is allocated, so a zip bomb, an absurd size, overlapping
// entries or a name with "..", a leading "/" or a NUL is an error, not a crash or a hang.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ocigate/common/result.hpp"

namespace ocigate::vuln {

struct ZipLimits {
  std::uint64_t max_entries = 2'000'000;
  std::uint64_t max_entry_bytes = 64ull << 20;       // one inflated entry
  std::uint64_t max_total_bytes = 16ull << 30;       // all inflated entries of one archive
  std::uint64_t max_central_directory = 512ull << 20;
  std::uint64_t max_ratio = 1000;                    // inflated / compressed, per entry
};

struct ZipEntry {
  std::string name;
  std::uint16_t method = 0;  // 0 stored, 8 deflate
  std::uint32_t crc32 = 0;
  std::uint64_t compressed = 0, size = 0;  // size = inflated size
  std::uint64_t header_offset = 0;         // the entry's local header
  bool encrypted = false;
  bool directory() const { return !name.empty() && name.back() == '/'; }
};

class ZipReader {
 public:
  // An archive in a file, or in memory (tests, fuzzing). The central directory is read and
  // checked at once; entries are inflated on demand.
  static Result<ZipReader> open(const std::string& path, ZipLimits limits = {});
  static Result<ZipReader> from_bytes(std::string bytes, ZipLimits limits = {});

  ZipReader(ZipReader&&) noexcept;
  ZipReader& operator=(ZipReader&&) noexcept;
  ~ZipReader();

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The entry's bytes, inflated and CRC-checked; an error for a corrupt or oversized entry, an
  // encrypted one or an unsupported method, and once the archive's total budget is spent.
  Result<std::string> read(const ZipEntry& entry);

  struct Source;  // where the bytes come from (a file descriptor or a string)

 private:
  ZipReader(std::unique_ptr<Source> source, ZipLimits limits);
  Status load_directory();

  std::unique_ptr<Source> source_;
  ZipLimits limits_;
  std::vector<ZipEntry> entries_;
  std::uint64_t inflated_total_ = 0;
};

}  // namespace ocigate::vuln
