#include "ocigate/oci/manifest.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "ocigate/oci/digest.hpp"

namespace ocigate::oci {
namespace {

using json = nlohmann::json;

std::string digest_of(char c) { return "sha256:" + std::string(64, c); }

json descriptor(std::string_view media_type, char digest_char, std::int64_t size) {
  return json{{"mediaType", media_type}, {"digest", digest_of(digest_char)}, {"size", size}};
}

json oci_image() {
  return json{{"schemaVersion", 2},
              {"mediaType", media::oci_manifest},
              {"config", descriptor(media::oci_config, 'c', 1469)},
              {"layers", json::array({descriptor("application/vnd.oci.image.layer.v1.tar+gzip", '1', 3370706),
                                      descriptor("application/vnd.oci.image.layer.v1.tar+gzip", '2', 12)})}};
}

json docker_image() {
  return json{{"schemaVersion", 2},
              {"mediaType", media::docker_manifest},
              {"config", descriptor(media::docker_config, 'c', 1472)},
              {"layers", json::array({descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", '1', 3)})}};
}

json platform_entry(std::string_view media_type, char digest_char, std::string os, std::string arch,
                    std::string variant = "") {
  json entry = descriptor(media_type, digest_char, 525);
  entry["platform"] = json{{"os", os}, {"architecture", arch}};
  if (!variant.empty()) entry["platform"]["variant"] = variant;
  return entry;
}

json oci_index() {
  return json{{"schemaVersion", 2},
              {"mediaType", media::oci_index},
              {"manifests", json::array({platform_entry(media::oci_manifest, 'a', "linux", "amd64"),
                                         platform_entry(media::oci_manifest, 'b', "linux", "arm", "v7")})}};
}

json docker_list() {
  json doc = oci_index();
  doc["mediaType"] = media::docker_list;
  for (auto& entry : doc["manifests"]) entry["mediaType"] = media::docker_manifest;
  return doc;
}

Result<Manifest> parse(const json& doc, std::string_view content_type = "") {
  return parse_manifest(doc.dump(), content_type);
}

void expect_invalid(const Result<Manifest>& r, std::string_view message_part = "") {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::manifest_invalid);
  EXPECT_FALSE(r.error().message.empty());
  if (!message_part.empty()) {
    EXPECT_NE(r.error().message.find(message_part), std::string::npos) << r.error().message;
  }
}

// ---- the four kinds ----

TEST(ParseManifest, ReadsAnOciImageManifest) {
  auto r = parse(oci_image());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, ManifestKind::image);
  EXPECT_EQ(r->media_type, media::oci_manifest);
  ASSERT_TRUE(r->config);
  EXPECT_EQ(r->config->media_type, media::oci_config);
  EXPECT_EQ(r->config->digest, digest_of('c'));
  EXPECT_EQ(r->config->size, 1469);
  ASSERT_EQ(r->layers.size(), 2u);
  EXPECT_EQ(r->layers[0].digest, digest_of('1'));
  EXPECT_EQ(r->layers[0].size, 3370706);
  EXPECT_TRUE(r->manifests.empty());
  EXPECT_FALSE(r->subject);
}

TEST(ParseManifest, ReadsADockerSchema2Manifest) {
  auto r = parse(docker_image(), media::docker_manifest);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, ManifestKind::image);
  EXPECT_EQ(r->media_type, media::docker_manifest);
  EXPECT_EQ(r->config->media_type, media::docker_config);
  ASSERT_EQ(r->layers.size(), 1u);
}

TEST(ParseManifest, ReadsAnOciIndexWithPlatforms) {
  auto r = parse(oci_index());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, ManifestKind::index);
  EXPECT_EQ(r->media_type, media::oci_index);
  EXPECT_FALSE(r->config);
  EXPECT_TRUE(r->layers.empty());
  ASSERT_EQ(r->manifests.size(), 2u);
  EXPECT_EQ(r->manifests[0].platform_os, "linux");
  EXPECT_EQ(r->manifests[0].platform_architecture, "amd64");
  EXPECT_EQ(r->manifests[0].platform_variant, "");
  EXPECT_EQ(r->manifests[1].platform_architecture, "arm");
  EXPECT_EQ(r->manifests[1].platform_variant, "v7");
  EXPECT_EQ(r->manifests[1].digest, digest_of('b'));
  EXPECT_EQ(r->manifests[1].size, 525);
}

TEST(ParseManifest, ReadsADockerManifestList) {
  auto r = parse(docker_list(), media::docker_list);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, ManifestKind::index);
  EXPECT_EQ(r->media_type, media::docker_list);
  ASSERT_EQ(r->manifests.size(), 2u);
  EXPECT_EQ(r->manifests[0].media_type, media::docker_manifest);
}

TEST(ParseManifest, AcceptsAnIndexEntryWithoutPlatform) {
  json doc = oci_index();
  doc["manifests"].push_back(descriptor(media::oci_manifest, 'e', 10));
  auto r = parse(doc);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->manifests[2].platform_os, "");
}

