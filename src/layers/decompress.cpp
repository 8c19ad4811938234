// Push-model decompression. The first 4 bytes choose the format (media types lie); gzip
// members may be concatenated; trailing bytes after the last member are ignored.

#include "ocigate/layers/decompress.hpp"

#include <zlib.h>
#include <zstd.h>

#include <array>
#include <cstring>
#include <vector>

namespace ocigate::layers {

namespace {

constexpr std::size_t out_size = 64 * 1024;

std::string_view base_type(std::string_view media_type) {
  auto semi = media_type.find(';');
  media_type = media_type.substr(0, semi);
  while (!media_type.empty() && media_type.back() == ' ') media_type.remove_suffix(1);
  return media_type;
}

}  // namespace

const char* compression_text(Compression c) {
  switch (c) {
    case Compression::gzip: return "gzip";
    case Compression::zstd: return "zstd";
    case Compression::none: break;
  }
  return "none";
}

LayerMedia classify_media_type(std::string_view media_type) {
  std::string_view t = base_type(media_type);
  LayerMedia m;
  constexpr std::string_view oci = "application/vnd.oci.image.layer.";
  constexpr std::string_view docker = "application/vnd.docker.image.rootfs.";
  std::string_view rest;
  if (t.substr(0, oci.size()) == oci) {
    rest = t.substr(oci.size());
    constexpr std::string_view nd = "nondistributable.";
    if (rest.substr(0, nd.size()) == nd) {
      m.foreign = true;
      rest.remove_prefix(nd.size());
    }
    if (rest.substr(0, 6) != "v1.tar") return m;
    rest.remove_prefix(6);
    if (rest == "+gzip") m.compression = Compression::gzip;
    else if (rest == "+zstd") m.compression = Compression::zstd;
    else if (!rest.empty()) return m;
    m.layer = true;
    return m;
  }
  if (t.substr(0, docker.size()) == docker) {
    rest = t.substr(docker.size());
    if (rest.substr(0, 8) == "foreign.") {
      m.foreign = true;
      rest.remove_prefix(8);
    }
    if (rest == "diff.tar.gzip") m.compression = Compression::gzip;
    else if (rest == "diff.tar.zstd") m.compression = Compression::zstd;
    else if (rest != "diff.tar") return m;
    m.layer = true;
  }
  return m;
}

Compression sniff_compression(std::span<const std::byte> b) {
  auto at = [&](std::size_t i) { return std::to_integer<unsigned>(b[i]); };
  if (b.size() >= 2 && at(0) == 0x1f && at(1) == 0x8b) return Compression::gzip;
  if (b.size() >= 4 && at(0) == 0x28 && at(1) == 0xb5 && at(2) == 0x2f && at(3) == 0xfd) return Compression::zstd;
  return Compression::none;
}

struct Decompressor::Impl {
  Compression declared, kind = Compression::none;
  bool decided = false, started = false, failed = false;
  Error error;
  std::vector<std::byte> head;  // first bytes, until the format is decided
  std::array<std::byte, out_size> out{};
  std::uint64_t in_total = 0, out_total = 0;
  // gzip
  z_stream z{};
  bool z_open = false, z_member_done = false, z_trailing = false;
  // zstd
  ZSTD_DStream* zs = nullptr;
  std::size_t zs_hint = 0;  // last ZSTD_decompressStream result: 0 = frame complete

  ~Impl() {
    if (z_open) inflateEnd(&z);
    if (zs) ZSTD_freeDStream(zs);
  }

  Status fail(Errc code, std::string why) {
    failed = true;
    error = Error{code, std::move(why)};
    return error;
  }

  bool emit(const ByteSink& sink, std::size_t n) {
    out_total += n;
    return n == 0 || sink(std::span<const std::byte>(out.data(), n));
  }

  Status start() {
    started = true;
    if (kind == Compression::gzip) {
      // 16 + MAX_WBITS: gzip wrapper only.
      if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return fail(Errc::internal, "zlib init failed");
      z_open = true;
    } else if (kind == Compression::zstd) {
      zs = ZSTD_createDStream();
      if (!zs || ZSTD_isError(ZSTD_initDStream(zs))) return fail(Errc::internal, "zstd init failed");
    }
    return ok_status();
  }

