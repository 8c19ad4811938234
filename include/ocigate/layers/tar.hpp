#pragma once
// An incremental tar reader: push bytes of any chunk size, get entries and file content through
// a visitor. Understands ustar, GNU long names/links ('L'/'K'), PAX extended headers (path,
// linkpath, size, uid, gid; global headers are skipped), hard links; sparse and unknown types
// are skipped by their stored size. Malformed input is a sticky error, never a crash or a hang;
// memory is bounded by TarLimits whatever the archive size.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "ocigate/common/result.hpp"

namespace ocigate::layers {

enum class EntryType { file, hard_link, symlink, directory, char_device, block_device, fifo, other };

struct TarEntry {
  std::string path;      // as stored (PAX/GNU long name applied), not normalised
  std::string linkname;  // symlink or hard-link target
  EntryType type = EntryType::other;
  char typeflag = '0';
  std::uint32_t mode = 0;  // permission and setuid/setgid/sticky bits
  std::uint64_t uid = 0, gid = 0;
  std::uint64_t size = 0;  // content bytes that follow (regular files)
};

class TarVisitor {
 public:
  virtual ~TarVisitor() = default;
  virtual void entry(const TarEntry& entry) = 0;
  // Content of the current entry (regular files only), in pieces.
  virtual void data(std::span<const std::byte> bytes) = 0;
  virtual void entry_end() = 0;
};

struct TarLimits {
  std::uint64_t max_entries = 1'000'000;  // beyond: "tar bomb"
  std::size_t max_meta_bytes = 1 << 20;   // one PAX header or GNU long name/link
};

class TarReader {
 public:
  explicit TarReader(TarVisitor& visitor, TarLimits limits = {});

  Status feed(std::span<const std::byte> bytes);
  // End of input. An archive that ends on an entry boundary without the two zero blocks is
  // accepted (some layer writers omit them); one that ends inside a header or content is not.
  Status finish();

  std::uint64_t entries() const { return entries_; }
  bool ended() const { return state_ == State::end; }

 private:
  enum class State { header, content, padding, end, failed };

  Status fail(std::string why);
  Status on_header();
  Status on_meta_done();
  Status start_entry(TarEntry entry);
  bool apply_pax(std::string_view records);

  TarVisitor& visitor_;
  TarLimits limits_;
  State state_ = State::header;
  Error error_;
  std::byte block_[512];
  std::size_t have_ = 0;          // bytes of block_ filled
  std::uint64_t remaining_ = 0;   // content (or metadata) bytes still to come
  std::uint64_t padding_ = 0;     // padding bytes still to skip
  bool deliver_ = false;          // content goes to the visitor
  bool zero_block_ = false;       // the previous header block was all zeros
  char meta_type_ = 0;            // 'L', 'K', 'x', or 0 when skipping
  std::string meta_;              // PAX records or a GNU long name being collected
  // Overrides for the next entry, from 'L'/'K'/'x'.
  std::string next_path_, next_link_;
  bool has_path_ = false, has_link_ = false, has_size_ = false, has_uid_ = false, has_gid_ = false;
  std::uint64_t next_size_ = 0, next_uid_ = 0, next_gid_ = 0;
  std::uint64_t entries_ = 0;
};

}  // namespace ocigate::layers
