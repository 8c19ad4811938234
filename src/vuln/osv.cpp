// OSV record parsing and the schema's evaluation algorithm.

#include "ocigate/vuln/osv.hpp"

#include <algorithm>

#include "record_reader.hpp"

namespace ocigate::vuln::osv {

namespace {

using nlohmann::json;

Error bad_record(const std::string& id, const std::string& why) {
  std::string message = "OSV record";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on literal + string
  if (!id.empty()) {
    message += ' ';
    message += id.substr(0, 100);
  }
  message += ": ";
  message += why;
  return Error{Errc::manifest_invalid, std::move(message)};
}

// Optional string field: absent is fine, another type is not.
bool read_string(const json& object, const char* key, std::string& out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

bool read_strings(const json& object, const char* key, std::vector<std::string>& out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_array()) return false;
  for (const auto& item : *it) {
    if (!item.is_string()) return false;
    out.push_back(item.get<std::string>());
  }
  return true;
}

bool read_severity(const json& object, std::vector<SeverityScore>& out) {
  auto it = object.find("severity");
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_array()) return false;
  for (const auto& item : *it) {
    SeverityScore s;
    if (!item.is_object() || !read_string(item, "type", s.type) || !read_string(item, "score", s.score)) return false;
    out.push_back(std::move(s));
  }
  return true;
}

// One event object holds exactly one of the four kinds.
bool read_event(const json& item, Event& e) {
  if (!item.is_object()) return false;
  static constexpr std::pair<const char*, EventKind> kinds[] = {{"introduced", EventKind::introduced},
                                                                 {"fixed", EventKind::fixed},
                                                                 {"last_affected", EventKind::last_affected},
                                                                 {"limit", EventKind::limit}};
  int found = 0;
  for (const auto& [key, kind] : kinds) {
    auto it = item.find(key);
    if (it == item.end()) continue;
    if (!it->is_string()) return false;
    e.kind = kind;
    e.version = it->get<std::string>();
    ++found;
  }
  return found == 1;
}

bool read_ranges(const json& object, std::vector<Range>& out) {
  auto it = object.find("ranges");
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_array()) return false;
  for (const auto& item : *it) {
    Range r;
    if (!item.is_object() || !read_string(item, "type", r.type)) return false;
    auto events = item.find("events");
    if (events == item.end() || !events->is_array()) return false;
    for (const auto& e : *events) {
      Event event;
      if (!read_event(e, event)) return false;
      r.events.push_back(std::move(event));
    }
    out.push_back(std::move(r));
  }
  return true;
}

// "severity"/"urgency" under ecosystem_specific or database_specific, if a string.
std::string specific_rating(const json& object) {
  for (const char* section : {"ecosystem_specific", "database_specific"}) {
    auto it = object.find(section);
    if (it == object.end() || !it->is_object()) continue;
    for (const char* key : {"urgency", "severity"}) {
      auto value = it->find(key);
      if (value != it->end() && value->is_string()) return value->get<std::string>();
    }
  }
  return {};
}

bool read_affected(const json& item, Affected& a) {
  if (!item.is_object()) return false;
  auto package = item.find("package");
  if (package != item.end() && !package->is_null()) {
    if (!package->is_object() || !read_string(*package, "ecosystem", a.ecosystem) || !read_string(*package, "name", a.name)) {
      return false;
    }
  }
  if (!read_ranges(item, a.ranges) || !read_strings(item, "versions", a.versions) || !read_severity(item, a.severity)) {
    return false;
  }
  a.rating = specific_rating(item);
  return true;
}

// Sort key of an event version: introduced "0" before everything.
bool before(const Event& a, const Event& b, Scheme scheme) {
  bool a_zero = a.kind == EventKind::introduced && a.version == "0";
  bool b_zero = b.kind == EventKind::introduced && b.version == "0";
  if (a_zero || b_zero) return a_zero && !b_zero;
  return compare_valid(scheme, a.version, b.version) < 0;
}

bool special(const Event& e) {
  return (e.kind == EventKind::introduced && e.version == "0") || (e.kind == EventKind::limit && e.version.find('*') != std::string::npos);
}

// BeforeLimits: no limit means an implicit "*".
bool before_limits(const std::vector<Event>& events, Scheme scheme, std::string_view version) {
  bool any = false;
  for (const auto& e : events) {
    if (e.kind != EventKind::limit) continue;
    any = true;
    if (e.version.find('*') != std::string::npos || compare_valid(scheme, version, e.version) < 0) return true;
  }
  return !any;
}

Error invalid_version(std::string_view version, Scheme scheme) {
  return Error{Errc::manifest_invalid, std::string("not a valid ") + scheme_text(scheme) + " version: '" +
                                           std::string(version.substr(0, 80)) + "'"};
}

const SeverityScore* find_type(const std::vector<SeverityScore>& list, const char* type) {
  for (const auto& s : list) {
    if (s.type == type) return &s;
  }
  return nullptr;
}

}  // namespace

Result<Record> record_from_json(const json& j) {
  if (!j.is_object()) return bad_record("", "not a JSON object");
  Record r;
  if (!read_string(j, "id", r.id) || r.id.empty()) return bad_record("", "no id");
  if (!read_strings(j, "aliases", r.aliases) || !read_strings(j, "upstream", r.aliases) ||
      !read_strings(j, "related", r.related) || !read_string(j, "modified", r.modified) || !read_severity(j, r.severity)) {
    return bad_record(r.id, "a field has the wrong type");
  }
  auto withdrawn = j.find("withdrawn");
  r.withdrawn = withdrawn != j.end() && !withdrawn->is_null();
  auto affected = j.find("affected");
  if (affected != j.end() && !affected->is_null()) {
    if (!affected->is_array()) return bad_record(r.id, "affected is not an array");
    std::string record_rating = specific_rating(j);
    for (const auto& item : *affected) {
      Affected a;
      if (!read_affected(item, a)) return bad_record(r.id, "malformed affected entry");
      if (a.rating.empty()) a.rating = record_rating;
      r.affected.push_back(std::move(a));
    }
  }
  return r;
}

