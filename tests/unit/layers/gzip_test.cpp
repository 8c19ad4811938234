// The gzip contract, run against whichever engine the build chose (isa-l by default where
// libisal-dev is installed; -DOCIGATE_GZIP=zlib builds the zlib one). Reference streams come
// from zlib's deflate, so the isa-l build is checked against another implementation's output.

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "helpers.hpp"
#include "ocigate/layers/decompress.hpp"

namespace {

using namespace ocigate::layers;
using namespace ocigate::layers::test;
using namespace std::string_literals;

struct Inflated {
  std::string out;
  ocigate::Status status = ocigate::ok_status();
  std::size_t largest_piece = 0;
};

// Feeds `in` in pieces of the given sizes (cycled), then finishes.
Inflated inflate(const std::string& in, const std::vector<std::size_t>& sizes) {
  Inflated r;
  Decompressor d(Compression::gzip);
  ByteSink sink = [&](std::span<const std::byte> b) {
    r.out.append(reinterpret_cast<const char*>(b.data()), b.size());
    r.largest_piece = std::max(r.largest_piece, b.size());
    return true;
  };
  std::size_t at = 0, k = 0;
  while (at < in.size() && r.status.ok()) {
    std::size_t n = std::min(sizes[k++ % sizes.size()], in.size() - at);
    r.status = d.feed(as_bytes(in.substr(at, n)), sink);
    at += n;
  }
  if (r.status.ok()) r.status = d.finish(sink);
  return r;
}

Inflated inflate(const std::string& in, std::size_t chunk) { return inflate(in, std::vector<std::size_t>{chunk}); }

std::vector<std::size_t> random_sizes(unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::size_t> sizes;
  for (int i = 0; i < 50; ++i) sizes.push_back(1 + rng() % (i % 2 ? 17 : 70000));
  return sizes;
}

// Text-like and binary-like bytes that deflate into real Huffman blocks with long matches.
std::string mixed_content(std::size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  static const char* const words[] = {"layer ", "digest ", "sha256:", "usr/lib/", "\n", "{\"a\":1}", "ELF\x7f", "\0\0\0\0"};
  std::string s;
  while (s.size() < size) {
    unsigned pick = rng() % 10;
    if (pick < 8) {
      s.append(words[pick], pick == 7 ? 4 : std::strlen(words[pick]));
    } else {
      for (int i = 0; i < 16; ++i) s += static_cast<char>(rng());
    }
  }
  s.resize(size);
  return s;
}

struct HeaderFields {
  std::string extra, name, comment;
  bool hcrc = false;
};

// One gzip member with the optional header fields, written by zlib.
std::string gzip_with_header(const std::string& in, const HeaderFields& f, int level = 6) {
  gz_header h{};
  std::string extra = f.extra, name = f.name, comment = f.comment;
  if (!f.extra.empty()) {
    h.extra = reinterpret_cast<Bytef*>(extra.data());
    h.extra_len = static_cast<uInt>(extra.size());
  }
  if (!f.name.empty()) h.name = reinterpret_cast<Bytef*>(name.data());
  if (!f.comment.empty()) h.comment = reinterpret_cast<Bytef*>(comment.data());
  h.hcrc = f.hcrc ? 1 : 0;
  h.os = 3;
  return gzip(in, level, &h);
}

bool says(const ocigate::Status& s, const char* words) {
  return !s.ok() && s.error().message.find(words) != std::string::npos;
}

}  // namespace

TEST(GzipEngine, IsTheOneTheBuildChose) {
  EXPECT_STREQ(gzip_engine(), OCIGATE_GZIP_ISAL ? "isa-l" : "zlib");
}

TEST(GzipEngine, HeaderFieldsAreSkippedAtEveryChunkSize) {
  std::string plain = mixed_content(100000, 1);
  std::vector<HeaderFields> headers = {
      {"", "layer.tar", "", false},
      {"", "", "built by a test", false},
      {"AB\x04\0xyzw"s, "", "", false},
      {std::string(9000, 'e'), std::string(5000, 'n'), std::string(3000, 'c'), true},  // longer than any internal buffer
      {"\x01\x02", "n", "c", true},
  };
  for (std::size_t i = 0; i < headers.size(); ++i) {
    std::string gz = gzip_with_header(plain, headers[i]);
    for (std::size_t chunk : {1u, 2u, 13u, 4096u, 1u << 20}) {
      Inflated r = inflate(gz, chunk);
      EXPECT_TRUE(r.status.ok()) << i << " " << chunk << " " << r.status.error().message;
      EXPECT_TRUE(r.out == plain) << "got " << r.out.size() << " bytes of " << plain.size() << " at " << i << " " << chunk;
    }
  }
}

