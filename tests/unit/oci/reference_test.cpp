#include "ocigate/oci/reference.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ocigate::oci {
namespace {

const std::string some_digest = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// A 255-character name made of valid components: "aaaa…/aaaa…/…".
std::string name_of_length(std::size_t length) {
  std::string name;
  while (name.size() < length) name.push_back(name.size() % 10 == 9 ? '/' : 'a');
  if (name.back() == '/') name.back() = 'a';
  return name;
}

TEST(RepositoryName, AcceptsSimpleNames) {
  EXPECT_TRUE(valid_repository_name("a"));
  EXPECT_TRUE(valid_repository_name("alpine"));
  EXPECT_TRUE(valid_repository_name("library/alpine"));
  EXPECT_TRUE(valid_repository_name("0"));
  EXPECT_TRUE(valid_repository_name("a/b/c/d/e"));
  EXPECT_TRUE(valid_repository_name("ghcr.io/owner/repo"));
}

TEST(RepositoryName, AcceptsTheDistributionSpecExamples) {
  for (const char* name : {"library/ubuntu", "docker/stevvooe/app", "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
                           "a/a/a/a", "a/aa/a", "b.gcr.io/test.example.com/my-app", "xn--n3h.com/myimage",
                           "foo_bar.com/baz", "9abc/x0"}) {
    EXPECT_TRUE(valid_repository_name(name)) << name;
  }
}

TEST(RepositoryName, RejectsPercentEncodedDots) {
  EXPECT_FALSE(valid_repository_name("%2e%2e"));
  EXPECT_FALSE(valid_repository_name("a/%2e%2e/b"));
  EXPECT_FALSE(valid_repository_name("%2E"));
}

TEST(RepositoryName, AcceptsEverySeparatorKind) {
  EXPECT_TRUE(valid_repository_name("a.b_c__d-e--f/g"));
  EXPECT_TRUE(valid_repository_name("a-b"));
  EXPECT_TRUE(valid_repository_name("a---------b"));
  EXPECT_TRUE(valid_repository_name("a.b.c"));
  EXPECT_TRUE(valid_repository_name("a_b_c"));
  EXPECT_TRUE(valid_repository_name("a__b__c"));
}

TEST(RepositoryName, AcceptsExactly255Characters) {
  auto name = name_of_length(255);
  ASSERT_EQ(name.size(), 255u);
  EXPECT_TRUE(valid_repository_name(name));
  EXPECT_TRUE(valid_repository_name(std::string(255, 'a')));
}

TEST(RepositoryName, Rejects256Characters) {
  auto name = name_of_length(256);
  ASSERT_EQ(name.size(), 256u);
  EXPECT_FALSE(valid_repository_name(name));
  EXPECT_FALSE(valid_repository_name(std::string(256, 'a')));
  EXPECT_FALSE(valid_repository_name(std::string(100000, 'a')));
}

TEST(RepositoryName, RejectsEmptyNameAndEmptyComponents) {
  EXPECT_FALSE(valid_repository_name(""));
  EXPECT_FALSE(valid_repository_name("/"));
  EXPECT_FALSE(valid_repository_name("a/"));
  EXPECT_FALSE(valid_repository_name("/a"));
  EXPECT_FALSE(valid_repository_name("a//b"));
  EXPECT_FALSE(valid_repository_name("a/b/"));
}

TEST(RepositoryName, RejectsUpperCase) {
  EXPECT_FALSE(valid_repository_name("A"));
  EXPECT_FALSE(valid_repository_name("Library/alpine"));
  EXPECT_FALSE(valid_repository_name("library/Alpine"));
}

TEST(RepositoryName, RejectsDotComponentsAndPathTraversal) {
  EXPECT_FALSE(valid_repository_name("."));
  EXPECT_FALSE(valid_repository_name(".."));
  EXPECT_FALSE(valid_repository_name("a/../b"));
  EXPECT_FALSE(valid_repository_name("a/./b"));
  EXPECT_FALSE(valid_repository_name("../a"));
  EXPECT_FALSE(valid_repository_name("a..b"));
}

TEST(RepositoryName, RejectsSeparatorsAtTheEdgesOfAComponent) {
  EXPECT_FALSE(valid_repository_name("a_"));
  EXPECT_FALSE(valid_repository_name("_a"));
  EXPECT_FALSE(valid_repository_name("a-"));
  EXPECT_FALSE(valid_repository_name("-a"));
  EXPECT_FALSE(valid_repository_name("a."));
  EXPECT_FALSE(valid_repository_name(".a"));
  EXPECT_FALSE(valid_repository_name("a/-b"));
  EXPECT_FALSE(valid_repository_name("a_/b"));
}

TEST(RepositoryName, RejectsSeparatorRunsOutsideTheGrammar) {
  EXPECT_FALSE(valid_repository_name("a___b"));
  EXPECT_FALSE(valid_repository_name("a._b"));
  EXPECT_FALSE(valid_repository_name("a-.b"));
  EXPECT_FALSE(valid_repository_name("a.-b"));
  EXPECT_FALSE(valid_repository_name("a_-b"));
}

TEST(RepositoryName, RejectsCharactersOutsideTheGrammar) {
  EXPECT_FALSE(valid_repository_name("a%2fb"));
  EXPECT_FALSE(valid_repository_name("a:b"));
  EXPECT_FALSE(valid_repository_name("a b"));
  EXPECT_FALSE(valid_repository_name("a@b"));
  EXPECT_FALSE(valid_repository_name("a\\b"));
  EXPECT_FALSE(valid_repository_name("a\nb"));
  EXPECT_FALSE(valid_repository_name(std::string("a\0b", 3)));
  EXPECT_FALSE(valid_repository_name("caf\xc3\xa9"));
}

TEST(Tag, AcceptsTheTagGrammar) {
  EXPECT_TRUE(valid_tag("latest"));
  EXPECT_TRUE(valid_tag("3.19"));
  EXPECT_TRUE(valid_tag("v1.2.3-rc.1_build"));
  EXPECT_TRUE(valid_tag("_underscore_first"));
  EXPECT_TRUE(valid_tag("UPPER"));
  EXPECT_TRUE(valid_tag("a"));
  EXPECT_TRUE(valid_tag("sha256-" + std::string(64, 'f') + ".sig"));
}

TEST(Tag, AcceptsExactly128CharactersAndRejects129) {
  EXPECT_TRUE(valid_tag(std::string(128, 'a')));
  EXPECT_FALSE(valid_tag(std::string(129, 'a')));
}

TEST(Tag, RejectsLeadingDotOrDash) {
  EXPECT_FALSE(valid_tag(".hidden"));
  EXPECT_FALSE(valid_tag("-flag"));
  EXPECT_TRUE(valid_tag("a.-_"));  // only the first character is restricted
}

TEST(Tag, RejectsEmptyAndForeignCharacters) {
  EXPECT_FALSE(valid_tag(""));
  EXPECT_FALSE(valid_tag("a:b"));
  EXPECT_FALSE(valid_tag("a/b"));
  EXPECT_FALSE(valid_tag("a b"));
  EXPECT_FALSE(valid_tag("a+b"));
  EXPECT_FALSE(valid_tag("a%20"));
  EXPECT_FALSE(valid_tag(some_digest));
  EXPECT_FALSE(valid_tag(std::string("a\0", 2)));
  EXPECT_FALSE(valid_tag("t\xc3\xa9"));
}

TEST(LooksLikeDigest, RecognisesAlgorithmColonEncoded) {
  EXPECT_TRUE(looks_like_digest(some_digest));
  EXPECT_TRUE(looks_like_digest("sha256:abc"));  // looks like one; Digest::parse refuses it later
  EXPECT_TRUE(looks_like_digest("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564"));
  EXPECT_TRUE(looks_like_digest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"));
  EXPECT_TRUE(looks_like_digest("sha256:ABC"));
}

TEST(LooksLikeDigest, RejectsTagsAndMalformedText) {
  EXPECT_FALSE(looks_like_digest("latest"));
  EXPECT_FALSE(looks_like_digest(""));
  EXPECT_FALSE(looks_like_digest(":"));
  EXPECT_FALSE(looks_like_digest("sha256:"));
  EXPECT_FALSE(looks_like_digest(":abc"));
  EXPECT_FALSE(looks_like_digest("SHA256:abc"));
  EXPECT_FALSE(looks_like_digest("sha256+:abc"));
  EXPECT_FALSE(looks_like_digest("+sha256:abc"));
  EXPECT_FALSE(looks_like_digest("sha++256:abc"));
  EXPECT_FALSE(looks_like_digest("sha256:ab/c"));
  EXPECT_FALSE(looks_like_digest("sha256:ab:c"));
  EXPECT_FALSE(looks_like_digest("sha256:abc "));
}

TEST(ParseRoute, RecognisesTheBaseWithAndWithoutSlash) {
  EXPECT_EQ(parse_route("/v2").kind, RouteKind::base);
  EXPECT_EQ(parse_route("/v2/").kind, RouteKind::base);
  auto with_query = parse_route("/v2/?ns=docker.io");
  EXPECT_EQ(with_query.kind, RouteKind::base);
  EXPECT_EQ(with_query.query, "ns=docker.io");
}

TEST(ParseRoute, SplitsAManifestByTag) {
  auto r = parse_route("/v2/library/alpine/manifests/3.19");
  EXPECT_EQ(r.kind, RouteKind::manifest);
  EXPECT_EQ(r.name, "library/alpine");
  EXPECT_EQ(r.reference, "3.19");
  EXPECT_EQ(r.query, "");
}

TEST(ParseRoute, SplitsAManifestByDigestAndItsQuery) {
  auto r = parse_route("/v2/library/alpine/manifests/" + some_digest + "?ns=docker.io");
  EXPECT_EQ(r.kind, RouteKind::manifest);
  EXPECT_EQ(r.name, "library/alpine");
  EXPECT_EQ(r.reference, some_digest);
  EXPECT_EQ(r.query, "ns=docker.io");
}

TEST(ParseRoute, SplitsABlob) {
  auto r = parse_route("/v2/a/b/c/blobs/" + some_digest);
  EXPECT_EQ(r.kind, RouteKind::blob);
  EXPECT_EQ(r.name, "a/b/c");
  EXPECT_EQ(r.reference, some_digest);
}

TEST(ParseRoute, SplitsTagsList) {
  auto r = parse_route("/v2/library/alpine/tags/list?n=10&last=3.18");
  EXPECT_EQ(r.kind, RouteKind::tags_list);
  EXPECT_EQ(r.name, "library/alpine");
  EXPECT_EQ(r.reference, "");
  EXPECT_EQ(r.query, "n=10&last=3.18");
}

TEST(ParseRoute, RejectsTagsListWithATrailingPart) {
  EXPECT_EQ(parse_route("/v2/a/tags/list/").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/a/tags/list/x").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/a/tags/lists").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/a/tags/").kind, RouteKind::unknown);
}

TEST(ParseRoute, SplitsReferrers) {
  auto r = parse_route("/v2/a/referrers/" + some_digest + "?artifactType=x");
  EXPECT_EQ(r.kind, RouteKind::referrers);
  EXPECT_EQ(r.name, "a");
  EXPECT_EQ(r.reference, some_digest);
  EXPECT_EQ(r.query, "artifactType=x");
}

TEST(ParseRoute, TreatsEveryUploadPathAsBlobUpload) {
  for (const char* target : {"/v2/a/blobs/uploads/", "/v2/a/blobs/uploads", "/v2/a/blobs/uploads/0f2c-uuid",
                             "/v2/a/blobs/uploads/0f2c-uuid?digest=sha256:x", "/v2/a/blobs/uploads/x/y"}) {
    auto r = parse_route(target);
    EXPECT_EQ(r.kind, RouteKind::blob_upload) << target;
    EXPECT_EQ(r.name, "a") << target;
  }
}

TEST(ParseRoute, DoesNotMistakeABlobNamedLikeUploadsPrefixForAnUpload) {
  auto r = parse_route("/v2/a/blobs/uploadsx");
  EXPECT_EQ(r.kind, RouteKind::blob);
  EXPECT_EQ(r.reference, "uploadsx");
}

TEST(ParseRoute, RecognisesTheCatalog) {
  EXPECT_EQ(parse_route("/v2/_catalog").kind, RouteKind::catalog);
  auto r = parse_route("/v2/_catalog?n=100");
  EXPECT_EQ(r.kind, RouteKind::catalog);
  EXPECT_EQ(r.query, "n=100");
  EXPECT_EQ(parse_route("/v2/_catalog/").kind, RouteKind::unknown);
}

TEST(ParseRoute, AllowsRepositoriesWithComponentsNamedLikeRouteMarkers) {
  auto r = parse_route("/v2/a/manifests/b/manifests/latest");
  EXPECT_EQ(r.kind, RouteKind::manifest);
  EXPECT_EQ(r.name, "a/manifests/b");
  EXPECT_EQ(r.reference, "latest");

  r = parse_route("/v2/a/blobs/b/manifests/latest");
  EXPECT_EQ(r.kind, RouteKind::manifest);
  EXPECT_EQ(r.name, "a/blobs/b");

  r = parse_route("/v2/a/manifests/blobs/" + some_digest);
  EXPECT_EQ(r.kind, RouteKind::blob);
  EXPECT_EQ(r.name, "a/manifests");
  EXPECT_EQ(r.reference, some_digest);

  r = parse_route("/v2/blobs/manifests/x");
  EXPECT_EQ(r.kind, RouteKind::manifest);
  EXPECT_EQ(r.name, "blobs");

  r = parse_route("/v2/tags/list/tags/list");
  EXPECT_EQ(r.kind, RouteKind::tags_list);
  EXPECT_EQ(r.name, "tags/list");

  r = parse_route("/v2/referrers/referrers/" + some_digest);
  EXPECT_EQ(r.kind, RouteKind::referrers);
  EXPECT_EQ(r.name, "referrers");
}

TEST(ParseRoute, RefusesAReferenceContainingASlash) {
  EXPECT_EQ(parse_route("/v2/a/manifests/b/c").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/a/blobs/sha256/abc").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/a/referrers/x/y").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/a/manifests/latest/").kind, RouteKind::unknown);
}

TEST(ParseRoute, RefusesAnEmptyNameOrReference) {
  EXPECT_EQ(parse_route("/v2/manifests/x").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2//manifests/x").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/blobs/" + some_digest).kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/a/manifests/").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/a/blobs/").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/a/manifests/?x=1").kind, RouteKind::unknown);
}

TEST(ParseRoute, AnswersUnknownForPathsOutsideTheApi) {
  for (const char* target : {"", "/", "/v1/", "/v2x", "/v22/", "v2/", "/v3/a/manifests/x", "/v2/a", "/v2/a/b",
                             "/v2/a/manifest/x", "/V2/a/manifests/x", "/favicon.ico", "?", "/v2/_catalogx"}) {
    auto r = parse_route(target);
    EXPECT_EQ(r.kind, RouteKind::unknown) << target;
  }
}

TEST(ParseRoute, KeepsPercentEncodingInTheName) {
  auto r = parse_route("/v2/a%2fb/manifests/latest");
  EXPECT_EQ(r.kind, RouteKind::manifest);
  EXPECT_EQ(r.name, "a%2fb");
  EXPECT_FALSE(valid_repository_name(r.name));
}

TEST(ParseRoute, SplitsTheQueryAtTheFirstQuestionMark) {
  auto r = parse_route("/v2/a/manifests/x?ns=a?b&c=/manifests/y");
  EXPECT_EQ(r.kind, RouteKind::manifest);
  EXPECT_EQ(r.name, "a");
  EXPECT_EQ(r.reference, "x");
  EXPECT_EQ(r.query, "ns=a?b&c=/manifests/y");

  auto empty_query = parse_route("/v2/a/manifests/x?");
  EXPECT_EQ(empty_query.kind, RouteKind::manifest);
  EXPECT_EQ(empty_query.query, "");
}

TEST(ParseRoute, NeverCrashesOnRandomTargets) {
  const std::string alphabet = "/v2abmnifests_?&=%:.-lgu";
  unsigned state = 7;
  for (int round = 0; round < 5000; ++round) {
    std::string target = round % 2 ? "/v2/" : "";
    int length = static_cast<int>(state % 40);
    for (int i = 0; i < length; ++i) {
      state = state * 1103515245u + 12345u;
      target.push_back(alphabet[(state >> 16) % alphabet.size()]);
    }
    auto r = parse_route(target);
    if (r.kind == RouteKind::manifest || r.kind == RouteKind::blob || r.kind == RouteKind::referrers) {
      EXPECT_FALSE(r.name.empty()) << target;
      EXPECT_FALSE(r.reference.empty()) << target;
      EXPECT_EQ(r.reference.find('/'), std::string::npos) << target;
    }
  }
}

TEST(ParseRoute, FallsBackToAnEarlierMarkerWhenTheLastIsIllFormed) {
  auto r = parse_route("/v2/a/blobs/uploads/x/blobs/");
  EXPECT_EQ(r.kind, RouteKind::blob_upload);
  EXPECT_EQ(r.name, "a");
}

TEST(ParseRoute, PrefersAPullFromARepositoryNamedLikeAnUploadPath) {
  auto r = parse_route("/v2/a/blobs/uploads/manifests/x");
  EXPECT_EQ(r.kind, RouteKind::manifest);
  EXPECT_EQ(r.name, "a/blobs/uploads");
  EXPECT_EQ(r.reference, "x");
}

TEST(ParseRoute, RefusesAnEmptyNameBeforeAnUploadPath) {
  EXPECT_EQ(parse_route("/v2//blobs/uploads/").kind, RouteKind::unknown);
  EXPECT_EQ(parse_route("/v2/blobs/uploads/").kind, RouteKind::unknown);
}

TEST(ParseRoute, LeavesTraversalInTheNameForValidationToRefuse) {
  auto r = parse_route("/v2/UPPER/../x//y/manifests/v1");
  EXPECT_EQ(r.kind, RouteKind::manifest);
  EXPECT_EQ(r.name, "UPPER/../x//y");
  EXPECT_FALSE(valid_repository_name(r.name));
}

TEST(QueryParam, FindsAPlainValue) {
  EXPECT_EQ(query_param("ns=docker.io", "ns"), "docker.io");
  EXPECT_EQ(query_param("a=1&ns=ghcr.io&b=2", "ns"), "ghcr.io");
}

TEST(QueryParam, PercentDecodesValuesAndKeys) {
  EXPECT_EQ(query_param("ns=registry.example%3A5000", "ns"), "registry.example:5000");
  EXPECT_EQ(query_param("ns=registry.example%3a5000", "ns"), "registry.example:5000");
  EXPECT_EQ(query_param("n%73=x", "ns"), "x");
  EXPECT_EQ(query_param("artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson", "artifactType"),
            "application/vnd.dev.sigstore.bundle.v0.3+json");
}

TEST(QueryParam, KeepsPlusAndMalformedEscapesLiterally) {
  EXPECT_EQ(query_param("t=a+b", "t"), "a+b");
  EXPECT_EQ(query_param("t=%zz", "t"), "%zz");
  EXPECT_EQ(query_param("t=%4", "t"), "%4");
  EXPECT_EQ(query_param("t=%", "t"), "%");
  EXPECT_EQ(query_param("t=a%", "t"), "a%");
  EXPECT_EQ(query_param("t=%%41", "t"), "%A");
}

TEST(QueryParam, AnswersNulloptForAMissingKey) {
  EXPECT_EQ(query_param("", "ns"), std::nullopt);
  EXPECT_EQ(query_param("a=1&b=2", "ns"), std::nullopt);
  EXPECT_EQ(query_param("nsx=1", "ns"), std::nullopt);
  EXPECT_EQ(query_param("xns=1", "ns"), std::nullopt);
  EXPECT_EQ(query_param("NS=1", "ns"), std::nullopt);
  EXPECT_EQ(query_param("&&&", "ns"), std::nullopt);
}

TEST(QueryParam, AnswersEmptyForAnEmptyOrMissingValue) {
  EXPECT_EQ(query_param("ns=", "ns"), "");
  EXPECT_EQ(query_param("ns", "ns"), "");
  EXPECT_EQ(query_param("a=1&ns&b=2", "ns"), "");
}

TEST(QueryParam, TakesTheFirstOccurrenceAndSkipsEmptyParts) {
  EXPECT_EQ(query_param("ns=a&ns=b", "ns"), "a");
  EXPECT_EQ(query_param("&&ns=a&", "ns"), "a");
  EXPECT_EQ(query_param("ns=a=b", "ns"), "a=b");
}

}  // namespace
}  // namespace ocigate::oci