TEST(ParseManifest, AcceptsEmptyLayersAndEmptyManifests) {
  json image = oci_image();
  image["layers"] = json::array();
  auto r = parse(image);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->layers.empty());
  json index = oci_index();
  index["manifests"] = json::array();
  EXPECT_TRUE(parse(index).ok());
}

TEST(ParseManifest, AcceptsSha512Descriptors) {
  json doc = oci_image();
  doc["layers"][0]["digest"] = "sha512:" + std::string(128, 'd');
  auto r = parse(doc);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->layers[0].digest, "sha512:" + std::string(128, 'd'));
}

// ---- how the kind is decided ----

TEST(ParseManifest, BodyMediaTypeWinsOverContentType) {
  auto r = parse(oci_index(), media::oci_manifest);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, ManifestKind::index);
  EXPECT_EQ(r->media_type, media::oci_index);
}

TEST(ParseManifest, BodyMediaTypeDecidesEvenAgainstTheShape) {
  json doc = oci_index();
  doc["mediaType"] = media::oci_manifest;  // says image, has no config
  expect_invalid(parse(doc), "config");
}

TEST(ParseManifest, ContentTypeNamesTheKindWhenTheBodyHasNoMediaType) {
  json doc = oci_index();
  doc.erase("mediaType");
  auto r = parse(doc, media::docker_list);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, ManifestKind::index);
  EXPECT_EQ(r->media_type, media::docker_list);
}

TEST(ParseManifest, ContentTypeParametersAndCaseAreIgnored) {
  json doc = oci_image();
  doc.erase("mediaType");
  auto r = parse(doc, "Application/VND.oci.image.manifest.v1+json ; charset=utf-8");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->media_type, media::oci_manifest);
}

TEST(ParseManifest, ShapeDecidesWithoutMediaTypeOrKnownContentType) {
  json image = oci_image();
  image.erase("mediaType");
  auto r = parse(image, "application/json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, ManifestKind::image);
  EXPECT_EQ(r->media_type, media::oci_manifest);

  json index = oci_index();
  index.erase("mediaType");
  r = parse(index);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, ManifestKind::index);
  EXPECT_EQ(r->media_type, media::oci_index);
}

TEST(ParseManifest, RefusesAShapelessDocument) {
  expect_invalid(parse(json{{"schemaVersion", 2}}), "not an image manifest or index");
  expect_invalid(parse(json{{"schemaVersion", 2}, {"config", descriptor(media::oci_config, 'c', 1)}}));
  expect_invalid(parse(json{{"schemaVersion", 2}, {"layers", json::array()}}));
}

