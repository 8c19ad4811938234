#include <gtest/gtest.h>

#include "helpers.hpp"
#include "ocigate/layers/decompress.hpp"
#include "ocigate/layers/tar.hpp"

namespace {

using namespace ocigate::layers;
using namespace ocigate::layers::test;

struct Recorder : TarVisitor {
  std::vector<TarEntry> entries;
  std::vector<std::string> contents;
  int ends = 0;
  void entry(const TarEntry& e) override {
    entries.push_back(e);
    contents.emplace_back();
  }
  void data(std::span<const std::byte> bytes) override {
    contents.back().append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  void entry_end() override { ++ends; }
};

struct Read {
  Recorder rec;
  ocigate::Status status = ocigate::ok_status();
};

std::unique_ptr<Read> read_tar(const std::string& bytes, std::size_t chunk = 1 << 20, TarLimits limits = {}) {
  auto r = std::make_unique<Read>();
  TarReader reader(r->rec, limits);
  for (std::size_t at = 0; at < bytes.size() && r->status.ok(); at += chunk) {
    r->status = reader.feed(as_bytes(bytes.substr(at, chunk)));
  }
  if (r->status.ok()) r->status = reader.finish();
  return r;
}

std::string decompress(const std::string& in, std::size_t chunk, ocigate::Status* status = nullptr) {
  Decompressor d;
  std::string out;
  ByteSink sink = [&](std::span<const std::byte> b) {
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
    return true;
  };
  ocigate::Status s = ocigate::ok_status();
  for (std::size_t at = 0; at < in.size() && s.ok(); at += chunk) s = d.feed(as_bytes(in.substr(at, chunk)), sink);
  if (s.ok()) s = d.finish(sink);
  if (status) *status = s;
  return out;
}

}  // namespace

// ---- media types and decompression

TEST(MediaType, KnowsOciAndDockerLayerTypes) {
  EXPECT_EQ(classify_media_type(tar_type).compression, Compression::none);
  EXPECT_TRUE(classify_media_type(tar_type).layer);
  EXPECT_EQ(classify_media_type(gzip_type).compression, Compression::gzip);
  EXPECT_EQ(classify_media_type(zstd_type).compression, Compression::zstd);
  EXPECT_EQ(classify_media_type(docker_type).compression, Compression::gzip);
  EXPECT_TRUE(classify_media_type("application/vnd.docker.image.rootfs.diff.tar").layer);
  EXPECT_FALSE(classify_media_type("application/vnd.oci.image.config.v1+json").layer);
  EXPECT_FALSE(classify_media_type("application/vnd.oci.image.layer.v1.tarball").layer);
}

TEST(MediaType, ForeignAndNondistributableLayersAreForeign) {
  EXPECT_TRUE(foreign_layer("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"));
  EXPECT_TRUE(foreign_layer("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"));
  EXPECT_TRUE(foreign_layer("application/vnd.oci.image.layer.nondistributable.v1.tar"));
  EXPECT_FALSE(foreign_layer(gzip_type));
  auto r = foreign_report("sha256:f", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip");
  EXPECT_EQ(r.status, LayerReport::Status::foreign);
  EXPECT_EQ(r.error, "foreign layer, not inspected");
}

TEST(Decompress, GzipAndZstdRoundTripAtEveryChunkSize) {
  std::string plain;
  for (int i = 0; i < 20000; ++i) plain += std::to_string(i * 7919) + ",";
  for (std::size_t chunk : {1u, 3u, 512u, 65536u}) {
    EXPECT_EQ(decompress(gzip(plain), chunk), plain) << chunk;
    EXPECT_EQ(decompress(zstd(plain), chunk), plain) << chunk;
    EXPECT_EQ(decompress(plain, chunk), plain) << chunk;
  }
}

TEST(Decompress, OutputEndingOnTheBufferBoundaryIsNotTruncation) {
  for (std::size_t size : {65535u, 65536u, 65537u, 131072u, 262144u}) {
    std::string plain(size, 'b');
    for (std::size_t chunk : {1u, 4096u, 1u << 20}) {
      ocigate::Status status = ocigate::ok_status();
      EXPECT_EQ(decompress(zstd(plain), chunk, &status), plain);
      EXPECT_TRUE(status.ok()) << size << " " << chunk << " " << status.error().message;
      EXPECT_EQ(decompress(gzip(plain), chunk, &status), plain);
      EXPECT_TRUE(status.ok()) << size << " " << chunk << " " << status.error().message;
    }
  }
}

TEST(Decompress, ConcatenatedGzipMembersAreOneStream) {
  EXPECT_EQ(decompress(gzip("hello ") + gzip("world"), 5), "hello world");
}

TEST(Decompress, TruncatedStreamsAreErrors) {
  std::string plain(100000, 'a');
  for (int i = 0; i < 1000; ++i) plain[static_cast<std::size_t>(i) * 97] = static_cast<char>('b' + i % 20);
  ocigate::Status status = ocigate::ok_status();
  std::string gz = gzip(plain);
  decompress(gz.substr(0, gz.size() - 5), 100, &status);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("truncated gzip"), std::string::npos);
  std::string zs = zstd(plain);
  decompress(zs.substr(0, zs.size() - 5), 100, &status);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("truncated zstd"), std::string::npos);
}