Result<Record> parse_record(std::string_view text) {
  Record r;
  switch (read_record(text, r)) {
    case ReadProblem::none: return r;
    case ReadProblem::invalid_json: return bad_record("", "not valid JSON");
    case ReadProblem::not_object: return bad_record("", "not a JSON object");
    case ReadProblem::no_id: return bad_record("", "no id");
    case ReadProblem::wrong_type: return bad_record(r.id, "a field has the wrong type");
    case ReadProblem::affected_not_array: return bad_record(r.id, "affected is not an array");
    case ReadProblem::malformed_affected: return bad_record(r.id, "malformed affected entry");
  }
  return bad_record(r.id, "unreadable");
}

bool events_valid(const std::vector<Event>& events, Scheme scheme) {
  return std::all_of(events.begin(), events.end(), [&](const Event& e) { return special(e) || valid(scheme, e.version); });
}

void sort_events(std::vector<Event>& events, Scheme scheme) {
  std::stable_sort(events.begin(), events.end(), [&](const Event& a, const Event& b) { return before(a, b, scheme); });
}

bool sorted_affects(const std::vector<Event>& sorted, Scheme scheme, std::string_view version) {
  if (!before_limits(sorted, scheme, version)) return false;
  bool vulnerable = false;
  for (const auto& e : sorted) {
    bool zero = e.kind == EventKind::introduced && e.version == "0";
    int c = zero ? 1 : (e.kind == EventKind::limit ? 0 : compare_valid(scheme, version, e.version));
    if (e.kind == EventKind::introduced && c >= 0) {
      vulnerable = true;
    } else if (e.kind == EventKind::fixed && c >= 0) {
      vulnerable = false;
    } else if (e.kind == EventKind::last_affected && c > 0) {
      vulnerable = false;
    }
  }
  return vulnerable;
}

std::optional<std::string_view> sorted_fixed(const std::vector<Event>& sorted, Scheme scheme, std::string_view version) {
  if (!sorted_affects(sorted, scheme, version)) return std::nullopt;
  for (const auto& e : sorted) {
    if (e.kind == EventKind::fixed && compare_valid(scheme, version, e.version) < 0) return std::string_view(e.version);
  }
  return std::nullopt;
}

Result<bool> range_affects(const Range& range, Scheme scheme, std::string_view version) {
  if (range.type != "ECOSYSTEM") return false;
  if (!valid(scheme, version)) return invalid_version(version, scheme);
  for (const auto& e : range.events) {
    if (!special(e) && !valid(scheme, e.version)) return invalid_version(e.version, scheme);
  }
  std::vector<Event> sorted = range.events;
  sort_events(sorted, scheme);
  return sorted_affects(sorted, scheme, version);
}

Result<bool> affects(const Affected& affected, Scheme scheme, std::string_view version) {
  if (!valid(scheme, version)) return invalid_version(version, scheme);
  for (const auto& v : affected.versions) {
    if (v == version) return true;
  }
  for (const auto& range : affected.ranges) {
    auto hit = range_affects(range, scheme, version);
    if (!hit) return hit.error();
    if (*hit) return true;
  }
  return false;
}

std::optional<std::string> fixed_version(const Affected& affected, Scheme scheme, std::string_view version) {
  if (!valid(scheme, version)) return std::nullopt;
  std::optional<std::string> best;
  for (const auto& range : affected.ranges) {
    if (range.type != "ECOSYSTEM" || !events_valid(range.events, scheme)) continue;
    std::vector<Event> sorted = range.events;
    sort_events(sorted, scheme);
    auto fix = sorted_fixed(sorted, scheme, version);
    if (fix && (!best || compare_valid(scheme, *fix, *best) < 0)) best = std::string(*fix);
  }
  return best;
}

Severity severity_of_word(std::string_view word) {
  std::string w(word);
  std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (w == "unimportant" || w == "negligible") return Severity::none;
  if (w == "low") return Severity::low;
  if (w == "medium" || w == "moderate") return Severity::medium;
  if (w == "high" || w == "important") return Severity::high;
  if (w == "critical") return Severity::critical;
  return Severity::unknown;
}

Rating rate(const Record& record, const Affected& affected) {
  for (std::string_view type : {"CVSS_V3", "CVSS_V4"}) {
    for (const auto* list : {&affected.severity, &record.severity}) {
      for (const auto& s : *list) {
        if (s.type != type) continue;
        auto score = type == "CVSS_V3" ? cvss3_base_score(s.score) : cvss4_score(s.score);
        if (score) return Rating{severity_of_score(*score), *score, s.score};  // a malformed vector is skipped
      }
    }
  }
  for (const auto* list : {&affected.severity, &record.severity}) {
    if (const auto* ubuntu = find_type(*list, "Ubuntu")) {
      return Rating{severity_of_word(ubuntu->score), std::nullopt, "Ubuntu priority: " + ubuntu->score};
    }
  }
  if (!affected.rating.empty()) {
    bool debian = affected.ecosystem.substr(0, 6) == "Debian";
    return Rating{severity_of_word(affected.rating), std::nullopt,
                  (debian ? "Debian urgency: " : "rating: ") + affected.rating};
  }
  return Rating{};
}

}  // namespace ocigate::vuln::osv
