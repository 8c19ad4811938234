#pragma once
// Layer media types and a push-model decompressor (gzip via isa-l's igzip where the build
// found it, else zlib; zstd via libzstd; or none).
// Memory is one fixed output buffer whatever the layer size.

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ocigate/common/result.hpp"

namespace ocigate::layers {

enum class Compression { none, gzip, zstd };

const char* compression_text(Compression c);  // "none" | "gzip" | "zstd"

// The gzip inflater this build uses: "isa-l" or "zlib" (chosen at build time, see
// src/layers/CMakeLists.txt), for logs and benchmarks.
const char* gzip_engine();

struct LayerMedia {
  bool layer = false;    // a (tar) layer media type we know
  bool foreign = false;  // non-distributable / foreign: reported, never fetched
  Compression compression = Compression::none;  // what the media type claims
};

// application/vnd.oci.image.layer.v1.tar[+gzip|+zstd], the nondistributable variants,
// application/vnd.docker.image.rootfs.diff.tar[.gzip], ...foreign.diff.tar.gzip. Parameters
// after ';' are ignored. Unknown types give layer=false.
LayerMedia classify_media_type(std::string_view media_type);

// What the first bytes say: gzip (1f 8b), zstd (28 b5 2f fd), else none. Media types lie
// (e.g. "tar" layers that are gzip), so the bytes decide.
Compression sniff_compression(std::span<const std::byte> first_bytes);

// Receives decompressed bytes; returns false to stop (the decompressor then fails with
// Errc::cancelled).
using ByteSink = std::function<bool(std::span<const std::byte>)>;

class Decompressor {
 public:
  // `declared` is only a fallback label: the first 4 bytes choose the format.
  explicit Decompressor(Compression declared = Compression::none);
  ~Decompressor();
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // Any chunk size, including 1 byte. An error (corrupt stream) is sticky.
  Status feed(std::span<const std::byte> in, const ByteSink& sink);
  // End of input: an error when the compressed stream stopped mid-way ("truncated").
  Status finish(const ByteSink& sink);

  Compression detected() const;  // valid once 4 bytes (or finish) were seen
  std::uint64_t bytes_in() const;
  std::uint64_t bytes_out() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ocigate::layers
