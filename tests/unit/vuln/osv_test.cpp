// OSV records: parsing real record shapes and the schema's evaluation algorithm.
#include <gtest/gtest.h>

#include "ocigate/vuln/osv.hpp"

namespace ocigate::vuln::osv {
namespace {

Range ecosystem_range(std::vector<Event> events) { return Range{"ECOSYSTEM", std::move(events)}; }
Event introduced(std::string v) { return {EventKind::introduced, std::move(v)}; }
Event fixed(std::string v) { return {EventKind::fixed, std::move(v)}; }
Event last_affected(std::string v) { return {EventKind::last_affected, std::move(v)}; }
Event limit(std::string v) { return {EventKind::limit, std::move(v)}; }

bool hit(const Range& r, const char* version, Scheme scheme = Scheme::dpkg) {
  auto result = range_affects(r, scheme, version);
  EXPECT_TRUE(result.ok()) << version << ": " << (result.ok() ? "" : result.error().message);
  return result.ok() && *result;
}

TEST(OsvEvaluation, IntroducedZeroAndFixed) {
  Range r = ecosystem_range({introduced("0"), fixed("3.0.11-1~deb12u2")});
  EXPECT_TRUE(hit(r, "3.0.9-1"));
  EXPECT_TRUE(hit(r, "3.0.11-1~deb12u1"));
  EXPECT_FALSE(hit(r, "3.0.11-1~deb12u2"));  // the fixed version itself is not affected
  EXPECT_FALSE(hit(r, "3.0.15-1~deb12u1"));
  EXPECT_TRUE(hit(r, "0~1"));  // "0" sorts before every version, even those below dpkg's "0"
}

TEST(OsvEvaluation, UnfixedRangeAffectsEverything) {
  Range r = ecosystem_range({introduced("0")});
  EXPECT_TRUE(hit(r, "1:2.36-9+deb12u4"));
}

TEST(OsvEvaluation, IntroducedLaterThanZero) {
  Range r = ecosystem_range({introduced("8.13.0-r0"), fixed("8.22.0-r0")});
  EXPECT_FALSE(hit(r, "8.12.1-r0", Scheme::apk));
  EXPECT_TRUE(hit(r, "8.13.0-r0", Scheme::apk));
  EXPECT_TRUE(hit(r, "8.21.0-r3", Scheme::apk));
  EXPECT_FALSE(hit(r, "8.22.0-r0", Scheme::apk));
}

TEST(OsvEvaluation, LastAffectedIncludesThatVersionOnly) {
  Range r = ecosystem_range({introduced("0"), last_affected("2.1.214-1")});
  EXPECT_TRUE(hit(r, "2.1.214-1"));
  EXPECT_FALSE(hit(r, "2.1.214-2"));
  EXPECT_FALSE(hit(r, "2.2-1"));
}

TEST(OsvEvaluation, LimitBoundsTheRange) {
  Range r = ecosystem_range({introduced("1.0-1"), limit("2.0-1")});
  EXPECT_TRUE(hit(r, "1.5-1"));
  EXPECT_FALSE(hit(r, "2.0-1"));
  EXPECT_FALSE(hit(r, "0.9-1"));
  Range star = ecosystem_range({introduced("1.0-1"), limit("*")});
  EXPECT_TRUE(hit(star, "99-1"));
  // Several limits: below any of them is enough.
  Range two = ecosystem_range({introduced("0"), limit("1.0-1"), limit("3.0-1")});
  EXPECT_TRUE(hit(two, "2.0-1"));
  EXPECT_FALSE(hit(two, "3.0-1"));
}

TEST(OsvEvaluation, UnsortedEventsAreSortedFirst) {
  // The schema only recommends sorted events; these are the multiple-range example reversed.
  Range r = ecosystem_range({fixed("3.2.5-1"), introduced("3.0.0-1"), fixed("1.0.2-1"), introduced("1.0.0-1")});
  EXPECT_FALSE(hit(r, "0.9-1"));
  EXPECT_TRUE(hit(r, "1.0.1-1"));
  EXPECT_FALSE(hit(r, "1.0.2-1"));
  EXPECT_FALSE(hit(r, "2.0-1"));
  EXPECT_TRUE(hit(r, "3.1-1"));
  EXPECT_FALSE(hit(r, "3.2.5-1"));
  EXPECT_FALSE(hit(r, "4.0-1"));
}

TEST(OsvEvaluation, MultipleRangesAndVersionsLists) {
  Affected a;
  a.ranges = {ecosystem_range({introduced("1.0-1"), fixed("1.2-1")}), ecosystem_range({introduced("2.0-1"), fixed("2.3-1")})};
  a.versions = {"5.0-1"};
  auto yes = [&](const char* v) {
    auto r = affects(a, Scheme::dpkg, v);
    EXPECT_TRUE(r.ok());
    return r.ok() && *r;
  };
  EXPECT_TRUE(yes("1.1-1"));
  EXPECT_FALSE(yes("1.5-1"));
  EXPECT_TRUE(yes("2.1-1"));
  EXPECT_TRUE(yes("5.0-1"));   // listed explicitly
  EXPECT_FALSE(yes("5.0-2"));  // versions are matched exactly
  EXPECT_EQ(fixed_version(a, Scheme::dpkg, "1.1-1"), "1.2-1");
  EXPECT_EQ(fixed_version(a, Scheme::dpkg, "2.1-1"), "2.3-1");
  EXPECT_EQ(fixed_version(a, Scheme::dpkg, "5.0-1"), std::nullopt);  // listed, no fix known
}

TEST(OsvEvaluation, FixedVersionIsTheNextFixAboveTheInstalledOne) {
  Affected a;
  a.ranges = {ecosystem_range({introduced("0"), fixed("7.88.1-1"), introduced("7.88.1-5"), fixed("7.88.1-10+deb12u6")})};
  EXPECT_EQ(fixed_version(a, Scheme::dpkg, "7.74.0-1"), "7.88.1-1");
  EXPECT_EQ(fixed_version(a, Scheme::dpkg, "7.88.1-6"), "7.88.1-10+deb12u6");
  EXPECT_EQ(fixed_version(a, Scheme::dpkg, "7.88.1-3"), std::nullopt);  // not affected
  Affected unfixed;
  unfixed.ranges = {ecosystem_range({introduced("0")})};
  EXPECT_EQ(fixed_version(unfixed, Scheme::dpkg, "2.36-9"), std::nullopt);
}

TEST(OsvEvaluation, OtherRangeTypesAffectNothing) {
  Range git{"GIT", {introduced("0"), fixed("abc123")}};
  auto r = range_affects(git, Scheme::dpkg, "1.0-1");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

TEST(OsvEvaluation, InvalidVersionsAreErrors) {
  Range r = ecosystem_range({introduced("0"), fixed("not a version")});
  EXPECT_FALSE(range_affects(r, Scheme::dpkg, "1.0-1").ok());
  Range ok = ecosystem_range({introduced("0"), fixed("2.0-1")});
  EXPECT_FALSE(range_affects(ok, Scheme::dpkg, "").ok());
  EXPECT_FALSE(range_affects(ok, Scheme::apk, "1.0bc").ok());
}

TEST(OsvEvaluation, RpmEpochsInEvents) {
  Range r = ecosystem_range({introduced("0"), fixed("1:3.0.7-27.el9")});
  EXPECT_TRUE(hit(r, "1:3.0.7-25.el9", Scheme::rpm));
  EXPECT_FALSE(hit(r, "1:3.0.7-27.el9", Scheme::rpm));
  EXPECT_FALSE(hit(r, "1:3.0.7-27.el9_2", Scheme::rpm));
  EXPECT_TRUE(hit(r, "3.0.8-1.el9", Scheme::rpm));  // epoch 0 < 1
}

// The shape of a Debian security tracker record on osv.dev (vulnfeeds' Debian converter):
// DEBIAN- id, the CVE in `upstream`, urgency per release in ecosystem_specific.
constexpr const char* debian_record = R"({
  "id": "DEBIAN-CVE-2024-1111", "upstream": ["CVE-2024-1111"], "modified": "2024-06-01T00:00:00Z",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
  "affected": [
    {"package": {"ecosystem": "Debian:12", "name": "curl"}, "ecosystem_specific": {"urgency": "low"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "7.88.1-10+deb12u6"}]}]},
    {"package": {"ecosystem": "Debian:11", "name": "curl"}, "ecosystem_specific": {"urgency": "unimportant"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}
  ],
  "references": [{"type": "ADVISORY", "url": "https://security-tracker.debian.org/tracker/CVE-2024-1111"}]
})";

