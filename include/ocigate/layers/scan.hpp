#pragma once
// Scanning one layer as its bytes pass by, once: decompress (format sniffed), read the tar,
// record what the policy needs. Push model, any chunk size, bounded memory; never throws on
// layer content. Typical use in the blob flow:
//
//   layers::LayerScanner scanner(digest, media_type);
//   for each chunk: scanner.feed(chunk);        // cheap no-op once the scan failed
//   layers::LayerReport report = scanner.finish();  // cache it under the digest
//
// A foreign layer (`foreign_layer(media_type)`) need not be fetched at all: use
// `layers::foreign_report(digest, media_type)`.

#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ocigate/layers/report.hpp"

namespace ocigate::layers {

struct ScanLimits {
  std::uint64_t max_entries = 1'000'000;       // more entries: "tar bomb"
  std::size_t max_meta_bytes = 1 << 20;        // one PAX header / GNU long name
  std::size_t small_file = 64 * 1024;          // regular files up to this size are read for secrets
  std::uint64_t content_budget = 64ull << 20;  // bytes of small files read per layer
  std::size_t max_db_bytes = 32 << 20;         // package databases, /etc/passwd, os-release (prefix kept)
  std::size_t max_rpmdb_bytes = 128 << 20;     // rpmdb.sqlite: read whole or not at all (SQLite needs every page)
  std::size_t max_findings = 1000;             // per list, so a report stays small
};

class LayerScanner {
 public:
  LayerScanner(std::string digest, std::string media_type, ScanLimits limits = {});
  ~LayerScanner();
  LayerScanner(const LayerScanner&) = delete;
  LayerScanner& operator=(const LayerScanner&) = delete;

  // Returns false once the scan has failed (the report then says why); feeding more is harmless.
  bool feed(std::span<const std::byte> chunk);
  bool feed(std::string_view chunk);
  // Ends the scan; the scanner is spent afterwards.
  LayerReport finish();
  // Findings so far (e.g. to abort a stream early); complete only after finish().
  const LayerReport& partial() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Foreign / non-distributable media types: reported as "foreign layer, not inspected".
bool foreign_layer(std::string_view media_type);
LayerReport foreign_report(std::string digest, std::string media_type);

// Whole-stream helpers (tests, the benchmark, `ocigate check`): reads until EOF in 64 KiB chunks.
LayerReport scan_stream(std::string_view media_type, std::istream& in, std::string digest = "", ScanLimits limits = {});
LayerReport scan_bytes(std::string_view media_type, std::span<const std::byte> bytes, std::string digest = "",
                       ScanLimits limits = {});

// Normalises a tar path: "./usr//bin/" -> "usr/bin"; ".." components are kept resolved
// against the root (they cannot climb above it).
std::string normalise_path(std::string_view path);

}  // namespace ocigate::layers