TEST(ParseManifest, RefusesUnsupportedBodyMediaTypes) {
  json doc = oci_image();
  doc["mediaType"] = "application/vnd.oci.artifact.manifest.v1+json";
  expect_invalid(parse(doc), "unsupported manifest media type");
  doc["mediaType"] = "application/vnd.docker.distribution.manifest.v1+prettyjws";
  expect_invalid(parse(doc));
  doc["mediaType"] = "";
  expect_invalid(parse(doc));
}

TEST(ParseManifest, RefusesANonStringMediaType) {
  json doc = oci_image();
  doc["mediaType"] = 7;
  expect_invalid(parse(doc), "mediaType");
  doc["mediaType"] = json::array({media::oci_manifest});
  expect_invalid(parse(doc), "mediaType");
}

// ---- schemaVersion ----

TEST(ParseManifest, RefusesSchema1) {
  json doc = {{"schemaVersion", 1}, {"name", "library/alpine"}, {"tag", "3"}, {"fsLayers", json::array()}};
  expect_invalid(parse(doc, "application/vnd.docker.distribution.manifest.v1+prettyjws"), "schema 1 is not supported");
}

TEST(ParseManifest, RefusesOtherOrMalformedSchemaVersions) {
  json doc = oci_image();
  for (json version : {json(0), json(3), json(-2), json(2.0), json("2"), json(nullptr), json::array({2}),
                       json(18446744073709551615ull), json(-9223372036854775807ll - 1)}) {
    doc["schemaVersion"] = version;
    expect_invalid(parse(doc), "schemaVersion");
  }
  doc.erase("schemaVersion");
  expect_invalid(parse(doc), "schemaVersion is missing");
}

// ---- descriptors ----

TEST(ParseManifest, RefusesBadDigests) {
  for (json bad : {json("sha256:xyz"), json("SHA256:" + std::string(64, 'a')), json("sha256:" + std::string(64, 'A')),
                   json("md5:" + std::string(32, 'a')), json(""), json(5), json(nullptr)}) {
    json doc = oci_image();
    doc["layers"][1]["digest"] = bad;
    expect_invalid(parse(doc), "layers[1].digest");
  }
  json doc = oci_image();
  doc["config"].erase("digest");
  expect_invalid(parse(doc), "config.digest");
}

TEST(ParseManifest, RefusesBadSizes) {
  for (json bad : {json(-1), json(1.5), json(1e300), json("12"), json(nullptr), json(true), json(18446744073709551615ull),
                   json(9223372036854775808ull)}) {
    json doc = oci_image();
    doc["layers"][0]["size"] = bad;
    expect_invalid(parse(doc), "layers[0].size");
  }
  json doc = oci_image();
  doc["config"].erase("size");
  expect_invalid(parse(doc), "config.size");
}

TEST(ParseManifest, AcceptsZeroAndTheLargestSize) {
  json doc = oci_image();
  doc["layers"][0]["size"] = 0;
  doc["layers"][1]["size"] = 9223372036854775807ll;
  auto r = parse(doc);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->layers[0].size, 0);
  EXPECT_EQ(r->layers[1].size, 9223372036854775807ll);
}

TEST(ParseManifest, RefusesHugeNumbersInTheRawText) {
  std::string text = oci_image().dump();
  auto at = text.find("3370706");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 7, "99999999999999999999999999999999999999");
  expect_invalid(parse_manifest(text, ""), "size");
  text = oci_image().dump();
  text.replace(text.find("3370706"), 7, "1e99999");
  expect_invalid(parse_manifest(text, ""));
}

TEST(ParseManifest, RefusesDescriptorsWithoutAStringMediaType) {
  json doc = oci_image();
  doc["layers"][0].erase("mediaType");
  expect_invalid(parse(doc), "layers[0].mediaType");
  doc = oci_image();
  doc["config"]["mediaType"] = 1;
  expect_invalid(parse(doc), "config.mediaType");
}

