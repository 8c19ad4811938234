#include "codec.hpp"

namespace ocigate::cache::codec {

namespace {

// Version 1 metas described blobs stored as RocksDB chunks; open() drops them (and their chunks).
constexpr char meta_version = 2;
constexpr std::size_t meta_encoded_size = 1 + 8 + 8 + 8;

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Consumes little-endian integers from the front of a view; every read is bounds-checked.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  std::optional<std::uint64_t> u64() { return take(8); }
  std::optional<std::uint32_t> u32() {
    auto v = take(4);
    if (!v) return std::nullopt;
    return static_cast<std::uint32_t>(*v);
  }
  std::optional<std::string_view> bytes(std::size_t n) {
    if (in_.size() < n) return std::nullopt;
    auto out = in_.substr(0, n);
    in_.remove_prefix(n);
    return out;
  }
  std::string_view rest() const { return in_; }

 private:
  std::optional<std::uint64_t> take(std::size_t n) {
    if (in_.size() < n) return std::nullopt;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{static_cast<unsigned char>(in_[i])} << (8 * i);
    in_.remove_prefix(n);
    return v;
  }

  std::string_view in_;
};

std::string hex16(std::uint64_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = digits[v & 0xf];
    v >>= 4;
  }
  return out;
}

std::string join(std::string_view a, std::string_view b) {
  std::string out;
  out.reserve(a.size() + b.size());
  out.append(a);
  out.append(b);
  return out;
}

}  // namespace

std::string manifest_key(std::string_view digest) { return join(manifest_prefix, digest); }

std::string tag_key(std::string_view repo_key, std::string_view tag) {
  std::string out = join(tag_prefix, repo_key);
  out.push_back('\0');
  out.append(tag);
  return out;
}

std::string meta_key(std::string_view digest) { return join(meta_prefix, digest); }

std::string blob_file_name(std::uint64_t writer_id) { return hex16(writer_id); }

std::string blob_file_dir(std::uint64_t writer_id) { return hex16(writer_id).substr(14); }

std::string blob_file_path(std::uint64_t writer_id) {
  const std::string name = hex16(writer_id);
  return name.substr(14) + "/" + name;
}

std::string record_key(std::string_view space, std::string_view key) {
  std::string out = join(record_prefix, space);
  out.push_back('\0');
  out.append(key);
  return out;
}

std::optional<std::uint64_t> parse_blob_file_name(std::string_view key) {
  if (key.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : key) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    v = (v << 4) | static_cast<std::uint64_t>(digit);
  }
  return v;
}

std::string encode_manifest(const ManifestEntry& entry) {
  std::string out;
  out.reserve(4 + entry.media_type.size() + entry.bytes.size());
  put_u32(out, static_cast<std::uint32_t>(entry.media_type.size()));
  out.append(entry.media_type);
  out.append(entry.bytes);
  return out;
}

std::optional<ManifestEntry> decode_manifest(std::string_view value) {
  Reader in(value);
  auto length = in.u32();
  if (!length) return std::nullopt;
  auto media_type = in.bytes(*length);
  if (!media_type) return std::nullopt;
  return ManifestEntry{std::string(*media_type), std::string(in.rest())};
}

std::optional<std::uint64_t> manifest_bytes_size(std::string_view value) {
  Reader in(value);
  auto length = in.u32();
  if (!length || !in.bytes(*length)) return std::nullopt;
  return in.rest().size();
}

std::string encode_tag(const TagEntry& entry) {
  std::string out;
  out.reserve(12 + entry.digest.size() + entry.media_type.size());
  put_u64(out, static_cast<std::uint64_t>(entry.fetched_at));
  put_u32(out, static_cast<std::uint32_t>(entry.digest.size()));
  out.append(entry.digest);
  out.append(entry.media_type);
  return out;
}

std::optional<TagEntry> decode_tag(std::string_view value) {
  Reader in(value);
  auto fetched_at = in.u64();
  auto length = in.u32();
  if (!fetched_at || !length) return std::nullopt;
  auto digest = in.bytes(*length);
  if (!digest) return std::nullopt;
  return TagEntry{std::string(*digest), std::string(in.rest()), static_cast<std::int64_t>(*fetched_at)};
}

std::string encode_meta(const BlobMeta& meta) {
  std::string out;
  out.reserve(meta_encoded_size);
  out.push_back(meta_version);
  put_u64(out, meta.size);
  put_u64(out, meta.writer_id);
  put_u64(out, meta.last_access);
  return out;
}

std::optional<BlobMeta> decode_meta(std::string_view value) {
  if (value.size() != meta_encoded_size || value[0] != meta_version) return std::nullopt;
  Reader in(value.substr(1));
  BlobMeta meta;
  meta.size = *in.u64();
  meta.writer_id = *in.u64();
  meta.last_access = *in.u64();
  return meta;
}

}  // namespace ocigate::cache::codec