// isa-l 2.30's own header parser gets the header CRC wrong when the header arrives in pieces;
// the isa-l engine therefore reads headers itself. Every split point of a full header, in two feeds.
TEST(GzipEngine, AHeaderSplitAnywhereIsReadWhole) {
  std::string plain = mixed_content(5000, 12);
  std::string gz = gzip_with_header(plain, {"\x01\x02\x03", "file.tar", "comment", true});
  std::size_t header_size = 10 + 2 + 3 + 9 + 8 + 2;
  for (std::size_t split = 1; split <= header_size + 2; ++split) {
    Inflated r = inflate(gz, std::vector<std::size_t>{split, gz.size()});
    EXPECT_TRUE(r.status.ok()) << split << " " << r.status.error().message;
    EXPECT_TRUE(r.out == plain) << split;
  }
}

TEST(GzipEngine, UnknownMethodOrReservedFlagsAreErrors) {
  std::string gz = gzip("some bytes");
  std::string method = gz, flags = gz;
  method[2] = 7;
  flags[3] = static_cast<char>(0x20);
  for (std::size_t chunk : {1u, 100u}) {
    EXPECT_TRUE(says(inflate(method, chunk).status, "corrupt gzip")) << chunk;
    EXPECT_TRUE(says(inflate(flags, chunk).status, "corrupt gzip")) << chunk;
  }
}

TEST(GzipEngine, WrongHeaderCrcIsAnError) {
  std::string gz = gzip_with_header("abc", {"", "name", "", true});
  std::size_t hcrc_at = 10 + 5;  // fixed header, then "name\0", then the 2-byte header CRC
  gz[hcrc_at] = static_cast<char>(gz[hcrc_at] ^ 0x55);
  for (std::size_t chunk : {1u, 1000u}) EXPECT_TRUE(says(inflate(gz, chunk).status, "corrupt gzip")) << chunk;
}

TEST(GzipEngine, WrongCrcOrLengthInTheTrailerIsAnError) {
  std::string plain = mixed_content(70000, 2);
  std::string gz = gzip(plain);
  for (std::size_t from_end : {8u, 5u, 4u, 1u}) {  // CRC32 bytes, then ISIZE bytes
    std::string bad = gz;
    bad[bad.size() - from_end] = static_cast<char>(bad[bad.size() - from_end] ^ 0x01);
    for (std::size_t chunk : {1u, 3u, 65536u, 1u << 20}) {
      Inflated r = inflate(bad, chunk);
      EXPECT_TRUE(says(r.status, "corrupt gzip")) << from_end << " " << chunk;
      EXPECT_EQ(r.status.error().code, ocigate::Errc::manifest_invalid);
    }
  }
}

TEST(GzipEngine, ErrorsAreStickyAcrossFeedAndFinish) {
  std::string gz = gzip(mixed_content(20000, 3));
  gz[gz.size() - 6] = static_cast<char>(gz[gz.size() - 6] ^ 0x10);
  Decompressor d;
  ByteSink sink = [](std::span<const std::byte>) { return true; };
  ocigate::Status first = d.feed(as_bytes(gz), sink);
  ASSERT_FALSE(first.ok());
  std::string good = gzip("fine");
  ocigate::Status again = d.feed(as_bytes(good), sink);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, first.error().message);
  ocigate::Status end = d.finish(sink);
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().message, first.error().message);
}

TEST(GzipEngine, CorruptDeflateDataIsAnErrorNeverACrash) {
  std::string gz = gzip(mixed_content(50000, 4));
  std::mt19937 rng(4);
  int errors = 0;
  for (int round = 0; round < 200; ++round) {
    std::string bad = gz;
    for (int k = 0; k < 3; ++k) bad[10 + rng() % (bad.size() - 19)] = static_cast<char>(rng());
    Inflated r = inflate(bad, random_sizes(static_cast<unsigned>(round)));
    if (!r.status.ok()) {
      ++errors;
      EXPECT_EQ(r.status.error().code, ocigate::Errc::manifest_invalid);
    }
  }
  // Changed bytes inside deflate data (never its last byte, whose padding bits are unused) are caught by the decoder or by the CRC.
  EXPECT_EQ(errors, 200);
}

TEST(GzipEngine, ConcatenatedMembersOfEveryKindAtEveryChunkSize) {
  std::string a = mixed_content(150000, 5), b = mixed_content(3, 6), c = mixed_content(70000, 7);
  std::string gz = gzip(a, 9) + gzip("", 6) + gzip(b, 0) + gzip_with_header(c, {"x", "c.tar", "", true}, 1) + gzip(a, 1);
  std::string plain = a + b + c + a;
  for (std::size_t chunk : {1u, 2u, 7u, 512u, 65536u, 1u << 22}) {
    Inflated r = inflate(gz, chunk);
    EXPECT_TRUE(r.status.ok()) << chunk << " " << r.status.error().message;
    EXPECT_TRUE(r.out == plain) << "got " << r.out.size() << " bytes of " << plain.size() << " at " << chunk;
  }
  for (unsigned seed = 0; seed < 5; ++seed) {
    Inflated r = inflate(gz, random_sizes(seed));
    EXPECT_TRUE(r.status.ok()) << seed << " " << r.status.error().message;
    EXPECT_TRUE(r.out == plain) << "got " << r.out.size() << " bytes of " << plain.size() << " at " << seed;
  }
}

