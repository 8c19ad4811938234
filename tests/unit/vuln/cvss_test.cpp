// CVSS scoring against published scores.
//   v3.1: the worked examples of FIRST's "CVSS v3.1: Examples" document (vector and base score
//         of each named CVE), and rows of tests/vectors_simple31 / vectors_simple3 of Red Hat's
//         `cvss` library (RedHatProductSecurity/cvss, scores taken from FIRST's v3 calculator).
//   v4.0: rows of tests/vectors_simple4, vectors_threat4, vectors_security4 and
//         vectors_supplemental4 of the same library (scores from FIRST's v4.0 calculator).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ocigate/vuln/cvss.hpp"

namespace ocigate::vuln {
namespace {

struct Scored {
  const char* vector;
  double score;
};

TEST(Cvss3, ScoresTheSpecificationExamples) {
  const std::vector<Scored> examples = {
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1},  // CVE-2013-1937 phpMyAdmin reflected XSS
      {"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4},  // CVE-2013-0375 MySQL stored SQL injection
      {"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1},  // CVE-2014-3566 SSLv3 POODLE
      {"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9},  // CVE-2012-1516 VMware guest to host escape
      {"CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:L", 4.2},  // CVE-2009-0783 Apache Tomcat XML parser
      {"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8},  // CVE-2012-0384 Cisco IOS command execution
      {"CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 7.8},  // CVE-2015-1098 Apple iWork DoS
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5},  // CVE-2014-0160 Heartbleed
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8},  // CVE-2014-6271 Shellshock
      {"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:N/I:H/A:N", 6.8},  // CVE-2008-1447 DNS Kaminsky bug
      {"CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 6.8},  // CVE-2014-2005 Sophos login screen bypass
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:L/I:N/A:N", 5.8},  // CVE-2010-0467 Joomla directory traversal
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:N/I:L/A:N", 5.8},  // CVE-2012-1342 Cisco ACL bypass
      {"CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:H", 9.3},  // CVE-2013-6014 Juniper proxy ARP DoS
      {"CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", 5.4},  // CVE-2014-9253 DokuWiki reflected XSS
      {"CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.8},  // CVE-2011-1265 Windows Bluetooth RCE
      {"CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N", 4.6},  // CVE-2014-2019 Apple iOS control bypass
      {"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:H/I:H/A:N", 6.8},  // CVE-2016-2118 Samba Badlock
      {"CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H", 8.2},  // CVE-2016-5729 Lenovo BIOS ThinkPwn
  };
  for (const auto& e : examples) {
    auto score = cvss3_base_score(e.vector);
    ASSERT_TRUE(score.ok()) << e.vector << ": " << score.error().message;
    EXPECT_DOUBLE_EQ(*score, e.score) << e.vector;
  }
}

TEST(Cvss3, ScoresCalculatorRowsIncludingRoundupEdgesAndVersion30) {
  const std::vector<Scored> rows = {
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0},  // capped at 10
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:L/A:L", 9.9},
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0},   // no impact
      {"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6},
      {"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:C/C:L/I:N/A:N", 1.8},
      {"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:L", 10.0},
      {"CVSS:3.0/AV:L/AC:H/PR:L/UI:R/S:U/C:L/I:L/A:L", 4.2},
      // Temporal and environmental metrics do not change the base score.
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:R/CR:L/MAV:P", 9.8},
  };
  for (const auto& r : rows) {
    auto score = cvss3_base_score(r.vector);
    ASSERT_TRUE(score.ok()) << r.vector << ": " << score.error().message;
    EXPECT_DOUBLE_EQ(*score, r.score) << r.vector;
  }
}

TEST(Cvss3, RefusesMalformedVectors) {
  for (const char* bad : {"", "CVSS:3.1", "CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                          "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",              // A missing
                          "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:L",      // repeated
                          "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",          // bad value
                          "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1",     // unknown metric
                          "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/",         // trailing slash
                          "CVSS:3.1//AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                          "CVSS:3.1/AVN/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}) {
    EXPECT_FALSE(cvss3_base_score(bad).ok()) << bad;
  }
}

TEST(Cvss4, ScoresCalculatorRows) {
  const std::vector<Scored> rows = {
      // vectors_simple4
      {"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:H/VA:L/SC:N/SI:H/SA:L", 9.2},
      {"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:L/SC:H/SI:N/SA:L", 7.8},
      {"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:N/SC:N/SI:L/SA:N", 6.9},
      {"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 8.6},
      {"CVSS:4.0/AV:N/AC:H/AT:P/PR:H/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 7.3},
      // halves that floating point computes just below .x5: rounded up
      {"CVSS:4.0/AV:N/AC:L/AT:P/PR:H/UI:A/VC:N/VI:H/VA:L/SC:N/SI:N/SA:L", 5.7},
      {"CVSS:4.0/AV:L/AC:L/AT:P/PR:N/UI:A/VC:N/VI:N/VA:L/SC:H/SI:H/SA:H", 5.0},
      // vectors_threat4: E lowers the score; E:A is the default
      {"CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:A", 7.3},
      {"CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:P", 5.9},
      {"CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:U", 4.1},
      {"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N/E:A", 0.0},
      // vectors_security4: requirements
      {"CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/CR:H/IR:H/AR:M", 7.2},
      // vectors_supplemental4: supplemental metrics change nothing
      {"CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/S:N/AU:N/R:A/V:D/RE:L/U:Green", 7.3},
  };
  for (const auto& r : rows) {
    auto score = cvss4_score(r.vector);
    ASSERT_TRUE(score.ok()) << r.vector << ": " << score.error().message;
    EXPECT_DOUBLE_EQ(*score, r.score) << r.vector;
  }
}

TEST(Cvss4, RefusesMalformedVectors) {
  for (const char* bad : {"CVSS:4.0", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                          "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N",        // SA missing
                          "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:S/SA:N",   // S only in MSI
                          "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/U:Blue"}) {
    EXPECT_FALSE(cvss4_score(bad).ok()) << bad;
  }
}

TEST(Severity, BandsFollowTheSpecificationTable) {
  EXPECT_EQ(severity_of_score(0.0), Severity::none);
  EXPECT_EQ(severity_of_score(0.1), Severity::low);
  EXPECT_EQ(severity_of_score(3.9), Severity::low);
  EXPECT_EQ(severity_of_score(4.0), Severity::medium);
  EXPECT_EQ(severity_of_score(6.9), Severity::medium);
  EXPECT_EQ(severity_of_score(7.0), Severity::high);
  EXPECT_EQ(severity_of_score(8.9), Severity::high);
  EXPECT_EQ(severity_of_score(9.0), Severity::critical);
  EXPECT_EQ(severity_of_score(10.0), Severity::critical);
  EXPECT_EQ(parse_severity("high"), Severity::high);
  EXPECT_EQ(parse_severity("High"), std::nullopt);
  EXPECT_STREQ(severity_text(Severity::unknown), "unknown");
}

}  // namespace
}  // namespace ocigate::vuln
