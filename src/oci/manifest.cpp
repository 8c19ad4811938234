#include "ocigate/oci/manifest.hpp"

#include <exception>
#include <limits>

#include <nlohmann/json.hpp>

#include "ocigate/oci/digest.hpp"

namespace ocigate::oci {

namespace {

using json = nlohmann::json;

Error invalid(std::string message) { return Error{Errc::manifest_invalid, std::move(message)}; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "Application/JSON; charset=utf-8" -> "application/json": media types compare without
// parameters and case-insensitively (RFC 9110 §8.3.1).
std::string bare_media_type(std::string_view value) {
  return lower(trim(value.substr(0, value.find(';'))));
}

// The canonical media type and kind a body or Content-Type names, when it is one we serve.
struct KnownType {
  std::string_view media_type;
  ManifestKind kind;
};

std::optional<KnownType> known_type(std::string_view value) {
  const std::string bare = bare_media_type(value);
  for (auto type : {media::oci_manifest, media::docker_manifest}) {
    if (bare == type) return KnownType{type, ManifestKind::image};
  }
  for (auto type : {media::oci_index, media::docker_list}) {
    if (bare == type) return KnownType{type, ManifestKind::index};
  }
  return std::nullopt;
}

// Reads an optional string field; false when present (and not null) but not a string.
bool read_string(const json& object, const char* key, std::string& out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

// Reads an optional string map; false when present but not a map of strings.
bool read_annotations(const json& object, std::map<std::string, std::string>& out) {
  auto it = object.find("annotations");
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_object()) return false;
  for (const auto& [key, value] : it->items()) {
    if (!value.is_string()) return false;
    out[key] = value.get<std::string>();
  }
  return true;
}

// A JSON integer in [0, INT64_MAX]; floats, strings and out-of-range values are refused.
std::optional<std::int64_t> non_negative_integer(const json& value) {
  if (value.is_number_unsigned()) {
    auto n = value.get<std::uint64_t>();
    if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
    return static_cast<std::int64_t>(n);
  }
  if (value.is_number_integer()) {
    auto n = value.get<std::int64_t>();
    if (n < 0) return std::nullopt;
    return n;
  }
  return std::nullopt;
}

Status read_platform(const json& descriptor, const std::string& where, Descriptor& d) {
  auto platform = descriptor.find("platform");
  if (platform == descriptor.end() || platform->is_null()) return ok_status();
  if (!platform->is_object()) return invalid(where + ".platform is not an object");
  if (!read_string(*platform, "os", d.platform_os) ||
      !read_string(*platform, "architecture", d.platform_architecture) ||
      !read_string(*platform, "variant", d.platform_variant)) {
    return invalid(where + ".platform has a field that is not a string");
  }
  return ok_status();
}

Result<Descriptor> read_descriptor(const json& value, const std::string& where) {
  if (!value.is_object()) return invalid(where + " is not an object");
  Descriptor d;
  auto media = value.find("mediaType");
  if (media == value.end() || !media->is_string()) return invalid(where + ".mediaType is missing or not a string");
  d.media_type = media->get<std::string>();
  auto digest = value.find("digest");
  if (digest == value.end() || !digest->is_string() || !Digest::parse(digest->get<std::string>())) {
    return invalid(where + ".digest is missing or not a valid sha256/sha512 digest");
  }
  d.digest = digest->get<std::string>();
  auto size = value.find("size");
  auto parsed_size = size == value.end() ? std::nullopt : non_negative_integer(*size);
  if (!parsed_size) return invalid(where + ".size is missing or not a non-negative integer");
  d.size = *parsed_size;
  if (!read_string(value, "artifactType", d.artifact_type)) return invalid(where + ".artifactType is not a string");
  if (!read_annotations(value, d.annotations)) return invalid(where + ".annotations is not a map of strings");
  if (auto platform = read_platform(value, where, d); !platform) return platform.error();
  return d;
}

Result<std::vector<Descriptor>> read_descriptors(const json& doc, const char* key) {
  auto array = doc.find(key);
  if (array == doc.end() || !array->is_array()) return invalid(std::string(key) + " is missing or not an array");
  std::vector<Descriptor> out;
  out.reserve(array->size());
  for (std::size_t i = 0; i < array->size(); ++i) {
    auto d = read_descriptor((*array)[i], std::string(key) + "[" + std::to_string(i) + "]");
    if (!d) return d.error();
    out.push_back(std::move(*d));
  }
  return out;
}

// Which kind of document this is: the body's mediaType, else the Content-Type, else its shape.
Result<KnownType> decide_type(const json& doc, std::string_view content_type) {
  auto media = doc.find("mediaType");
  if (media != doc.end() && !media->is_null()) {
    if (!media->is_string()) return invalid("mediaType is not a string");
    auto type = known_type(media->get<std::string>());
    if (!type) return invalid("unsupported manifest media type " + media->get<std::string>());
    return *type;
  }
  if (auto type = known_type(content_type)) return *type;
  if (doc.contains("manifests")) return KnownType{media::oci_index, ManifestKind::index};
  if (doc.contains("config") && doc.contains("layers")) return KnownType{media::oci_manifest, ManifestKind::image};
  return invalid("not an image manifest or index");
}

Status check_schema_version(const json& doc) {
  auto version = doc.find("schemaVersion");
  if (version == doc.end()) return invalid("schemaVersion is missing");
  auto n = non_negative_integer(*version);
  if (n == 1) return invalid("schema 1 is not supported");
  if (n != 2) return invalid("schemaVersion must be 2");
  return ok_status();
}

Result<Manifest> parse_document(std::string_view bytes, std::string_view content_type) {
  json doc = json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (doc.is_discarded()) return invalid("manifest is not valid JSON");
  if (!doc.is_object()) return invalid("manifest is not a JSON object");
  if (auto version = check_schema_version(doc); !version) return version.error();
  auto type = decide_type(doc, content_type);
  if (!type) return type.error();

  Manifest m;
  m.kind = type->kind;
  m.media_type = std::string(type->media_type);
  if (!read_string(doc, "artifactType", m.artifact_type)) return invalid("artifactType is not a string");
  if (!read_annotations(doc, m.annotations)) return invalid("annotations is not a map of strings");
  if (auto subject = doc.find("subject"); subject != doc.end() && !subject->is_null()) {
    auto d = read_descriptor(*subject, "subject");
    if (!d) return d.error();
    m.subject = std::move(*d);
  }
  if (m.kind == ManifestKind::image) {
    auto config = doc.find("config");
    if (config == doc.end()) return invalid("image manifest has no config");
    auto d = read_descriptor(*config, "config");
    if (!d) return d.error();
    m.config = std::move(*d);
    auto layers = read_descriptors(doc, "layers");
    if (!layers) return layers.error();
    m.layers = std::move(*layers);
  } else {
    auto manifests = read_descriptors(doc, "manifests");
    if (!manifests) return manifests.error();
    m.manifests = std::move(*manifests);
  }
  return m;
}

// q=0 (also "0.", "0.0", "0.000") means "not acceptable" (RFC 9110 §12.4.2).
bool q_is_zero(std::string_view params) {
  while (!params.empty()) {
    auto semi = params.find(';');
    auto param = trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    auto eq = param.find('=');
    if (eq == std::string_view::npos || lower(trim(param.substr(0, eq))) != "q") continue;
    auto value = trim(param.substr(eq + 1));
    if (value.empty() || value.front() != '0') return false;
    value.remove_prefix(1);
    if (value.empty()) return true;
    if (value.front() != '.') return false;
    value.remove_prefix(1);
    return value.find_first_not_of('0') == std::string_view::npos;
  }
  return false;
}

// How specifically a media range names media_type: 2 exact, 1 "type/*", 0 "*/*", -1 not at all.
int match_specificity(std::string_view range, std::string_view media_type) {
  if (range == media_type) return 2;
  if (range == "*/*" || range == "*") return 0;
  if (range.size() > 2 && range.ends_with("/*") && media_type.starts_with(range.substr(0, range.size() - 1))) return 1;
  return -1;
}

}  // namespace

std::string_view manifest_accept_header() {
  static const std::string header = std::string(media::oci_manifest) + ", " + std::string(media::oci_index) + ", " +
                                    std::string(media::docker_manifest) + ", " + std::string(media::docker_list);
  return header;
}

std::vector<std::string> Manifest::blob_digests() const {
  std::vector<std::string> out;
  if (config) out.push_back(config->digest);
  for (const auto& layer : layers) out.push_back(layer.digest);
  return out;
}

Result<Manifest> parse_manifest(std::string_view bytes, std::string_view content_type) {
  if (bytes.size() > max_manifest_size) return invalid("manifest is larger than 4 MiB");
  // Every access above is type-checked; this only keeps a missed case (or bad_alloc) from
  // escaping onto the data path as an exception.
  try {
    return parse_document(bytes, content_type);
  } catch (const std::exception& e) {
    return invalid(std::string("manifest could not be parsed: ") + e.what());
  }
}

bool accepts(std::string_view accept, std::string_view media_type) {
  const std::string wanted = bare_media_type(media_type);
  bool any_entry = false;
  int best = -1;
  bool best_allows = false;
  while (!accept.empty()) {
    auto comma = accept.find(',');
    auto entry = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    auto semi = entry.find(';');
    auto range = bare_media_type(entry);
    if (range.empty()) continue;
    any_entry = true;
    int specificity = match_specificity(range, wanted);
    if (specificity < 0) continue;
    bool allows = semi == std::string_view::npos || !q_is_zero(entry.substr(semi + 1));
    // The most specific range decides; among equally specific ones, any acceptance wins.
    if (specificity > best) {
      best = specificity;
      best_allows = allows;
    } else if (specificity == best) {
      best_allows = best_allows || allows;
    }
  }
  if (!any_entry) return true;
  return best >= 0 && best_allows;
}

}  // namespace ocigate::oci
