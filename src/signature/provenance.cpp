// SLSA provenance predicates: builder id and source repository, matched against globs.

#include "ocigate/signature/provenance.hpp"

#include <nlohmann/json.hpp>

#include "json_fields.hpp"
#include "ocigate/common/glob.hpp"

namespace ocigate::signature {

using nlohmann::json;
using detail::at;
using detail::text_at;

namespace {

std::string first_uri(const json& predicate, std::initializer_list<const char*> list_path) {
  const json* list = at(predicate, list_path);
  if (!list || !list->is_array() || list->empty()) return {};
  return text_at((*list)[0], {"uri"});
}

std::string source_v1(const json& predicate) {
  const json* external = at(predicate, {"buildDefinition", "externalParameters"});
  if (external && external->is_object()) {
    for (auto path : {std::initializer_list<const char*>{"workflow", "repository"}, {"source", "uri"}, {"source"}, {"repository"}}) {
      std::string v = text_at(*external, path);
      if (!v.empty()) return v;
    }
  }
  return first_uri(predicate, {"buildDefinition", "resolvedDependencies"});
}

std::string source_v02(const json& predicate) {
  std::string v = text_at(predicate, {"invocation", "configSource", "uri"});
  return v.empty() ? first_uri(predicate, {"materials"}) : v;
}

std::string list_text(const std::vector<std::string>& globs) {
  std::string out;
  for (const auto& g : globs) out += (out.empty() ? "" : ", ") + g;
  return "[" + out + "]";
}

bool any_match(const std::vector<std::string>& globs, const std::string& value) {
  for (const auto& g : globs) {
    if (glob_match(g, value)) return true;
  }
  return false;
}

}  // namespace

bool is_slsa_provenance(std::string_view predicate_type) {
  return predicate_type == slsa_provenance_v1 || predicate_type == slsa_provenance_v02;
}

std::string normalize_repository(std::string_view uri) {
  std::string out(uri);
  if (out.rfind("git+", 0) == 0) out.erase(0, 4);
  auto scheme = out.find("://");
  auto path = out.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path != std::string::npos) {
    auto ref = out.find('@', path);
    if (ref != std::string::npos) out.erase(ref);
  }
  if (out.size() > 4 && out.compare(out.size() - 4, 4, ".git") == 0) out.erase(out.size() - 4);
  return out;
}

Result<Provenance> read_provenance(std::string_view statement) {
  json doc = json::parse(statement.begin(), statement.end(), nullptr, false);
  if (!doc.is_object()) return Error{Errc::manifest_invalid, "the statement is not a JSON object"};
  Provenance out;
  out.predicate_type = text_at(doc, {"predicateType"});
  const json* predicate = at(doc, {"predicate"});
  if (!is_slsa_provenance(out.predicate_type)) {
    return Error{Errc::unsupported, "predicate '" + out.predicate_type + "' is not SLSA provenance v0.2 or v1"};
  }
  if (!predicate || !predicate->is_object()) return Error{Errc::manifest_invalid, "the statement has no predicate"};
  bool v1 = out.predicate_type == slsa_provenance_v1;
  out.builder_id = v1 ? text_at(*predicate, {"runDetails", "builder", "id"}) : text_at(*predicate, {"builder", "id"});
  std::string source = v1 ? source_v1(*predicate) : source_v02(*predicate);
  if (out.builder_id.empty()) {
    return Error{Errc::manifest_invalid, std::string("the provenance names no builder id (") +
                                             (v1 ? "runDetails.builder.id" : "builder.id") + ")"};
  }
  if (source.empty()) return Error{Errc::manifest_invalid, "the provenance names no source repository"};
  out.source_repository = normalize_repository(source);
  return out;
}

std::string provenance_mismatch(const Provenance& provenance, const ProvenanceRule& rule) {
  std::string out;
  if (!any_match(rule.builder_ids, provenance.builder_id)) {
    out = "builder id '" + provenance.builder_id + "' matches none of builder_ids " + list_text(rule.builder_ids);
  }
  if (!any_match(rule.source_repositories, provenance.source_repository)) {
    out += (out.empty() ? "" : "; ") + ("source repository '" + provenance.source_repository +
                                        "' matches none of source_repositories " + list_text(rule.source_repositories));
  }
  return out;
}

}  // namespace ocigate::signature