  Status gzip(std::span<const std::byte> in, const ByteSink& sink) {
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    while (z.avail_in > 0 && !z_trailing) {
      if (z_member_done) {
        // Another member follows, or trailing padding we ignore.
        if (*z.next_in != 0x1f) {
          z_trailing = true;
          break;
        }
        inflateReset(&z);
        z_member_done = false;
      }
      z.next_out = reinterpret_cast<Bytef*>(out.data());
      z.avail_out = out_size;
      int rc = inflate(&z, Z_NO_FLUSH);
      if (!emit(sink, out_size - z.avail_out)) return fail(Errc::cancelled, "stopped by the reader");
      if (rc == Z_STREAM_END) {
        z_member_done = true;
      } else if (rc == Z_BUF_ERROR) {
        if (z.avail_out != 0) break;  // needs more input
      } else if (rc != Z_OK) {
        return fail(Errc::manifest_invalid, std::string("corrupt gzip stream: ") + (z.msg ? z.msg : "data error"));
      }
    }
    return ok_status();
  }

  Status zstd(std::span<const std::byte> in, const ByteSink& sink) {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    while (input.pos < input.size) {
      ZSTD_outBuffer output{out.data(), out_size, 0};
      std::size_t rc = ZSTD_decompressStream(zs, &output, &input);
      if (ZSTD_isError(rc)) return fail(Errc::manifest_invalid, std::string("corrupt zstd stream: ") + ZSTD_getErrorName(rc));
      zs_hint = rc;
      if (!emit(sink, output.pos)) return fail(Errc::cancelled, "stopped by the reader");
    }
    // Drain output still buffered inside the decoder. A call that makes no progress answers
    // with the next frame's header size, which says nothing about this frame: not recorded.
    for (;;) {
      ZSTD_outBuffer output{out.data(), out_size, 0};
      std::size_t rc = ZSTD_decompressStream(zs, &output, &input);
      if (ZSTD_isError(rc)) return fail(Errc::manifest_invalid, std::string("corrupt zstd stream: ") + ZSTD_getErrorName(rc));
      if (output.pos > 0) zs_hint = rc;
      if (!emit(sink, output.pos)) return fail(Errc::cancelled, "stopped by the reader");
      if (output.pos < out_size) break;
    }
    return ok_status();
  }

  Status process(std::span<const std::byte> in, const ByteSink& sink) {
    if (in.empty()) return ok_status();
    switch (kind) {
      case Compression::gzip: return gzip(in, sink);
      case Compression::zstd: return zstd(in, sink);
      case Compression::none: break;
    }
    out_total += in.size();
    if (!sink(in)) return fail(Errc::cancelled, "stopped by the reader");
    return ok_status();
  }

  // Decides the format from the buffered head and pushes it through.
  Status decide(const ByteSink& sink) {
    decided = true;
    kind = sniff_compression(head);
    if (auto s = start(); !s) return s;
    std::vector<std::byte> first;
    first.swap(head);
    return process(first, sink);
  }
};

Decompressor::Decompressor(Compression declared) : impl_(std::make_unique<Impl>()) { impl_->declared = declared; }
Decompressor::~Decompressor() = default;

Status Decompressor::feed(std::span<const std::byte> in, const ByteSink& sink) {
  Impl& d = *impl_;
  if (d.failed) return d.error;
  d.in_total += in.size();
  if (!d.decided) {
    std::size_t take = std::min<std::size_t>(4 - d.head.size(), in.size());
    d.head.insert(d.head.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(take));
    in = in.subspan(take);
    if (d.head.size() < 4) return ok_status();
    if (auto s = d.decide(sink); !s) return s;
  }
  return d.process(in, sink);
}

Status Decompressor::finish(const ByteSink& sink) {
  Impl& d = *impl_;
  if (d.failed) return d.error;
  if (!d.decided) {
    if (auto s = d.decide(sink); !s) return s;
  }
  if (d.kind == Compression::gzip && !d.z_member_done) {
    return d.fail(Errc::manifest_invalid, "truncated gzip stream (" + std::to_string(d.in_total) + " bytes read)");
  }
  if (d.kind == Compression::zstd && d.zs_hint != 0) {
    return d.fail(Errc::manifest_invalid, "truncated zstd stream (" + std::to_string(d.in_total) + " bytes read)");
  }
  return ok_status();
}

Compression Decompressor::detected() const { return impl_->decided ? impl_->kind : impl_->declared; }
std::uint64_t Decompressor::bytes_in() const { return impl_->in_total; }
std::uint64_t Decompressor::bytes_out() const { return impl_->out_total; }

}  // namespace ocigate::layers
