// The ZIP reader: good archives (stored, deflated, zip64 end records) read back exactly; broken,
// truncated, hostile ones are errors.
#include <gtest/gtest.h>

#include <fstream>

#include "support.hpp"
#include "ocigate/vuln/zip.hpp"
#include "zip_writer.hpp"

namespace ocigate::vuln {
namespace {

using test::make_zip;
using test::ZipFile;

std::string text_of(std::size_t n) {
  std::string s;
  while (s.size() < n) s += R"({"id": "DEBIAN-CVE-2024-)" + std::to_string(s.size()) + R"(", "affected": []})" "\n";
  return s.substr(0, n);
}

TEST(ZipReader, ReadsStoredAndDeflatedEntries) {
  std::string big = text_of(200000);
  auto zip = ZipReader::from_bytes(make_zip({{"a.json", "{}", false}, {"dir/", "", false}, {"Debian/b.json", big, true}}));
  ASSERT_TRUE(zip.ok()) << zip.error().message;
  ASSERT_EQ(zip->entries().size(), 3u);
  EXPECT_EQ(zip->entries()[0].name, "a.json");
  EXPECT_TRUE(zip->entries()[1].directory());
  EXPECT_EQ(zip->entries()[2].method, 8);
  EXPECT_LT(zip->entries()[2].compressed, big.size());
  auto a = zip->read(zip->entries()[0]);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, "{}");
  auto b = zip->read(zip->entries()[2]);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(*b, big);
}

TEST(ZipReader, ReadsEmptyDeflatedEntriesAndRefusesLyingSizes) {
  auto zip = ZipReader::from_bytes(make_zip({{"empty.json", ""}, {"a.json", text_of(3000)}}));
  ASSERT_TRUE(zip.ok()) << zip.error().message;
  auto empty = zip->read(zip->entries()[0]);
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  EXPECT_EQ(*empty, "");
  // The central directory says 100 bytes fewer than the stream inflates to, then 100 more.
  for (int delta : {-100, 100}) {
    ZipEntry lying = zip->entries()[1];
    lying.size = static_cast<std::uint64_t>(static_cast<long long>(lying.size) + delta);
    EXPECT_FALSE(zip->read(lying).ok()) << delta;
  }
}

TEST(ZipReader, ReadsZip64EndRecords) {
  auto zip = ZipReader::from_bytes(make_zip({{"x.json", "[1]"}, {"y.json", "[2]"}}, true));
  ASSERT_TRUE(zip.ok()) << zip.error().message;
  ASSERT_EQ(zip->entries().size(), 2u);
  EXPECT_EQ(*zip->read(zip->entries()[1]), "[2]");
}

TEST(ZipReader, EveryTruncationIsAnError) {
  std::string whole = make_zip({{"a.json", text_of(3000)}, {"b.json", text_of(100), false}});
  for (std::size_t n = 0; n < whole.size(); ++n) {
    auto zip = ZipReader::from_bytes(whole.substr(0, n));
    EXPECT_FALSE(zip.ok()) << "a prefix of " << n << " bytes opened";
  }
}

TEST(ZipReader, CorruptDataIsCaughtByInflateOrTheCrc) {
  std::string data = text_of(5000);
  for (bool deflate : {true, false}) {
    std::string bytes = make_zip({{"a.json", data, deflate}});
    bytes[30 + 6 + 40] ^= 0x20;  // a byte inside the entry's data
    auto zip = ZipReader::from_bytes(bytes);
    ASSERT_TRUE(zip.ok());
    auto r = zip->read(zip->entries()[0]);
    EXPECT_FALSE(r.ok()) << (deflate ? "deflated" : "stored");
  }
}

TEST(ZipReader, RefusesPathTricks) {
  for (const char* name : {"../x.json", "a/../../x.json", "/etc/passwd", "a\\b.json", ".."}) {
    EXPECT_FALSE(ZipReader::from_bytes(make_zip({{name, "{}"}})).ok()) << name;
  }
  std::string nul_name("a\0b.json", 8);
  EXPECT_FALSE(ZipReader::from_bytes(make_zip({{nul_name, "{}"}})).ok());
}

TEST(ZipReader, RefusesOverlappingEntries) {
  // Two central directory entries naming one local header: the second's offset is patched to
  // the first's.
  std::string bytes = make_zip({{"a.json", "{}", false}, {"b.json", "{}", false}});
  std::size_t cd = bytes.rfind(std::string("PK\1\2", 4));
  ASSERT_NE(cd, std::string::npos);
  for (int i = 0; i < 4; ++i) bytes[cd + 42 + i] = 0;
  EXPECT_FALSE(ZipReader::from_bytes(bytes).ok());
}

TEST(ZipReader, LimitsStopBombsBeforeTheyInflate) {
  std::string zeros(1 << 20, '\0');  // deflates about 1000:1
  ZipLimits tight;
  tight.max_entry_bytes = 1 << 19;
  auto zip = ZipReader::from_bytes(make_zip({{"bomb.json", zeros}}), tight);
  ASSERT_TRUE(zip.ok());
  EXPECT_FALSE(zip->read(zip->entries()[0]).ok());

  ZipLimits ratio;
  ratio.max_ratio = 100;
  zip = ZipReader::from_bytes(make_zip({{"bomb.json", zeros}}), ratio);
  ASSERT_TRUE(zip.ok());
  EXPECT_FALSE(zip->read(zip->entries()[0]).ok());

  ZipLimits total;
  total.max_total_bytes = 150000;
  zip = ZipReader::from_bytes(make_zip({{"a.json", text_of(100000)}, {"b.json", text_of(100000)}}), total);
  ASSERT_TRUE(zip.ok());
  EXPECT_TRUE(zip->read(zip->entries()[0]).ok());
  EXPECT_FALSE(zip->read(zip->entries()[1]).ok());

  ZipLimits few;
  few.max_entries = 1;
  EXPECT_FALSE(ZipReader::from_bytes(make_zip({{"a.json", "{}"}, {"b.json", "{}"}}), few).ok());
}

TEST(ZipReader, RefusesGarbageAndMissingFiles) {
  for (std::string junk : {std::string(), std::string("PK"), std::string(100, 'x'), std::string("PK\5\6", 4) + std::string(18, '\xff')}) {
    EXPECT_FALSE(ZipReader::from_bytes(junk).ok());
  }
  ocigate::test::TempDir dir;
  auto missing = ZipReader::open(dir.path() + "/nope.zip");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::storage_error);
  std::ofstream(dir.path() + "/all.zip") << make_zip({{"DEBIAN-CVE-2024-1.json", "{}"}});
  auto file = ZipReader::open(dir.path() + "/all.zip");
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(*file->read(file->entries()[0]), "{}");
}

}  // namespace
}  // namespace ocigate::vuln