TEST(ParseManifest, RefusesDescriptorsThatAreNotObjects) {
  for (json bad : {json("sha256:" + std::string(64, 'a')), json(1), json::array(), json(nullptr)}) {
    json doc = oci_image();
    doc["layers"][0] = bad;
    expect_invalid(parse(doc), "layers[0]");
    doc = oci_index();
    doc["manifests"][1] = bad;
    expect_invalid(parse(doc), "manifests[1]");
  }
  json doc = oci_image();
  doc["config"] = "sha256:" + std::string(64, 'c');
  expect_invalid(parse(doc), "config");
}

TEST(ParseManifest, RefusesWrongContainerTypes) {
  json doc = oci_image();
  doc["layers"] = json::object();
  expect_invalid(parse(doc), "layers");
  doc = oci_image();
  doc.erase("layers");
  expect_invalid(parse(doc), "layers");
  doc = oci_image();
  doc.erase("config");
  expect_invalid(parse(doc), "config");
  doc = oci_index();
  doc["manifests"] = "none";
  expect_invalid(parse(doc), "manifests");
  doc = oci_index();
  doc.erase("manifests");
  expect_invalid(parse(doc), "manifests");
}

TEST(ParseManifest, RefusesMalformedPlatforms) {
  json doc = oci_index();
  doc["manifests"][0]["platform"] = "linux/amd64";
  expect_invalid(parse(doc), "manifests[0].platform");
  doc = oci_index();
  doc["manifests"][0]["platform"]["os"] = 1;
  expect_invalid(parse(doc), "manifests[0].platform");
  doc = oci_index();
  doc["manifests"][1]["platform"]["variant"] = json::array();
  expect_invalid(parse(doc), "manifests[1].platform");
}

TEST(ParseManifest, IgnoresUnknownFields) {
  json doc = oci_index();
  doc["manifests"][0]["platform"]["os.features"] = json::array({"win32k"});
  doc["manifests"][0]["urls"] = json::array({"https://example.com"});
  doc["x-extra"] = json{{"deep", json::array({1, 2, 3})}};
  EXPECT_TRUE(parse(doc).ok());
}

// ---- annotations, artifactType, subject ----

TEST(ParseManifest, ReadsAnnotationsArtifactTypeAndSubject) {
  json doc = oci_image();
  doc["artifactType"] = "application/vnd.example+json";
  doc["annotations"] = json{{"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}, {"k", ""}};
  doc["subject"] = descriptor(media::oci_manifest, 'f', 99);
  doc["layers"][0]["annotations"] = json{{"org.opencontainers.image.title", "a.txt"}};
  doc["layers"][0]["artifactType"] = "application/x-layer";
  auto r = parse(doc);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->artifact_type, "application/vnd.example+json");
  EXPECT_EQ(r->annotations.at("org.opencontainers.image.created"), "2024-01-01T00:00:00Z");
  EXPECT_EQ(r->annotations.at("k"), "");
  ASSERT_TRUE(r->subject);
  EXPECT_EQ(r->subject->digest, digest_of('f'));
  EXPECT_EQ(r->subject->size, 99);
  EXPECT_EQ(r->layers[0].annotations.at("org.opencontainers.image.title"), "a.txt");
  EXPECT_EQ(r->layers[0].artifact_type, "application/x-layer");
}

TEST(ParseManifest, IndexMayCarrySubjectAndAnnotations) {
  json doc = oci_index();
  doc["subject"] = descriptor(media::oci_index, 'f', 1);
  doc["annotations"] = json{{"a", "b"}};
  doc["manifests"][0]["annotations"] = json{{"vnd.docker.reference.type", "attestation-manifest"}};
  auto r = parse(doc);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->subject);
  EXPECT_EQ(r->annotations.at("a"), "b");
  EXPECT_EQ(r->manifests[0].annotations.at("vnd.docker.reference.type"), "attestation-manifest");
}

TEST(ParseManifest, NullOptionalFieldsCountAsAbsent) {
  json doc = oci_image();
  doc["annotations"] = nullptr;
  doc["subject"] = nullptr;
  doc["artifactType"] = nullptr;
  auto r = parse(doc);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->subject);
  EXPECT_TRUE(r->annotations.empty());
}

