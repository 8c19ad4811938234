// Push-model decompression. The first 4 bytes choose the format (media types lie); gzip
// members may be concatenated; trailing bytes after the last member are ignored unless they
// start like another member (0x1f).
//
// gzip goes through isa-l's igzip when the build found it (OCIGATE_GZIP_ISAL=1): its inflate is
// about twice zlib's speed, and layer scans sit on the first pull's critical path. zlib is the
// fallback. Both engines obey the same contract, and the unit tests run against whichever is built.

#include "ocigate/layers/decompress.hpp"

#include <zstd.h>

#if OCIGATE_GZIP_ISAL
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#else
#include <zlib.h>
#endif

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <vector>

namespace ocigate::layers {

namespace {

constexpr std::size_t out_size = 64 * 1024;
// Both engines count input in 32 bits: longer spans are fed in slices.
constexpr std::size_t max_slice = std::size_t{1} << 30;

// Writes `n` bytes of the output buffer to the sink; false when the reader stopped.
using Emit = std::function<bool(std::size_t n)>;

struct GzipOutcome {
  enum Kind { ok, cancelled, corrupt } kind = ok;
  std::string why;
};

#if OCIGATE_GZIP_ISAL

const char* isal_error_text(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER: return "incorrect gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM: return "incorrect checksum (CRC or length)";
    case ISAL_NEED_DICT: return "needs a preset dictionary";
    default: return "data error";
  }
}

// A gzip member header (RFC 1952), read byte by byte across feeds: the fixed 10 bytes, then
// FEXTRA, FNAME, FCOMMENT and FHCRC, which are skipped (a header CRC is verified). Memory is
// constant however long the fields are.
class GzipHeader {
 public:
  // Consumes header bytes from the front of `in`; returns how many.
  std::size_t feed(std::span<const std::byte> in) {
    std::size_t at = 0;
    while (at < in.size() && !done() && error_.empty()) {
      const auto* p = reinterpret_cast<const std::uint8_t*>(in.data()) + at;
      Stage stage = stage_;
      std::size_t n = step(p, in.size() - at);
      if (n == 0) break;
      if (stage != Stage::hcrc) crc_ = crc32_gzip_refl(crc_, p, static_cast<std::uint64_t>(n));
      at += n;
    }
    return at;
  }
  bool done() const { return stage_ == Stage::done; }
  const std::string& error() const { return error_; }

 private:
  enum class Stage { fixed, extra_len, extra, name, comment, hcrc, done };
  static constexpr unsigned fhcrc = 0x02, fextra = 0x04, fname = 0x08, fcomment = 0x10;

  // Reads from p[0..n) within the current stage; returns the bytes consumed (at least 1 unless
  // the header is done or bad).
  std::size_t step(const std::uint8_t* p, std::size_t n) {
    switch (stage_) {
      case Stage::fixed: {
        std::size_t take = std::min(n, sizeof fixed_ - got_);
        std::memcpy(fixed_ + got_, p, take);
        got_ += take;
        if (got_ == sizeof fixed_) after_fixed();
        return take;
      }
      case Stage::extra_len:
        left_ |= static_cast<std::uint32_t>(p[0]) << (8 * got_);
        if (++got_ == 2) {
          got_ = 0;
          stage_ = Stage::extra;
          if (left_ == 0) next_field();
        }
        return 1;
      case Stage::extra: {
        std::size_t take = std::min<std::size_t>(n, left_);
        left_ -= static_cast<std::uint32_t>(take);
        if (left_ == 0) next_field();
        return take;
      }
      case Stage::name:
      case Stage::comment: {
        const void* nul = std::memchr(p, 0, n);
        if (!nul) return n;
        next_field();
        return static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - p) + 1;
      }
      case Stage::hcrc:
        stored_hcrc_ |= static_cast<std::uint32_t>(p[0]) << (8 * got_);
        if (++got_ == 2) {
          if (stored_hcrc_ != (crc_ & 0xffff)) error_ = "header crc mismatch";
          else stage_ = Stage::done;
        }
        return 1;
      case Stage::done: break;
    }
    return 0;
  }