TEST(Decompress, CorruptGzipIsAnError) {
  std::string gz = gzip(std::string(5000, 'q'));
  for (std::size_t i = 12; i < 30; ++i) gz[i] = static_cast<char>(0xff);
  ocigate::Status status = ocigate::ok_status();
  decompress(gz, 7, &status);
  EXPECT_FALSE(status.ok());
}

// ---- tar

TEST(Tar, ReadsUstarEntriesAndContent) {
  auto r = read_tar(Tar().dir("etc/").file("etc/hosts", "127.0.0.1 localhost\n").symlink("etc/mtab", "/proc/mounts").bytes());
  ASSERT_TRUE(r->status.ok()) << r->status.error().message;
  ASSERT_EQ(r->rec.entries.size(), 3u);
  EXPECT_EQ(r->rec.entries[0].type, EntryType::directory);
  EXPECT_EQ(r->rec.entries[1].path, "etc/hosts");
  EXPECT_EQ(r->rec.contents[1], "127.0.0.1 localhost\n");
  EXPECT_EQ(r->rec.entries[2].linkname, "/proc/mounts");
  EXPECT_EQ(r->rec.ends, 3);
}

TEST(Tar, PaxOverridesPathLinkpathAndSize) {
  std::string long_path = "usr/share/" + std::string(180, 'p') + "/" + std::string(120, 'q') + "/file";
  std::string long_link = "target/" + std::string(150, 'l');
  Tar t;
  t.pax({{"path", long_path}, {"mtime", "1700000000.5"}}).file("short", "data");
  t.pax({{"linkpath", long_link}}).symlink("lnk", "short-link");
  t.pax({{"comment", "global"}}, 'g');
  t.pax({{"uid", "4242"}, {"size", "3"}}).header("sized", "abc", Tar::opts('0', 0644, "", 3));
  auto r = read_tar(t.bytes(), 1);
  ASSERT_TRUE(r->status.ok()) << r->status.error().message;
  ASSERT_EQ(r->rec.entries.size(), 3u);
  EXPECT_EQ(r->rec.entries[0].path, long_path);
  EXPECT_EQ(r->rec.contents[0], "data");
  EXPECT_EQ(r->rec.entries[1].linkname, long_link);
  EXPECT_EQ(r->rec.entries[2].uid, 4242u);
  EXPECT_EQ(r->rec.contents[2], "abc");
}

TEST(Tar, GnuLongNamesAndLinks) {
  std::string long_name = "opt/" + std::string(300, 'n');
  std::string long_link = "opt/" + std::string(250, 'k');
  auto r = read_tar(Tar().gnu_long('L', long_name).gnu_long('K', long_link).hardlink("ignored", "ignored").bytes(), 13);
  ASSERT_TRUE(r->status.ok()) << r->status.error().message;
  ASSERT_EQ(r->rec.entries.size(), 1u);
  EXPECT_EQ(r->rec.entries[0].path, long_name);
  EXPECT_EQ(r->rec.entries[0].linkname, long_link);
  EXPECT_EQ(r->rec.entries[0].type, EntryType::hard_link);
}

TEST(Tar, UnknownAndSparseTypesAreSkippedByTheirSize) {
  Tar t;
  t.header("sparse", std::string(1000, 's'), Tar::opts('S', 0644, "", ~0ull)).header("vol", "", Tar::opts('V', 0644, "", ~0ull));
  t.header("weird", std::string(600, 'w'), Tar::opts('Z', 0644, "", ~0ull)).file("after", "ok");
  auto r = read_tar(t.bytes(), 100);
  ASSERT_TRUE(r->status.ok()) << r->status.error().message;
  ASSERT_EQ(r->rec.entries.size(), 1u);
  EXPECT_EQ(r->rec.entries[0].path, "after");
  EXPECT_EQ(r->rec.contents[0], "ok");
}

TEST(Tar, HardLinkSizeIsNotContent) {
  // A hard link header with a size must not swallow the next header (Go's reader agrees).
  auto r = read_tar(Tar().header("h", "", Tar::opts('1', 0644, "t", 512)).file("next", "n").bytes());
  ASSERT_TRUE(r->status.ok()) << r->status.error().message;
  ASSERT_EQ(r->rec.entries.size(), 2u);
  EXPECT_EQ(r->rec.entries[1].path, "next");
}

