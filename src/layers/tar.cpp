// Incremental tar reading. Every state consumes input or ends, so no input can make it spin;
// the only buffers are one 512-byte block and one capped metadata string.

#include "ocigate/layers/tar.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

namespace ocigate::layers {

namespace {

constexpr std::size_t block = 512;

std::string_view field(const std::byte* b, std::size_t offset, std::size_t length) {
  const char* p = reinterpret_cast<const char*>(b) + offset;
  std::size_t n = 0;
  while (n < length && p[n] != '\0') ++n;
  return std::string_view(p, n);
}

// Octal (space/NUL padded) or GNU base-256 (high bit of the first byte set).
std::optional<std::uint64_t> number(const std::byte* b, std::size_t offset, std::size_t length) {
  const auto* p = reinterpret_cast<const unsigned char*>(b) + offset;
  if (p[0] & 0x80) {
    if (p[0] == 0xff) return std::nullopt;  // negative
    std::uint64_t v = p[0] & 0x7f;
    for (std::size_t i = 1; i < length; ++i) {
      if (v >> 56) return std::nullopt;
      v = (v << 8) | p[i];
    }
    return v;
  }
  std::size_t i = 0;
  while (i < length && (p[i] == ' ' || p[i] == '\0')) ++i;
  std::uint64_t v = 0;
  bool any = false;
  for (; i < length && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v >> 60) return std::nullopt;
    v = v * 8 + (p[i] - '0');
    any = true;
  }
  for (; i < length; ++i) {
    if (p[i] != ' ' && p[i] != '\0') return std::nullopt;
  }
  if (!any) return 0;  // an empty field is zero (old writers)
  return v;
}

bool all_zero(const std::byte* b) {
  return std::all_of(b, b + block, [](std::byte x) { return x == std::byte{0}; });
}

// The stored checksum must equal the sum of the header with the checksum field as spaces;
// some old writers summed signed chars, so that sum is accepted too.
bool checksum_ok(const std::byte* b) {
  auto stored = number(b, 148, 8);
  if (!stored) return false;
  std::uint64_t unsigned_sum = 0;
  std::int64_t signed_sum = 0;
  for (std::size_t i = 0; i < block; ++i) {
    unsigned char c = (i >= 148 && i < 156) ? ' ' : std::to_integer<unsigned char>(b[i]);
    unsigned_sum += c;
    signed_sum += static_cast<signed char>(c);
  }
  return *stored == unsigned_sum || static_cast<std::int64_t>(*stored) == signed_sum;
}

EntryType type_of(char flag) {
  switch (flag) {
    case '0': case '\0': case '7': return EntryType::file;
    case '1': return EntryType::hard_link;
    case '2': return EntryType::symlink;
    case '3': return EntryType::char_device;
    case '4': return EntryType::block_device;
    case '5': return EntryType::directory;
    case '6': return EntryType::fifo;
    default: return EntryType::other;
  }
}

// Types whose size field says nothing about content that follows (as Go's archive/tar reads them).
bool header_only(EntryType type) {
  return type == EntryType::hard_link || type == EntryType::symlink || type == EntryType::char_device ||
         type == EntryType::block_device || type == EntryType::directory || type == EntryType::fifo;
}

std::optional<std::uint64_t> decimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

TarReader::TarReader(TarVisitor& visitor, TarLimits limits) : visitor_(visitor), limits_(limits) {}

Status TarReader::fail(std::string why) {
  state_ = State::failed;
  error_ = Error{Errc::manifest_invalid, std::move(why)};
  return error_;
}

Status TarReader::feed(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    switch (state_) {
      case State::failed: return error_;
      case State::end: return ok_status();  // trailing zeros (or junk) after the end marker
      case State::header: {
        std::size_t n = std::min(block - have_, bytes.size());
        std::memcpy(block_ + have_, bytes.data(), n);
        have_ += n;
        bytes = bytes.subspan(n);
        if (have_ == block) {
          have_ = 0;
          if (auto s = on_header(); !s) return s;
        }
        break;
      }
      case State::content: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, bytes.size()));
        if (meta_type_) {
          meta_.append(reinterpret_cast<const char*>(bytes.data()), n);
        } else if (deliver_) {
          visitor_.data(bytes.first(n));
        }
        bytes = bytes.subspan(n);
        remaining_ -= n;
        if (remaining_ == 0) {
          if (deliver_) visitor_.entry_end();
          deliver_ = false;
          state_ = padding_ ? State::padding : State::header;
          if (meta_type_ && padding_ == 0) {
            if (auto s = on_meta_done(); !s) return s;
          }
        }
        break;
      }
      case State::padding: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(padding_, bytes.size()));
        bytes = bytes.subspan(n);
        padding_ -= n;
        if (padding_ == 0) {
          state_ = State::header;
          if (meta_type_) {
            if (auto s = on_meta_done(); !s) return s;
          }
        }
        break;
      }
    }
  }
  return state_ == State::failed ? Status(error_) : ok_status();
}

Status TarReader::finish() {
  if (state_ == State::failed) return error_;
  if (state_ == State::end) return ok_status();
  if (state_ == State::header && have_ == 0) {
    state_ = State::end;
    return ok_status();
  }
  if (state_ == State::header) return fail("truncated tar: the archive ends inside a header");
  return fail("truncated tar: the archive ends inside an entry's content");
}