  void after_fixed() {
    got_ = 0;
    if (fixed_[0] != 0x1f || fixed_[1] != 0x8b) {
      error_ = "incorrect header check";
    } else if (fixed_[2] != 8) {
      error_ = "unknown compression method";
    } else if (fixed_[3] & 0xe0) {
      error_ = "unknown header flags set";
    } else {
      flags_ = fixed_[3];
      stage_ = Stage::fixed;
      next_field();
    }
  }

  // The next optional field after the current stage, in RFC 1952 order.
  void next_field() {
    constexpr Stage order[] = {Stage::extra_len, Stage::name, Stage::comment, Stage::hcrc};
    constexpr unsigned flag[] = {fextra, fname, fcomment, fhcrc};
    int from = stage_ == Stage::fixed ? 0 : stage_ == Stage::extra_len || stage_ == Stage::extra ? 1
             : stage_ == Stage::name ? 2 : 3;
    for (int i = from; i < 4; ++i) {
      if (flags_ & flag[i]) {
        stage_ = order[i];
        return;
      }
    }
    stage_ = Stage::done;
  }

  Stage stage_ = Stage::fixed;
  std::uint8_t fixed_[10]{};
  unsigned flags_ = 0;
  std::size_t got_ = 0;
  std::uint32_t left_ = 0, stored_hcrc_ = 0, crc_ = 0;
  std::string error_;
};

// isa-l reads the header above itself; igzip then inflates the deflate data with
// crc_flag = ISAL_GZIP_NO_HDR_VER, which checks the CRC32 and ISIZE trailer and leaves next_in
// just past it, so the next member starts at the right byte. (isa-l 2.30's own header parser,
// crc_flag = ISAL_GZIP, computes a wrong header CRC when the header arrives in pieces.)
class GzipEngine {
 public:
  GzipOutcome feed(std::span<const std::byte> in, std::byte* out, const Emit& emit) {
    for (;;) {
      if (stage_ == Stage::trailing) return {};
      if (stage_ == Stage::between) {
        if (in.empty()) return {};
        if (std::to_integer<unsigned>(in[0]) != 0x1f) {
          stage_ = Stage::trailing;  // not another member: padding or junk, ignored as zlib's path does
          return {};
        }
        header_ = GzipHeader{};
        stage_ = Stage::header;
      }
      if (stage_ == Stage::header) {
        in = in.subspan(header_.feed(in));
        if (!header_.error().empty()) return {GzipOutcome::corrupt, header_.error()};
        if (!header_.done()) return {};
        isal_inflate_init(&state_);
        state_.crc_flag = ISAL_GZIP_NO_HDR_VER;
        stage_ = Stage::body;
      }
      GzipOutcome r = body(in, out, emit);
      if (r.kind != GzipOutcome::ok || stage_ == Stage::body) return r;
      in = in.last(state_.avail_in);  // the member ended: what follows it
    }
  }

  bool complete() const { return stage_ == Stage::between || stage_ == Stage::trailing; }

 private:
  enum class Stage { header, body, between, trailing };

  GzipOutcome body(std::span<const std::byte> in, std::byte* out, const Emit& emit) {
    state_.next_in = reinterpret_cast<std::uint8_t*>(const_cast<std::byte*>(in.data()));
    state_.avail_in = static_cast<std::uint32_t>(in.size());
    for (;;) {
      std::uint32_t in_before = state_.avail_in;
      state_.next_out = reinterpret_cast<std::uint8_t*>(out);
      state_.avail_out = static_cast<std::uint32_t>(out_size);
      int rc = isal_inflate(&state_);
      std::size_t produced = out_size - state_.avail_out;
      if (!emit(produced)) return {GzipOutcome::cancelled, {}};
      if (rc < 0 || rc == ISAL_NEED_DICT) return {GzipOutcome::corrupt, isal_error_text(rc)};
      if (state_.block_state == ISAL_BLOCK_FINISH) {
        stage_ = Stage::between;
        return {};
      }
      if (produced == out_size) continue;  // output may be pending inside the decoder
      if (state_.avail_in == 0) return {};  // needs more input
      // Input left, room left, nothing consumed: igzip would spin. Never seen; refused
      // rather than risking a hang or silently dropped bytes.
      if (state_.avail_in == in_before && produced == 0) return {GzipOutcome::corrupt, "decoder made no progress"};
    }
  }