TEST(OsvRecord, ParsesADebianTrackerRecord) {
  auto r = parse_record(debian_record);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->id, "DEBIAN-CVE-2024-1111");
  EXPECT_EQ(r->aliases, std::vector<std::string>{"CVE-2024-1111"});
  EXPECT_FALSE(r->withdrawn);
  ASSERT_EQ(r->affected.size(), 2u);
  EXPECT_EQ(r->affected[0].ecosystem, "Debian:12");
  EXPECT_EQ(r->affected[0].name, "curl");
  EXPECT_EQ(r->affected[0].rating, "low");
  ASSERT_EQ(r->affected[0].ranges.size(), 1u);
  EXPECT_EQ(r->affected[0].ranges[0].events[1], fixed("7.88.1-10+deb12u6"));
  // CVSS first: 7.5 high, whatever the urgency says.
  Rating rating = rate(*r, r->affected[0]);
  EXPECT_EQ(rating.severity, Severity::high);
  EXPECT_EQ(rating.score, 7.5);
  EXPECT_EQ(rating.source, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N");
}

TEST(OsvRecord, RatingFallsBackToTheDistributionsWord) {
  auto r = parse_record(R"({"id": "DEBIAN-CVE-2010-4756", "upstream": ["CVE-2010-4756"], "affected": [
    {"package": {"ecosystem": "Debian:12", "name": "glibc"}, "ecosystem_specific": {"urgency": "unimportant"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]},
    {"package": {"ecosystem": "Debian:13", "name": "glibc"}, "ecosystem_specific": {"urgency": "not yet assigned"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]})");
  ASSERT_TRUE(r.ok());
  Rating low = rate(*r, r->affected[0]);
  EXPECT_EQ(low.severity, Severity::none);
  EXPECT_EQ(low.source, "Debian urgency: unimportant");
  EXPECT_EQ(rate(*r, r->affected[1]).severity, Severity::unknown);
  // Ubuntu: a "Ubuntu" severity entry beside (or instead of) the CVSS vector.
  auto u = parse_record(R"({"id": "UBUNTU-CVE-2025-6491", "aliases": [], "upstream": ["CVE-2025-6491"],
    "related": ["USN-7648-1"], "severity": [{"type": "Ubuntu", "score": "medium"}], "affected": [
    {"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "php8.1"}, "versions": ["8.1.2-1ubuntu2.21"],
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "8.1.2-1ubuntu2.22"}]}]}]})");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->related, std::vector<std::string>{"USN-7648-1"});
  Rating ubuntu = rate(*u, u->affected[0]);
  EXPECT_EQ(ubuntu.severity, Severity::medium);
  EXPECT_EQ(ubuntu.source, "Ubuntu priority: medium");
  // Red Hat words under database_specific.
  auto rh = parse_record(R"({"id": "RLSA-2024:1", "database_specific": {"severity": "Important"}, "affected": [
    {"package": {"ecosystem": "Rocky Linux:9", "name": "nginx"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:1.20.1-14.el9_2.1"}]}]}]})");
  ASSERT_TRUE(rh.ok());
  EXPECT_EQ(rate(*rh, rh->affected[0]).severity, Severity::high);
  // A CVSS v4 vector alone is scored.
  auto v4 = parse_record(R"({"id": "X-1", "severity": [{"type": "CVSS_V4",
    "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}], "affected": [{}]})");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(rate(*v4, v4->affected[0]).score, 8.6);
  // Nothing at all: unknown.
  auto none = parse_record(R"({"id": "ALPINE-CVE-2024-1", "affected": [{"package": {"ecosystem": "Alpine:v3.20", "name": "curl"}}]})");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(rate(*none, none->affected[0]).severity, Severity::unknown);
}

TEST(OsvRecord, WithdrawnIsRecorded) {
  auto r = parse_record(R"({"id": "DSA-1-1", "withdrawn": "2024-01-01T00:00:00Z", "affected": []})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->withdrawn);
}

TEST(OsvRecord, MalformedRecordsAreErrorsNotCrashes) {
  for (const char* bad : {"", "{", "[]", "{}", R"({"id": ""})", R"({"id": 5})", R"({"id": "X", "aliases": "CVE-1"})",
                          R"({"id": "X", "affected": {}})", R"({"id": "X", "affected": [5]})",
                          R"({"id": "X", "affected": [{"ranges": [{"type": "ECOSYSTEM"}]}]})",
                          R"({"id": "X", "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}]}]})",
                          R"({"id": "X", "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": [{}]}]}]})",
                          R"({"id": "X", "affected": [{"package": {"name": 1}}]})",
                          R"({"id": "X", "severity": [{"type": "CVSS_V3", "score": 9.8}]})"}) {
    auto r = parse_record(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message.empty());
    }
  }
}