TEST(Tar, CorruptChecksumIsAnError) {
  std::string bytes = Tar().file("a", "1").file("b", "2").bytes();
  bytes[1024 + 3] = 'X';  // inside the second header's name
  auto r = read_tar(bytes);
  ASSERT_FALSE(r->status.ok());
  EXPECT_NE(r->status.error().message.find("checksum"), std::string::npos);
  EXPECT_EQ(r->rec.entries.size(), 1u);
}

TEST(Tar, TruncationInsideContentOrHeaderIsAnError) {
  std::string bytes = Tar().file("a", std::string(2000, 'a')).bytes();
  EXPECT_FALSE(read_tar(bytes.substr(0, 1500))->status.ok());
  EXPECT_FALSE(read_tar(bytes.substr(0, 300))->status.ok());
  // Ending on an entry boundary without the end blocks is accepted.
  EXPECT_TRUE(read_tar(Tar().file("a", "1").unterminated())->status.ok());
}

TEST(Tar, OversizedMetadataIsRefused) {
  auto r = read_tar(Tar().pax({{"path", std::string(5000, 'p')}}).file("x").bytes(), 512, TarLimits{100, 4096});
  ASSERT_FALSE(r->status.ok());
  EXPECT_NE(r->status.error().message.find("PAX header"), std::string::npos);
}

TEST(Tar, MalformedPaxIsAnError) {
  Tar t;
  t.header("PaxHeaders/x", "99 path=x\n", Tar::opts('x', 0644, "", ~0ull)).file("x");
  EXPECT_FALSE(read_tar(t.bytes())->status.ok());
}

TEST(Tar, TarBombStopsAtTheEntryLimit) {
  Tar t;
  for (int i = 0; i < 2001; ++i) t.file("f" + std::to_string(i), "");
  auto r = read_tar(t.bytes(), 4096, TarLimits{2000, 1 << 20});
  ASSERT_FALSE(r->status.ok());
  EXPECT_NE(r->status.error().message.find("tar bomb"), std::string::npos);
  EXPECT_EQ(r->rec.entries.size(), 2000u);
}

// What a reader makes of garbage must not depend on how the bytes were cut into pieces, every
// entry it reports is ended with its declared content (or the read fails saying why), and noise
// that is no tar at all is an error, never an empty success.
namespace {

void expect_same_read(const Read& whole, const Read& pieces, const std::string& what) {
  ASSERT_EQ(whole.status.ok(), pieces.status.ok()) << what;
  if (!whole.status.ok()) {
    EXPECT_FALSE(whole.status.error().message.empty()) << what;
    EXPECT_EQ(whole.status.error().message, pieces.status.error().message) << what;
  }
  ASSERT_EQ(whole.rec.entries.size(), pieces.rec.entries.size()) << what;
  for (std::size_t i = 0; i < whole.rec.entries.size(); ++i) {
    EXPECT_EQ(whole.rec.entries[i].path, pieces.rec.entries[i].path) << what;
    EXPECT_EQ(whole.rec.contents[i], pieces.rec.contents[i]) << what;
  }
}

void expect_consistent(const Read& read, const std::string& what) {
  if (!read.status.ok()) return;
  EXPECT_EQ(read.rec.ends, static_cast<int>(read.rec.entries.size())) << what;
  for (std::size_t i = 0; i < read.rec.entries.size(); ++i) {
    const auto& entry = read.rec.entries[i];
    if (entry.type == EntryType::file) {
      EXPECT_EQ(read.rec.contents[i].size(), entry.size) << what;
    }
  }
}

}  // namespace

TEST(Tar, GarbageIsReadTheSameInAnyPiecesAndNoiseIsAnError) {
  std::mt19937 rng(7);
  std::string valid = Tar().pax({{"path", std::string(200, 'p')}}).file("a", "abc").gnu_long('L', "long").file("b", "x").bytes();
  int failures = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string bytes = valid;
    for (int k = 0; k < 4; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    const std::string what = "mutated round " + std::to_string(round);
    auto whole = read_tar(bytes);
    auto pieces = read_tar(bytes, 1 + rng() % 700);
    expect_same_read(*whole, *pieces, what);
    expect_consistent(*whole, what);
    failures += whole->status.ok() ? 0 : 1;

    std::string noise(1 + rng() % 3000, '\0');
    for (auto& c : noise) c = static_cast<char>(rng() | 1);  // never an all-zero end-of-archive block
    auto read = read_tar(noise, 1 + rng() % 700);
    EXPECT_FALSE(read->status.ok()) << "noise of " << noise.size() << " bytes read as a tar";
    EXPECT_TRUE(read->rec.entries.empty());
  }
  EXPECT_GT(failures, 0) << "some mutations must break the archive, or the test proves nothing";
}