  Stage stage_ = Stage::header;
  GzipHeader header_;
  inflate_state state_{};
};

#else

class GzipEngine {
 public:
  GzipEngine() {
    // 16 + MAX_WBITS: gzip wrapper only.
    if (inflateInit2(&z_, 16 + MAX_WBITS) == Z_OK) open_ = true;
  }
  ~GzipEngine() {
    if (open_) inflateEnd(&z_);
  }
  GzipEngine(const GzipEngine&) = delete;
  GzipEngine& operator=(const GzipEngine&) = delete;

  bool ready() const { return open_; }

  GzipOutcome feed(std::span<const std::byte> in, std::byte* out, const Emit& emit) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    for (;;) {
      if (trailing_) return {};
      if (member_done_) {
        if (z_.avail_in == 0) return {};
        if (*z_.next_in != 0x1f) {
          trailing_ = true;  // not another member: padding or junk, ignored
          return {};
        }
        inflateReset(&z_);
        member_done_ = false;
      }
      z_.next_out = reinterpret_cast<Bytef*>(out);
      z_.avail_out = static_cast<uInt>(out_size);
      int rc = inflate(&z_, Z_NO_FLUSH);
      std::size_t produced = out_size - z_.avail_out;
      if (!emit(produced)) return {GzipOutcome::cancelled, {}};
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc == Z_BUF_ERROR) {
        if (z_.avail_out != 0) return {};  // needs more input
      } else if (rc != Z_OK) {
        return {GzipOutcome::corrupt, z_.msg ? z_.msg : "data error"};
      } else if (produced < out_size && z_.avail_in == 0) {
        return {};  // needs more input
      }
      // A full output buffer loops again even without input: zlib may hold more output.
    }
  }

  bool complete() const { return member_done_ || trailing_; }

 private:
  z_stream z_{};
  bool open_ = false, member_done_ = false, trailing_ = false;
};

#endif

std::string_view base_type(std::string_view media_type) {
  auto semi = media_type.find(';');
  media_type = media_type.substr(0, semi);
  while (!media_type.empty() && media_type.back() == ' ') media_type.remove_suffix(1);
  return media_type;
}

}  // namespace

const char* gzip_engine() {
#if OCIGATE_GZIP_ISAL
  return "isa-l";
#else
  return "zlib";
#endif
}

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
  std::optional<GzipEngine> gz;
  // zstd
  ZSTD_DStream* zs = nullptr;
  std::size_t zs_hint = 0;  // last ZSTD_decompressStream result: 0 = frame complete

  ~Impl() {
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
      gz.emplace();
#if !OCIGATE_GZIP_ISAL
      if (!gz->ready()) return fail(Errc::internal, "zlib init failed");
#endif
    } else if (kind == Compression::zstd) {
      zs = ZSTD_createDStream();
      if (!zs || ZSTD_isError(ZSTD_initDStream(zs))) return fail(Errc::internal, "zstd init failed");
    }
    return ok_status();
  }

  Status gzip(std::span<const std::byte> in, const ByteSink& sink) {
    Emit to_sink = [&](std::size_t n) { return emit(sink, n); };
    while (!in.empty()) {
      auto slice = in.first(std::min(in.size(), max_slice));
      in = in.subspan(slice.size());
      GzipOutcome r = gz->feed(slice, out.data(), to_sink);
      if (r.kind == GzipOutcome::cancelled) return fail(Errc::cancelled, "stopped by the reader");
      if (r.kind == GzipOutcome::corrupt) return fail(Errc::manifest_invalid, "corrupt gzip stream: " + r.why);
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
  if (d.kind == Compression::gzip && !d.gz->complete()) {
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
