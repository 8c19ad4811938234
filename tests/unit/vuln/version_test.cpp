// Version orders against each tool's own test data. The vectors are a selection of the tricky
// rows of:
//   dpkg: scripts/t/Dpkg_Version.t (the __DATA__ table, "a b result") and lib/dpkg/t/t-version.c
//         (parseversion's accepted and refused strings), dpkg git main;
//   apk:  test/unit/version.data of apk-tools (formerly test/version.data; "a op b" lines and
//         the "version" / "!version" validity lines), apk-tools git master (3.0);
//   rpm:  tests/rpmvercmp.at of rpm (RPMVERCMP(a, b, result)), rpm git master.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "ocigate/vuln/version.hpp"

namespace ocigate::vuln {
namespace {

struct Vector {
  const char* a;
  const char* b;
  int expected;
};

int sgn(int v) { return v < 0 ? -1 : (v > 0 ? 1 : 0); }

// scripts/t/Dpkg_Version.t __DATA__ rows whose versions parseversion accepts.
const std::vector<Vector> dpkg_vectors = {
    {"1.0-1", "2.0-2", -1},
    {"2.2~rc-4", "2.2-1", -1},
    {"2.2-1", "2.2~rc-4", 1},
    {"1.0000-1", "1.0-1", 0},
    {"1", "0:1", 0},
    {"0", "0:0-0", 0},
    {"2:2.5", "1:7.5", 1},
    {"1~", "1", -1},
    {"12345+that-really-is-some-ver-0", "12345+that-really-is-some-ver-10", -1},
    {"1.09", "1.9", 0},
    {"1.0.8+nmu1", "1.0.8", 1},
    {"3.11", "3.10+nmu1", 1},
    {"0.9j-20080306-4", "0.9i-20070324-2", 1},
    {"1.2.0~b7-1", "1.2.0~b6-1", 1},
    {"1.011-1", "1.06-2", 1},
    {"0.0.9+dfsg1-1", "0.0.8+dfsg1-3", 1},
    {"4.6.99+svn6582-1", "4.6.99+svn6496-1", 1},
    {"53", "52", 1},
    {"0.9.9~pre122-1", "0.9.9~pre111-1", 1},
    {"2:2.3.2-2+lenny2", "2:2.3.2-2", 1},
    {"1:3.8.1-1", "3.8.GA-1", 1},
    {"1.0.1+gpl-1", "1.0.1-2", 1},
    {"1a", "1000a", -1},
};

// The same table's rows that are not valid versions (no leading digit), compared part-wise by
// verrevcmp as Dpkg::Version does.
const std::vector<Vector> dpkg_part_vectors = {
    {"foo~1", "foo", -1},         {"foo~foo+Bar", "foo~foo+bar", -1}, {"foo~~", "foo~", -1},
    {"foo.bar", "foobar", 1},     {"foo.bar", "foo1bar", 1},          {"foo.bar", "foo0bar", 1},
    {"foo2.0", "foo2", 1},        {"foo2.0.0", "foo2.10.0", -1},      {"foo2.0", "foo2.0.0", -1},
    {"foo2.0", "foo2.10", -1},    {"foo2.1", "foo2.10", -1},          {"foo", "fo", 1},
};

TEST(DpkgVersion, OrdersAsDpkgsOwnTable) {
  for (const auto& v : dpkg_vectors) {
    auto a = dpkg::parse(v.a);
    auto b = dpkg::parse(v.b);
    ASSERT_TRUE(a.ok()) << v.a << ": " << a.error().message;
    ASSERT_TRUE(b.ok()) << v.b << ": " << b.error().message;
    EXPECT_EQ(dpkg::compare(*a, *b), v.expected) << v.a << " vs " << v.b;
    EXPECT_EQ(dpkg::compare(*b, *a), -v.expected) << v.b << " vs " << v.a;
  }
}

TEST(DpkgVersion, VerrevcmpOrdersTildeBeforeTheEndAndLettersBeforeSymbols) {
  for (const auto& v : dpkg_part_vectors) {
    EXPECT_EQ(sgn(dpkg::compare_part(v.a, v.b)), v.expected) << v.a << " vs " << v.b;
    EXPECT_EQ(sgn(dpkg::compare_part(v.b, v.a)), -v.expected) << v.b << " vs " << v.a;
  }
}

TEST(DpkgVersion, SplitsEpochUpstreamAndRevisionAsParseversion) {
  // lib/dpkg/t/t-version.c test_version_parse: multiple hyphens and colons.
  const std::vector<std::tuple<const char*, unsigned, const char*, const char*>> cases = {
      {"0", 0, "0", ""},
      {"0:0-", 0, "0", ""},
      {"0:0.0-0.0", 0, "0.0", "0.0"},
      {"5:1", 5, "1", ""},
      {"0:0-0-0-0", 0, "0-0-0", "0"},
      {"0:0:0:0-0", 0, "0:0:0", "0"},
      {"0:0-0:0-0", 0, "0-0:0", "0"},
      {"0:09azAZ.-+~:-0", 0, "09azAZ.-+~:", "0"},
      {"0:0-azAZ09.+~", 0, "0", "azAZ09.+~"},
      {"  \t0:0-1", 0, "0", "1"},
      {"\t  0:0-1  \t", 0, "0", "1"},
  };
  for (const auto& [text, epoch, upstream, revision] : cases) {
    auto v = dpkg::parse(text);
    ASSERT_TRUE(v.ok()) << text << ": " << v.error().message;
    EXPECT_EQ(v->epoch, epoch) << text;
    EXPECT_EQ(v->upstream, upstream) << text;
    EXPECT_EQ(v->revision, revision) << text;
  }
}

TEST(DpkgVersion, RefusesWhatParseversionRefuses) {
  std::vector<std::string> bad = {"", "  ", "0:", "0:0 0-1", "-1:0-1", "999999999999999999999999:0-1",
                                  "a:0-0", "A:0-0", "-0", "0:-0", "0:abc3-0", "0:0-0:0"};
  // Invalid characters in the upstream version, then in the revision (t-version.c's loops).
  for (char c : std::string("!#@$%&/|\\<>()[]{};,_=*^'")) bad.push_back(std::string("0:0") + c + "-0");
  for (char c : std::string("!#@$%&/|\\<>()[]{}:;,_=*^'")) bad.push_back(std::string("0:0-") + c);
  for (const auto& text : bad) {
    auto v = dpkg::parse(text);
    EXPECT_FALSE(v.ok()) << "'" << text << "' was accepted";
    if (!v.ok()) {
      EXPECT_FALSE(v.error().message.empty());
    }
    EXPECT_FALSE(compare(Scheme::dpkg, text, "1.0").ok()) << text;
  }
}

// test/unit/version.data rows.
const std::vector<Vector> apk_vectors = {
    {"0.1.0_alpha", "0.1.0_alpha", 0},
    {"0.1.0_alpha2", "0.1.0_alpha", 1},
    {"1.1", "1.1_alpha1", 1},
    {"1.0.4-r3", "1.0.4-r4", -1},
    {"2.3.0b-r1", "2.3.0b-r2", -1},
    {"1.06-r6", "006", -1},
    {"006", "1.0.0", 1},
    {"1.2.2-r1", "1.2.2", 1},
    {"3.1_p16", "3.1_p17", -1},
    {"2.01.01_alpha10", "0.94", 1},
    {"1.0", "0.99.3.20040818", 1},
    {"20060720", "3.0.20060720", 1},
    {"1.4.4-r1", "2.1.9.200602141850", -1},
    {"2.5.1-r8", "2.5.1a-r1", -1},
    {"1.3.5-r10", "1.3.5-r8", 1},
    {"20040401", "2.0.0_rc3-r1", 1},
    {"3.9_pre20060124", "0.01", 1},
    {"1.1.7", "6b-r7", -1},
    {"0.10.0-r1", "0.10.0", 1},
    {"0.10.0", "0.10.1_rc1", -1},
    {"0.15.1b-r2", "0.15.1b", 1},
    {"02.08.01b", "4.77", -1},
    {"1.6d", "1.2.07.8", 1},
    {"1.2.07.8", "1.2.12.04", -1},
    {"1.8.5", "1.8.5_p2", -1},
    {"2.9.11_pre20051101-r3", "2.9.11_pre20051101", 1},
    {"1.6.8_p12-r1", "1.6.8_p9-r2", 1},
    {"0.9.28-r2", "0.9.28.1", -1},
    {"7.0.17", "7.0.174", -1},
    {"4.5_p1-r1", "4.5_p1", 1},
    {"0.1.0_alpha_pre2", "0.1.0_alpha", -1},
    {"1.0.0_pre20191002222144-r0", "1.0.0_pre20210530193627-r0", -1},
    {"6.0_pre1", "6.0", -1},
    {"6.0_p1", "6.0", 1},
    {"8.2.0", "8.2.001", -1},
    {"8.2.0015", "8.2.002", -1},
    {"1.0~1234", "1.0~2345", -1},
    {"1.0~1234-r1", "1.0~2345-r0", -1},
    {"1.0~1234-r1", "1.0~1234-r0", 1},
    // Rows with an invalid side: apk still orders them (its comparison is total).
    {"1.0", "1.0bc", -1},
    {"23_foo", "4_beta", 1},
};

TEST(ApkVersion, OrdersAsApkToolsVersionData) {
  for (const auto& v : apk_vectors) {
    EXPECT_EQ(apk::compare(v.a, v.b), v.expected) << v.a << " vs " << v.b;
    EXPECT_EQ(apk::compare(v.b, v.a), -v.expected) << v.b << " vs " << v.a;
  }
}

TEST(ApkVersion, ValidatesAsApkToolsVersionData) {
  for (const char* ok : {"1.2", "0.1_pre2", "0.1_pre2~1234abcd", "0.1_p1_pre2", "0.1_alpha1_pre2", "0.1_git20240101_pre1",
                         "2.2.39-r1", "1.0.0_pre20191002222144-r0"}) {
    EXPECT_TRUE(apk::valid(ok)) << ok;
  }
  for (const char* bad : {"", "0.1bc", "0.1bc1", "0.1a1", "0.1a.1", "0.1_pre2~", "0.1_pre2~1234xbcd",
                          "0.1_pre2~1234abcd_pre1", "0.1_pre2-r1~1234xbcd", "0.1_foobar", "0.1_foobar1",
                          "0.1-pre1.1", "0.1-r", "0.1-r2_pre1", "0.1-r2_p3_pre1", "0.1-r2-r3", "0.1-r2.1", ".1",
                          "a", "_pre1", "-r1", "0.1_", "0.1_-r0", "0.1__alpha", "0.1_1_alpha"}) {
    EXPECT_FALSE(apk::valid(bad)) << bad;
    EXPECT_FALSE(compare(Scheme::apk, bad, "1.0").ok()) << bad;
  }
}

// tests/rpmvercmp.at RPMVERCMP rows.
const std::vector<Vector> rpm_vectors = {
    {"1.0", "1.0", 0},
    {"2.0.1a", "2.0.1", 1},
    {"5.5p1", "5.5p10", -1},
    {"10xyz", "10.1xyz", -1},
    {"xyz10", "xyz10.1", -1},
    {"xyz.4", "8", -1},
    {"xyz.4", "2", -1},
    {"5.6p1", "6.5p1", -1},
    {"6.0.rc1", "6.0", 1},
    {"10b2", "10a1", 1},
    {"1.0a", "1.0aa", -1},
    {"10.0001", "10.1", 0},
    {"10.0001", "10.0039", -1},
    {"4.999.9", "5.0", -1},
    {"20101121", "20101122", -1},
    {"2_0", "2.0", 0},
    {"a+", "a_", 0},
    {"+a", "_a", 0},
    {"_+", "+_", 0},
    {"+", "_", 0},
    {"1.0~rc1", "1.0", -1},
    {"1.0~rc1", "1.0~rc2", -1},
    {"1.0~rc1~git123", "1.0~rc1", -1},
    {"1.0^", "1.0", 1},
    {"1.0^git1", "1.0^git2", -1},
    {"1.0^git1", "1.01", -1},
    {"1.0^20160101", "1.0.1", -1},
    {"1.0^20160102", "1.0^20160101^git1", 1},
    {"1.0~rc1^git1", "1.0~rc1", 1},
    {"1.0^git1~pre", "1.0^git1", -1},
};

TEST(RpmVersion, OrdersAsRpmvercmpTests) {
  for (const auto& v : rpm_vectors) {
    EXPECT_EQ(rpm::vercmp(v.a, v.b), v.expected) << v.a << " vs " << v.b;
    EXPECT_EQ(rpm::vercmp(v.b, v.a), -v.expected) << v.b << " vs " << v.a;
  }
}

TEST(RpmVersion, ANulEndsTheStringAsInC) {
  // fuzz_version found vercmp("C", "\0p`") and its reverse both saying "greater".
  std::string_view a("C", 1), b("\0p`\0\0e\0r", 9);
  EXPECT_EQ(rpm::vercmp(a, b), -rpm::vercmp(b, a));
  EXPECT_EQ(rpm::vercmp(std::string_view("1.0\0zzz", 7), "1.0"), 0);
  EXPECT_EQ(dpkg::compare_part(std::string_view("1.0\0~", 5), "1.0"), 0);
}

TEST(RpmVersion, ComparesEpochThenVersionThenRelease) {
  const std::vector<Vector> evr = {
      {"1:1.0-1.el9", "2.0-1.el9", 1},      // epoch first
      {"0:1.0-1.el9", "1.0-1.el9", 0},      // a missing epoch is 0
      {"1.0-2.el9", "1.0-10.el9", -1},      // release numerically
      {"1:3.0.7-27.el9", "1:3.0.7-27.el9_2", -1},
      {"1.0", "1.0-5.el9", 0},              // an advisory's bare version matches any release
      {"4.9.3-2.el9_8.1", "0:4.9.3-2.el9_8.1", 0},
  };
  for (const auto& v : evr) {
    auto r = compare(Scheme::rpm, v.a, v.b);
    ASSERT_TRUE(r.ok()) << v.a << " vs " << v.b;
    EXPECT_EQ(*r, v.expected) << v.a << " vs " << v.b;
  }
  auto v = rpm::parse("2:1.2.3-4.el9_1");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->epoch, 2u);
  EXPECT_EQ(v->version, "1.2.3");
  EXPECT_EQ(v->release, "4.el9_1");
  for (const char* bad : {"", "1:", "1:-2", "1.0 -1", "99999999999:1.0-1", "1.0\n-1"}) {
    EXPECT_FALSE(rpm::parse(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace ocigate::vuln