TEST(ParseManifest, RefusesAnnotationsThatAreNotStringMaps) {
  for (json bad : {json{{"k", 1}}, json{{"k", json::object()}}, json{{"k", nullptr}}, json::array({"k"}), json("k=v")}) {
    json doc = oci_image();
    doc["annotations"] = bad;
    expect_invalid(parse(doc), "annotations");
    doc = oci_image();
    doc["layers"][1]["annotations"] = bad;
    expect_invalid(parse(doc), "layers[1].annotations");
  }
}

TEST(ParseManifest, RefusesANonStringArtifactType) {
  json doc = oci_image();
  doc["artifactType"] = 1;
  expect_invalid(parse(doc), "artifactType");
  doc = oci_image();
  doc["config"]["artifactType"] = json::object();
  expect_invalid(parse(doc), "config.artifactType");
}

TEST(ParseManifest, RefusesABadSubject) {
  json doc = oci_image();
  doc["subject"] = json{{"mediaType", media::oci_manifest}, {"digest", "sha256:short"}, {"size", 1}};
  expect_invalid(parse(doc), "subject.digest");
  doc["subject"] = "sha256:" + std::string(64, 'a');
  expect_invalid(parse(doc), "subject");
}

// ---- blob digests ----

TEST(BlobDigests, ListsConfigThenLayers) {
  auto r = parse(oci_image());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->blob_digests(), (std::vector<std::string>{digest_of('c'), digest_of('1'), digest_of('2')}));
}

TEST(BlobDigests, IndexReferencesNoBlobs) {
  auto r = parse(oci_index());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->blob_digests().empty());
}

TEST(BlobDigests, SubjectIsNotABlob) {
  json doc = oci_image();
  doc["subject"] = descriptor(media::oci_manifest, 'f', 1);
  auto r = parse(doc);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->blob_digests().size(), 3u);
}

// ---- garbage ----

TEST(ParseManifest, RefusesNonJson) {
  for (std::string_view text : {"", " ", "not json", "{", "{\"schemaVersion\": 2,}", "{'a': 1}", "\xff\xfe{}",
                                "{\"schemaVersion\":2}garbage", "nul"}) {
    expect_invalid(parse_manifest(text, media::oci_manifest));
  }
}

TEST(ParseManifest, RefusesJsonThatIsNotAnObject) {
  for (std::string_view text : {"[]", "2", "\"manifest\"", "null", "true", "[{\"schemaVersion\":2}]"}) {
    expect_invalid(parse_manifest(text, media::oci_manifest), "not a JSON object");
  }
}

TEST(ParseManifest, RefusesInvalidUtf8InStrings) {
  std::string text = oci_image().dump();
  text.replace(text.find("tar+gzip"), 3, "\xc3\x28x");
  expect_invalid(parse_manifest(text, ""));
}

TEST(ParseManifest, RefusesOversizedBodies) {
  std::string text = oci_image().dump();
  text.pop_back();
  text += ",\"pad\":\"" + std::string(max_manifest_size, 'x') + "\"}";
  expect_invalid(parse_manifest(text, ""), "4 MiB");
}

TEST(ParseManifest, AcceptsABodyOfExactlyTheLimit) {
  std::string text = oci_image().dump();
  text.pop_back();
  text += ",\"pad\":\"\"}";
  text.insert(text.size() - 2, std::string(max_manifest_size - text.size(), 'x'));
  ASSERT_EQ(text.size(), max_manifest_size);
  EXPECT_TRUE(parse_manifest(text, "").ok());
}