// parse_record reads the text without a JSON document; record_from_json reads the document. On
// every shape (repeated keys: the last wins; nulls; a wrong type at each level) they must agree.
TEST(OsvRecord, ReadingTheTextAgreesWithReadingTheDocument) {
  const char* texts[] = {
      R"({"id": "A", "aliases": ["CVE-1"], "upstream": ["CVE-2"], "related": ["R"], "modified": "m",
          "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"}], "details": "long", "references": [{"url": 1}],
          "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl", "purl": 5},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2-1"}]}],
                        "versions": ["1.0-1"], "ecosystem_specific": {"urgency": "low"}}]})",
      R"({"upstream": ["CVE-2"], "id": "B", "aliases": ["CVE-1"]})",  // upstream first in the text
      R"({"id": "C", "id": "D"})",                                     // the last id wins
      R"({"id": "E", "aliases": 5, "aliases": ["ok"]})",               // a bad value, then a good one
      R"({"id": "F", "aliases": ["ok"], "aliases": 5})",               // the other way round
      R"({"id": "G", "aliases": null, "modified": null, "severity": null, "affected": null, "withdrawn": null})",
      R"({"id": "H", "withdrawn": false})",
      R"({"id": "I", "withdrawn": {}})",
      R"({"id": "J", "withdrawn": 1, "withdrawn": null})",
      R"({"id": "K", "modified": 1})",
      R"({"id": "L", "modified": []})",
      R"({"id": "M", "related": [null]})",
      R"({"id": "N", "severity": [5]})",
      R"({"id": "O", "severity": [{"type": null, "score": "x"}]})",
      R"({"id": "P", "severity": [{"type": "T", "type": 1}]})",
      R"({"id": "Q", "severity": {}})",
      R"({"id": "R", "database_specific": {"severity": "HIGH"}, "ecosystem_specific": {"urgency": 5},
          "affected": [{"package": {"name": "x"}}]})",
      R"({"id": "S", "ecosystem_specific": [1], "database_specific": {"urgency": "low", "urgency": 2, "severity": "s"},
          "affected": [{"database_specific": {"severity": "own"}}, {}]})",
      R"({"id": "T", "affected": [{"package": null, "package": {"name": "p"}}, {"package": []}]})",
      R"({"id": "U", "affected": [{"package": {"ecosystem": []}}]})",
      R"({"id": "V", "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": null}]}]})",
      R"({"id": "W", "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1", "introduced": "2"}]}]}]})",
      R"({"id": "X", "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": null}]}]}]})",
      R"({"id": "Y", "affected": [{"ranges": [{"type": 1, "events": []}]}]})",
      R"({"id": "Z", "affected": [{"ranges": [{"events": [{"limit": "*", "other": []}]}], "ranges": [5]}]})",
      R"({"id": "AA", "affected": [{"versions": ["1", 2]}]})",
      R"({"id": "AB", "affected": [{"versions": {}}]})",
      R"({"id": "AC", "affected": [[]]})",
      R"({"id": "AD", "affected": "x"})",
      R"({"id": "AE", "affected": [], "affected": {}})",
      R"({"id": "AF", "aliases": ["\u00e9\ud83d\ude00"]})",
      R"({"id": 1})",
      R"({"id": ""})",
      R"({"id": null})",
      R"({"id": ["A"]})",
      R"({})",
      R"([])",
      R"("A")",
      R"(5)",
  };
  for (const char* text : texts) {
    auto read = parse_record(text);
    auto from_document = record_from_json(nlohmann::json::parse(text));
    ASSERT_EQ(read.ok(), from_document.ok()) << text;
    if (read.ok()) {
      EXPECT_EQ(*read, *from_document) << text;
    } else {
      EXPECT_EQ(read.error().message, from_document.error().message) << text;
    }
  }
  EXPECT_EQ(parse_record(R"({"id": "A",})").error().message, "OSV record: not valid JSON");
  EXPECT_EQ(parse_record(R"({"id": "A"} {})").error().message, "OSV record: not valid JSON");
}

}  // namespace
}  // namespace ocigate::vuln::osv