Status TarReader::on_header() {
  if (all_zero(block_)) {
    if (zero_block_) state_ = State::end;
    zero_block_ = true;
    return ok_status();
  }
  zero_block_ = false;
  if (!checksum_ok(block_)) return fail("corrupt tar header (checksum mismatch) after " + std::to_string(entries_) + " entries");
  auto size = number(block_, 124, 12);
  if (!size) return fail("corrupt tar header (size field)");
  char flag = static_cast<char>(block_[156]);
  std::uint64_t stored = *size;
  if (flag == 'L' || flag == 'K' || flag == 'x' || flag == 'X') {
    if (stored > limits_.max_meta_bytes) {
      return fail(std::string(flag == 'x' || flag == 'X' ? "PAX header" : "GNU long name") + " of " +
                  std::to_string(stored) + " bytes exceeds the limit");
    }
    meta_type_ = flag == 'X' ? 'x' : flag;
    meta_.clear();
    remaining_ = stored;
    padding_ = (block - stored % block) % block;
    state_ = State::content;
    if (stored == 0) {
      state_ = State::header;
      return on_meta_done();
    }
    return ok_status();
  }
  TarEntry e;
  bool gnu = field(block_, 257, 8) == "ustar  ";
  bool ustar = !gnu && field(block_, 257, 6) == "ustar";
  e.path = std::string(field(block_, 0, 100));
  std::string_view prefix = ustar ? field(block_, 345, 155) : std::string_view();
  if (!prefix.empty()) e.path = std::string(prefix) + "/" + e.path;
  e.linkname = std::string(field(block_, 157, 100));
  e.typeflag = flag;
  e.type = type_of(flag);
  e.mode = static_cast<std::uint32_t>(number(block_, 100, 8).value_or(0) & 07777);
  e.uid = number(block_, 108, 8).value_or(0);
  e.gid = number(block_, 116, 8).value_or(0);
  e.size = stored;
  return start_entry(std::move(e));
}

Status TarReader::start_entry(TarEntry e) {
  if (has_path_) e.path = std::move(next_path_);
  if (has_link_) e.linkname = std::move(next_link_);
  if (has_size_) e.size = next_size_;
  if (has_uid_) e.uid = next_uid_;
  if (has_gid_) e.gid = next_gid_;
  has_path_ = has_link_ = has_size_ = has_uid_ = has_gid_ = false;
  std::uint64_t content = header_only(e.type) ? 0 : e.size;
  padding_ = (block - content % block) % block;
  remaining_ = content;
  // Global PAX headers ('g'), GNU sparse files ('S'), dumpdirs, volume labels and unknown
  // types: their content is skipped and they are not entries of the filesystem.
  if (e.type == EntryType::other) {
    state_ = content ? State::content : State::header;
    return ok_status();
  }
  if (entries_ >= limits_.max_entries) {
    return fail("tar bomb: more than " + std::to_string(limits_.max_entries) + " entries");
  }
  ++entries_;
  if (e.type != EntryType::file) e.size = 0;
  visitor_.entry(e);
  deliver_ = content > 0;
  if (!deliver_) visitor_.entry_end();
  state_ = content ? State::content : State::header;
  return ok_status();
}

Status TarReader::on_meta_done() {
  char type = meta_type_;
  meta_type_ = 0;
  if (type == 'L' || type == 'K') {
    // A GNU long name is NUL-terminated inside its content.
    std::string name = meta_.substr(0, meta_.find('\0'));
    (type == 'L' ? next_path_ : next_link_) = std::move(name);
    (type == 'L' ? has_path_ : has_link_) = true;
  } else {
    std::string records = std::move(meta_);
    if (!apply_pax(records)) return fail("malformed PAX header");
  }
  meta_.clear();
  meta_.shrink_to_fit();
  return ok_status();
}

bool TarReader::apply_pax(std::string_view records) {
  while (!records.empty()) {
    auto space = records.find(' ');
    if (space == std::string_view::npos) return false;
    auto length = decimal(records.substr(0, space));
    if (!length || *length <= space + 1 || *length > records.size()) return false;
    std::string_view record = records.substr(0, *length);
    records.remove_prefix(*length);
    if (record.back() != '\n') return false;
    record = record.substr(space + 1, record.size() - space - 2);
    auto eq = record.find('=');
    if (eq == std::string_view::npos) return false;
    std::string_view key = record.substr(0, eq), value = record.substr(eq + 1);
    if (key == "path") {
      next_path_ = std::string(value);
      has_path_ = true;
    } else if (key == "linkpath") {
      next_link_ = std::string(value);
      has_link_ = true;
    } else if (key == "size" || key == "uid" || key == "gid") {
      auto v = decimal(value);
      if (!v) return false;
      if (key == "size") next_size_ = *v, has_size_ = true;
      if (key == "uid") next_uid_ = *v, has_uid_ = true;
      if (key == "gid") next_gid_ = *v, has_gid_ = true;
    }
  }
  return true;
}

}  // namespace ocigate::layers