TEST(ParseManifest, SurvivesDeeplyNestedJson) {
  const std::size_t depth = 1'000'000;
  std::string arrays = std::string(depth, '[') + std::string(depth, ']');
  expect_invalid(parse_manifest(arrays, media::oci_manifest));
  std::string inside = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                       std::string(depth, '[') + std::string(depth, ']') + R"(,"layers":[]})";
  expect_invalid(parse_manifest(inside, ""), "config");
  std::string objects;
  for (std::size_t i = 0; i < 200'000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(200'000, '}');
  expect_invalid(parse_manifest(objects, ""));
}

TEST(ParseManifest, SurvivesTruncationAtEveryByte) {
  json doc = oci_index();
  doc["subject"] = descriptor(media::oci_manifest, 'f', 1);
  std::string text = doc.dump();
  for (std::size_t n = 0; n < text.size(); ++n) {
    auto r = parse_manifest(std::string_view(text).substr(0, n), "");
    EXPECT_FALSE(r.ok()) << n;
  }
  EXPECT_TRUE(parse_manifest(text, "").ok());
}

TEST(ParseManifest, SurvivesRandomByteFlips) {
  std::string text = oci_image().dump();
  unsigned state = 2024;
  int refused = 0, accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string mutated = text;
    for (int flips = 0; flips < 3; ++flips) {
      state = state * 1103515245u + 12345u;
      mutated[(state >> 8) % mutated.size()] = static_cast<char>(state >> 16);
    }
    auto r = parse_manifest(mutated, "");
    if (!r.ok()) {
      ++refused;
      EXPECT_EQ(r.error().code, Errc::manifest_invalid);
      EXPECT_FALSE(r.error().message.empty());
      continue;
    }
    // What parses must still be a well-formed image: every descriptor it hands on is usable.
    ++accepted;
    EXPECT_EQ(r->kind, ManifestKind::image) << mutated;
    ASSERT_TRUE(r->config.has_value()) << mutated;
    for (const auto& digest : r->blob_digests()) EXPECT_TRUE(Digest::parse(digest).has_value()) << mutated;
    for (const auto& layer : r->layers) EXPECT_GE(layer.size, 0) << mutated;
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(accepted, 0) << "flips in string values keep the document valid";
}

TEST(ParseManifest, SurvivesRandomBytes) {
  unsigned state = 77;
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    int length = static_cast<int>(state % 200);
    for (int i = 0; i < length; ++i) {
      state = state * 1103515245u + 12345u;
      text.push_back(static_cast<char>(state >> 16));
    }
    EXPECT_FALSE(parse_manifest(text, "").ok());
  }
}

// Every top-level field given a value of the wrong type. Only three stay valid, each for a reason:
// a null mediaType is no mediaType (the kind comes from the shape), and an image with no layers or
// an index with no entries is well-formed. Everything else is refused as MANIFEST_INVALID.
TEST(ParseManifest, SurvivesWrongTypesEverywhere) {
  const json wrong[] = {json(nullptr), json(true), json(-1), json(1.5), json("s"), json::array(), json::object(),
                        json::array({json::object()})};
  const std::set<std::pair<std::string, std::string>> accepted = {
      {"mediaType", "null"}, {"layers", "[]"}, {"manifests", "[]"}};
  for (const json& base : {oci_image(), oci_index()}) {
    for (const auto& [key, ignored] : base.items()) {
      for (const json& value : wrong) {
        json doc = base;
        doc[key] = value;
        auto r = parse(doc);
        const bool expect_ok = accepted.contains({key, value.dump()});
        EXPECT_EQ(r.ok(), expect_ok) << key << " = " << value.dump();
        if (!r.ok()) {
          EXPECT_EQ(r.error().code, Errc::manifest_invalid) << key << " = " << value.dump();
          EXPECT_FALSE(r.error().message.empty());
        }
      }
    }
  }
}

// ---- Accept ----

TEST(ManifestAcceptHeader, ListsTheFourTypes) {
  std::string header(manifest_accept_header());
  for (auto type : {media::oci_manifest, media::oci_index, media::docker_manifest, media::docker_list}) {
    EXPECT_NE(header.find(type), std::string::npos) << type;
    EXPECT_TRUE(accepts(header, type)) << type;
  }
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), 3);
  EXPECT_FALSE(accepts(header, media::oci_config));
}

