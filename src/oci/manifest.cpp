#include "ocigate/oci/manifest.hpp"

#include <nlohmann/json.hpp>

#include "ocigate/oci/digest.hpp"

namespace ocigate::oci {

namespace {

using json = nlohmann::json;

Error invalid(std::string message) { return Error{Errc::manifest_invalid, std::move(message)}; }

std::string string_field(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Reads an optional string map; false when present but not a map of strings.
bool read_annotations(const json& object, std::map<std::string, std::string>& out) {
  auto it = object.find("annotations");
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_object()) return false;
  for (auto& [key, value] : it->items()) {
    if (!value.is_string()) return false;
    out[key] = value.get<std::string>();
  }
  return true;
}

Result<Descriptor> read_descriptor(const json& value, const std::string& where) {
  if (!value.is_object()) return invalid(where + " is not an object");
  Descriptor d;
  auto media = value.find("mediaType");
  if (media == value.end() || !media->is_string()) return invalid(where + ".mediaType is missing or not a string");
  d.media_type = media->get<std::string>();
  auto digest = value.find("digest");
  if (digest == value.end() || !digest->is_string() || !Digest::parse(digest->get<std::string>())) {
    return invalid(where + ".digest is missing or not a valid digest");
  }
  d.digest = digest->get<std::string>();
  auto size = value.find("size");
  if (size == value.end() || !size->is_number_integer() || size->get<std::int64_t>() < 0 ||
      (size->is_number_unsigned() && size->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))) {
    return invalid(where + ".size is missing or not a non-negative integer");
  }
  d.size = size->get<std::int64_t>();
  d.artifact_type = string_field(value, "artifactType");
  if (!read_annotations(value, d.annotations)) return invalid(where + ".annotations is not a map of strings");
  if (auto platform = value.find("platform"); platform != value.end() && platform->is_object()) {
    d.platform_os = string_field(*platform, "os");
    d.platform_architecture = string_field(*platform, "architecture");
    d.platform_variant = string_field(*platform, "variant");
  }
  return d;
}

std::optional<ManifestKind> kind_of(std::string_view media_type) {
  if (media_type == media::oci_manifest || media_type == media::docker_manifest) return ManifestKind::image;
  if (media_type == media::oci_index || media_type == media::docker_list) return ManifestKind::index;
  return std::nullopt;
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
  json doc = json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return invalid("manifest is not a JSON object");
  auto version = doc.find("schemaVersion");
  if (version == doc.end() || !version->is_number_integer()) return invalid("schemaVersion is missing");
  if (version->get<std::int64_t>() == 1) return invalid("schema 1 is not supported");
  if (version->get<std::int64_t>() != 2) return invalid("schemaVersion must be 2");

  Manifest m;
  m.media_type = string_field(doc, "mediaType");
  if (doc.contains("mediaType") && !doc["mediaType"].is_string()) return invalid("mediaType is not a string");
  std::optional<ManifestKind> kind = kind_of(m.media_type);
  if (!kind && !m.media_type.empty()) return invalid("unsupported manifest media type " + m.media_type);
  if (!kind) kind = kind_of(content_type);
  if (!kind) {
    if (doc.contains("manifests")) kind = ManifestKind::index;
    else if (doc.contains("config") && doc.contains("layers")) kind = ManifestKind::image;
    else return invalid("not an image manifest or index");
  }
  m.kind = *kind;
  if (m.media_type.empty()) {
    m.media_type = kind_of(content_type) ? std::string(content_type)
                                         : std::string(m.kind == ManifestKind::index ? media::oci_index
                                                                                     : media::oci_manifest);
  }
  m.artifact_type = string_field(doc, "artifactType");
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
    auto layers = doc.find("layers");
    if (layers == doc.end() || !layers->is_array()) return invalid("image manifest has no layers array");
    for (std::size_t i = 0; i < layers->size(); ++i) {
      auto layer = read_descriptor((*layers)[i], "layers[" + std::to_string(i) + "]");
      if (!layer) return layer.error();
      m.layers.push_back(std::move(*layer));
    }
  } else {
    auto manifests = doc.find("manifests");
    if (manifests == doc.end() || !manifests->is_array()) return invalid("index has no manifests array");
    for (std::size_t i = 0; i < manifests->size(); ++i) {
      auto entry = read_descriptor((*manifests)[i], "manifests[" + std::to_string(i) + "]");
      if (!entry) return entry.error();
      m.manifests.push_back(std::move(*entry));
    }
  }
  return m;
}

bool accepts(std::string_view accept, std::string_view media_type) {
  bool any_entry = false;
  std::size_t start = 0;
  while (start <= accept.size()) {
    auto comma = accept.find(',', start);
    auto entry = accept.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    start = comma == std::string_view::npos ? accept.size() + 1 : comma + 1;
    auto semi = entry.find(';');
    auto type = entry.substr(0, semi);
    while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
    if (type.empty()) continue;
    any_entry = true;
    bool refused = false;
    if (semi != std::string_view::npos) {
      auto params = entry.substr(semi + 1);
      auto q = params.find("q=");
      if (q != std::string_view::npos) {
        auto value = params.substr(q + 2);
        refused = value.substr(0, 1) == "0" && value.find_first_of("123456789") == std::string_view::npos;
      }
    }
    if (refused) continue;
    if (type == "*/*" || type == media_type) return true;
    if (type.size() > 2 && type.substr(type.size() - 2) == "/*" &&
        media_type.substr(0, type.size() - 1) == type.substr(0, type.size() - 1)) {
      return true;
    }
  }
  return !any_entry;
}

}  // namespace ocigate::oci