TEST(GzipEngine, EveryCutIsTruncationExceptAMemberBoundary) {
  std::string one = gzip("first member"), two = gzip(mixed_content(300, 8));
  std::string gz = one + two;
  for (std::size_t cut = 4; cut <= gz.size(); ++cut) {
    for (std::size_t chunk : {1u, 5u, 1000u}) {
      Inflated r = inflate(gz.substr(0, cut), chunk);
      if (cut == one.size() || cut == gz.size()) {
        EXPECT_TRUE(r.status.ok()) << cut << " " << chunk << " " << r.status.error().message;
      } else {
        EXPECT_TRUE(says(r.status, "truncated gzip")) << cut << " " << chunk;
      }
    }
  }
}

TEST(GzipEngine, BytesAfterTheLastMemberAreIgnoredUnlessTheyStartAnother) {
  std::string plain = mixed_content(80000, 9);
  std::string gz = gzip(plain);
  for (std::size_t chunk : {1u, 3u, 4096u, 1u << 20}) {
    Inflated zeros = inflate(gz + std::string(1024, '\0'), chunk);  // tar-style padding
    EXPECT_TRUE(zeros.status.ok()) << chunk;
    EXPECT_TRUE(zeros.out == plain) << "got " << zeros.out.size() << " bytes of " << plain.size();
    Inflated junk = inflate(gz + "not gzip \x1f\x8b", chunk);
    EXPECT_TRUE(junk.status.ok()) << chunk;
    EXPECT_TRUE(junk.out == plain) << "got " << junk.out.size() << " bytes of " << plain.size();
    // 0x1f opens another member: a half header is truncation, a wrong magic is corruption.
    EXPECT_TRUE(says(inflate(gz + "\x1f\x8b\x08", chunk).status, "truncated gzip")) << chunk;
    EXPECT_TRUE(says(inflate(gz + "\x1f\x00\x08\x00\x00\x00\x00\x00\x00\x03"s, chunk).status, "corrupt gzip")) << chunk;
  }
}

TEST(GzipEngine, OutputComesInPiecesOfTheFixedBufferWhateverTheRatio) {
  std::string plain(8u << 20, '\0');  // 8 MiB of zeros deflate ~1000:1
  std::string gz = gzip(plain, 9);
  ASSERT_LT(gz.size(), 20000u);
  Inflated r = inflate(gz, 1u << 20);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.out.size(), plain.size());
  EXPECT_LE(r.largest_piece, 64u * 1024u);
  Inflated bytewise = inflate(gz, 1);
  ASSERT_TRUE(bytewise.status.ok());
  EXPECT_EQ(bytewise.out.size(), plain.size());
  EXPECT_LE(bytewise.largest_piece, 64u * 1024u);
}

TEST(GzipEngine, AStoppingReaderCancelsTheStream) {
  std::string gz = gzip(mixed_content(300000, 10));
  Decompressor d;
  int pieces = 0;
  ByteSink sink = [&](std::span<const std::byte>) { return ++pieces < 2; };
  ocigate::Status s = d.feed(as_bytes(gz), sink);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ocigate::Errc::cancelled);
  EXPECT_EQ(pieces, 2);
}

TEST(GzipEngine, AgreesWithZlibOnEveryLevel) {
  for (int level = 0; level <= 9; ++level) {
    std::string plain = mixed_content(200000 + static_cast<std::size_t>(level) * 1000, 20u + static_cast<unsigned>(level));
    Inflated r = inflate(gzip(plain, level), random_sizes(static_cast<unsigned>(level)));
    EXPECT_TRUE(r.status.ok()) << level << " " << r.status.error().message;
    EXPECT_TRUE(r.out == plain) << "got " << r.out.size() << " bytes of " << plain.size() << " at " << level;
  }
}

TEST(GzipEngine, CountsBytesInAndOut) {
  std::string plain = mixed_content(123456, 11);
  std::string gz = gzip(plain) + gzip(plain);
  Decompressor d;
  ByteSink sink = [](std::span<const std::byte>) { return true; };
  ASSERT_TRUE(d.feed(as_bytes(gz), sink).ok());
  ASSERT_TRUE(d.finish(sink).ok());
  EXPECT_EQ(d.detected(), Compression::gzip);
  EXPECT_EQ(d.bytes_in(), gz.size());
  EXPECT_EQ(d.bytes_out(), 2 * plain.size());
}