TEST(Accepts, EmptyHeaderAcceptsEverything) {
  EXPECT_TRUE(accepts("", media::oci_manifest));
  EXPECT_TRUE(accepts("  ", media::docker_list));
  EXPECT_TRUE(accepts(" , ,", media::oci_index));
}

TEST(Accepts, ExactTypeIsAccepted) {
  EXPECT_TRUE(accepts(media::docker_manifest, media::docker_manifest));
  EXPECT_FALSE(accepts(media::docker_manifest, media::oci_manifest));
}

TEST(Accepts, FindsATypeInAList) {
  std::string header = std::string(media::docker_manifest) + ", " + std::string(media::docker_list) + ",application/json";
  EXPECT_TRUE(accepts(header, media::docker_list));
  EXPECT_TRUE(accepts(header, media::docker_manifest));
  EXPECT_FALSE(accepts(header, media::oci_index));
}

TEST(Accepts, WildcardsMatch) {
  EXPECT_TRUE(accepts("*/*", media::oci_index));
  EXPECT_TRUE(accepts("application/*", media::oci_index));
  EXPECT_TRUE(accepts("text/html, */*;q=0.8", media::oci_index));
  EXPECT_FALSE(accepts("text/*", media::oci_index));
  EXPECT_FALSE(accepts("application", media::oci_index));
  EXPECT_FALSE(accepts("app/*", "application/x"));
}

TEST(Accepts, IgnoresParametersOtherThanQ) {
  std::string header = std::string(media::oci_manifest) + "; charset=utf-8; q=0.5";
  EXPECT_TRUE(accepts(header, media::oci_manifest));
  EXPECT_TRUE(accepts(std::string(media::oci_manifest) + ";seq=0", media::oci_manifest));
}

TEST(Accepts, QZeroExcludes) {
  for (const char* q : {"q=0", "q=0.", "q=0.0", "q=0.000", "Q=0", " q = 0 "}) {
    std::string header = std::string(media::oci_index) + ";" + q;
    EXPECT_FALSE(accepts(header, media::oci_index)) << header;
  }
  for (const char* q : {"q=0.001", "q=1", "q=0.5", "q=1.0", "q=", "q=abc"}) {
    std::string header = std::string(media::oci_index) + ";" + q;
    EXPECT_TRUE(accepts(header, media::oci_index)) << header;
  }
}

TEST(Accepts, MostSpecificRangeDecides) {
  std::string exclude_index = std::string(media::oci_index) + ";q=0, */*";
  EXPECT_FALSE(accepts(exclude_index, media::oci_index));
  EXPECT_TRUE(accepts(exclude_index, media::oci_manifest));
  EXPECT_FALSE(accepts("application/*;q=0, */*", media::oci_index));
  EXPECT_TRUE(accepts(std::string("application/*;q=0, ") + std::string(media::oci_index), media::oci_index));
  EXPECT_FALSE(accepts("*/*;q=0", media::oci_index));
}

TEST(Accepts, IsCaseInsensitive) {
  EXPECT_TRUE(accepts("Application/Vnd.OCI.Image.Index.v1+JSON", media::oci_index));
}

TEST(Accepts, HeaderWithoutAnyMediaRangeActsAsAbsent) {
  EXPECT_TRUE(accepts(";;;,;q=0", media::oci_index));
  EXPECT_TRUE(accepts(";charset=utf-8", media::oci_index));
}

TEST(Accepts, SurvivesGarbage) {
  EXPECT_FALSE(accepts("\x01\x02", media::oci_index));
  EXPECT_FALSE(accepts("/*", media::oci_index));
  EXPECT_TRUE(accepts("*", media::oci_index));
}

}  // namespace
}  // namespace ocigate::oci
