// An OSV record read with nlohmann's SAX interface (see record_reader.hpp). The events fill a tree
// of States that mirrors the record's objects, one Field per key read; the tree is then checked and
// turned into a Record by the rules of record_from_json (osv.cpp), in its order.
#include "record_reader.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ocigate::vuln::osv {

namespace {

using json = nlohmann::json;

// A key's value as the document holds it after the last occurrence of the key.
template <class T>
struct Field {
  T value{};
  bool present = false;   // read for sections and their ratings (a value of the expected kind), and
                          // for events and event kinds (any value: both are required to be right)
  bool bad = false;       // a value of another type
  bool bad_item = false;  // an array item of another type
  void reset() { *this = Field{}; }
};

struct ScoreState {
  Field<std::string> type, score;
};
struct SectionState {  // ecosystem_specific, database_specific: only string ratings count
  Field<std::string> urgency, severity;
};
struct EventState {
  std::array<Field<std::string>, 4> kinds;  // introduced, fixed, last_affected, limit
};
struct RangeState {
  Field<std::string> type;
  Field<std::vector<EventState>> events;
};
struct PackageState {
  Field<std::string> ecosystem, name;
};
struct AffectedState {
  Field<PackageState> package;
  Field<std::vector<RangeState>> ranges;
  Field<std::vector<std::string>> versions;
  Field<std::vector<ScoreState>> severity;
  Field<SectionState> ecosystem_specific, database_specific;
};
struct RecordState {
  Field<std::string> id, modified;
  Field<std::vector<std::string>> aliases, upstream, related;
  Field<std::vector<ScoreState>> severity;
  bool withdrawn = false;
  Field<SectionState> ecosystem_specific, database_specific;
  Field<std::vector<AffectedState>> affected;
};

constexpr std::array<const char*, 4> event_kinds = {"introduced", "fixed", "last_affected", "limit"};

// What the next value is, and where it goes.
enum class Kind {
  record,         // the record itself (the document's root object)
  skip,
  text,           // Field<std::string>: a string, or null
  rating,         // Field<std::string> of a section: a string counts, anything else is ignored
  event_version,  // Field<std::string> of an event: must be a string
  strings,        // Field<std::vector<std::string>>: an array of strings, or null
  string_item,
  scores,         // Field<std::vector<ScoreState>>
  score_item,
  section,        // Field<SectionState>: an object counts, anything else is ignored
  withdrawn,
  affected,       // Field<std::vector<AffectedState>>
  affected_item,
  package,        // Field<PackageState>: an object, or null
  ranges,         // Field<std::vector<RangeState>>
  range_item,
  events,         // Field<std::vector<EventState>>: must be an array
  event_item,
};

// An open object or array: what it is (the Kind of the value that opened it) and its state.
struct Frame {
  Kind kind;
  void* state;
};

class Reader {
 public:
  explicit Reader(RecordState& record) : record_(record) {}

  bool null() { return scalar(nullptr, true); }
  bool boolean(bool) { return scalar(nullptr, false); }
  bool number_integer(json::number_integer_t) { return scalar(nullptr, false); }
  bool number_unsigned(json::number_unsigned_t) { return scalar(nullptr, false); }
  bool number_float(json::number_float_t, const std::string&) { return scalar(nullptr, false); }
  bool string(std::string& value) { return scalar(&value, false); }
  bool binary(json::binary_t&) { return scalar(nullptr, false); }
  bool start_object(std::size_t) { return open(true); }
  bool start_array(std::size_t) { return open(false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(std::string& key) {
    key_.assign(key);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

  bool root_object() const { return root_object_; }

 private:
  template <class T>
  static Field<T>& field(void* p) {
    return *static_cast<Field<T>*>(p);
  }

  // The Kind and place of a value starting now, from the open container and the key; a key's
  // field is reset here, so the last occurrence of a key wins.
  std::pair<Kind, void*> target() {
    const Frame& top = frames_.back();
    auto keyed = [&](Kind kind, auto& f) {
      f.reset();
      return std::pair<Kind, void*>(kind, &f);
    };
    switch (top.kind) {
      case Kind::skip: return {Kind::skip, nullptr};
      case Kind::strings: return {Kind::string_item, top.state};
      case Kind::scores: return {Kind::score_item, top.state};
      case Kind::affected: return {Kind::affected_item, top.state};
      case Kind::ranges: return {Kind::range_item, top.state};
      case Kind::events: return {Kind::event_item, top.state};
      case Kind::score_item: {
        auto& s = *static_cast<ScoreState*>(top.state);
        if (key_ == "type") return keyed(Kind::text, s.type);
        if (key_ == "score") return keyed(Kind::text, s.score);
        return {Kind::skip, nullptr};
      }
      case Kind::section: {
        auto& s = *static_cast<SectionState*>(top.state);
        if (key_ == "urgency") return keyed(Kind::rating, s.urgency);
        if (key_ == "severity") return keyed(Kind::rating, s.severity);
        return {Kind::skip, nullptr};
      }
      case Kind::event_item: {
        auto& e = *static_cast<EventState*>(top.state);
        for (std::size_t k = 0; k < event_kinds.size(); ++k) {
          if (key_ == event_kinds[k]) return keyed(Kind::event_version, e.kinds[k]);
        }
        return {Kind::skip, nullptr};
      }
      case Kind::range_item: {
        auto& r = *static_cast<RangeState*>(top.state);
        if (key_ == "type") return keyed(Kind::text, r.type);
        if (key_ == "events") return keyed(Kind::events, r.events);
        return {Kind::skip, nullptr};
      }
      case Kind::package: {
        auto& p = *static_cast<PackageState*>(top.state);
        if (key_ == "ecosystem") return keyed(Kind::text, p.ecosystem);
        if (key_ == "name") return keyed(Kind::text, p.name);
        return {Kind::skip, nullptr};
      }
      case Kind::affected_item: return affected_key(*static_cast<AffectedState*>(top.state), keyed);
      case Kind::record: return record_key(keyed);
      default: return {Kind::skip, nullptr};
    }
  }

  template <class Keyed>
  std::pair<Kind, void*> affected_key(AffectedState& a, Keyed& keyed) {
    if (key_ == "package") return keyed(Kind::package, a.package);
    if (key_ == "ranges") return keyed(Kind::ranges, a.ranges);
    if (key_ == "versions") return keyed(Kind::strings, a.versions);
    if (key_ == "severity") return keyed(Kind::scores, a.severity);
    if (key_ == "ecosystem_specific") return keyed(Kind::section, a.ecosystem_specific);
    if (key_ == "database_specific") return keyed(Kind::section, a.database_specific);
    return {Kind::skip, nullptr};
  }

  template <class Keyed>
  std::pair<Kind, void*> record_key(Keyed& keyed) {
    RecordState& r = record_;
    if (key_ == "id") return keyed(Kind::text, r.id);
    if (key_ == "modified") return keyed(Kind::text, r.modified);
    if (key_ == "aliases") return keyed(Kind::strings, r.aliases);
    if (key_ == "upstream") return keyed(Kind::strings, r.upstream);
    if (key_ == "related") return keyed(Kind::strings, r.related);
    if (key_ == "severity") return keyed(Kind::scores, r.severity);
    if (key_ == "ecosystem_specific") return keyed(Kind::section, r.ecosystem_specific);
    if (key_ == "database_specific") return keyed(Kind::section, r.database_specific);
    if (key_ == "affected") return keyed(Kind::affected, r.affected);
    if (key_ == "withdrawn") {
      r.withdrawn = false;
      return {Kind::withdrawn, nullptr};
    }
    return {Kind::skip, nullptr};
  }

  bool scalar(std::string* text, bool is_null) {
    if (frames_.empty()) return true;  // a document that is not an object
    auto [kind, place] = target();
    switch (kind) {
      case Kind::text:
        if (text) {
          field<std::string>(place).value = std::move(*text);
        } else if (!is_null) {
          field<std::string>(place).bad = true;
        }
        break;
      case Kind::rating:
        if (text) {
          field<std::string>(place).value = std::move(*text);
          field<std::string>(place).present = true;
        }
        break;
      case Kind::event_version:
        field<std::string>(place).present = true;
        if (text) {
          field<std::string>(place).value = std::move(*text);
        } else {
          field<std::string>(place).bad = true;
        }
        break;
      case Kind::string_item:
        if (text) {
          field<std::vector<std::string>>(place).value.push_back(std::move(*text));
        } else {
          field<std::vector<std::string>>(place).bad_item = true;
        }
        break;
      case Kind::withdrawn: record_.withdrawn = !is_null; break;
      default: wrong_kind(kind, place, is_null); break;
    }
    return true;
  }

  // A scalar where a container is expected (or the other way round).
  template <class T>
  static void refuse(void* place, bool is_null) {
    if (!is_null) field<T>(place).bad = true;
  }

  static void wrong_kind(Kind kind, void* place, bool is_null) {
    switch (kind) {
      case Kind::strings: refuse<std::vector<std::string>>(place, is_null); break;
      case Kind::scores: refuse<std::vector<ScoreState>>(place, is_null); break;
      case Kind::affected: refuse<std::vector<AffectedState>>(place, is_null); break;
      case Kind::package: refuse<PackageState>(place, is_null); break;
      case Kind::ranges: refuse<std::vector<RangeState>>(place, is_null); break;
      case Kind::events:
        field<std::vector<EventState>>(place).present = true;
        field<std::vector<EventState>>(place).bad = true;  // null too: events are required
        break;
      case Kind::score_item: field<std::vector<ScoreState>>(place).bad_item = true; break;
      case Kind::affected_item: field<std::vector<AffectedState>>(place).bad_item = true; break;
      case Kind::range_item: field<std::vector<RangeState>>(place).bad_item = true; break;
      case Kind::event_item: field<std::vector<EventState>>(place).bad_item = true; break;
      default: break;  // skip, section: ignored
    }
  }

  bool open(bool object) {
    if (frames_.empty()) {  // the document's root
      root_object_ = object;
      frames_.push_back({object ? Kind::record : Kind::skip, &record_});
      return true;
    }
    auto [kind, place] = target();
    frames_.push_back({Kind::skip, nullptr});
    Frame& frame = frames_.back();
    if (object) {
      open_object(kind, place, frame);
    } else {
      open_array(kind, place, frame);
    }
    if (frame.kind == Kind::skip && kind != Kind::skip) wrong_container(kind, place);
    return true;
  }

  template <class T>
  static auto& emplace(void* place) {
    return field<std::vector<T>>(place).value.emplace_back();
  }

  static void open_object(Kind kind, void* place, Frame& frame) {
    switch (kind) {
      case Kind::score_item: frame = {kind, &emplace<ScoreState>(place)}; break;
      case Kind::affected_item: frame = {kind, &emplace<AffectedState>(place)}; break;
      case Kind::range_item: frame = {kind, &emplace<RangeState>(place)}; break;
      case Kind::event_item: frame = {kind, &emplace<EventState>(place)}; break;
      case Kind::section:
        field<SectionState>(place).present = true;
        frame = {kind, &field<SectionState>(place).value};
        break;
      case Kind::package: frame = {kind, &field<PackageState>(place).value}; break;
      default: break;
    }
  }

  static void open_array(Kind kind, void* place, Frame& frame) {
    switch (kind) {
      case Kind::events: field<std::vector<EventState>>(place).present = true; [[fallthrough]];
      case Kind::strings:
      case Kind::scores:
      case Kind::affected:
      case Kind::ranges: frame = {kind, place}; break;
      default: break;
    }
  }

  // A container where another kind of value is expected: the field (or its array) is bad.
  void wrong_container(Kind kind, void* place) {
    switch (kind) {
      case Kind::text: field<std::string>(place).bad = true; break;
      case Kind::event_version:
        field<std::string>(place).present = true;
        field<std::string>(place).bad = true;
        break;
      case Kind::string_item: field<std::vector<std::string>>(place).bad_item = true; break;
      case Kind::withdrawn: record_.withdrawn = true; break;
      default: wrong_kind(kind, place, false); break;
    }
  }

  bool close() {
    frames_.pop_back();
    return true;
  }

  RecordState& record_;
  std::vector<Frame> frames_;
  std::string key_;
  bool root_object_ = false;
};

// ---- from the states to a Record, by record_from_json's rules ----

bool list_ok(const auto& f) { return !f.bad && !f.bad_item; }

bool scores_ok(const Field<std::vector<ScoreState>>& f) {
  return list_ok(f) && std::none_of(f.value.begin(), f.value.end(), [](const ScoreState& s) { return s.type.bad || s.score.bad; });
}

std::vector<SeverityScore> scores(Field<std::vector<ScoreState>>& f) {
  std::vector<SeverityScore> out;
  for (auto& s : f.value) out.push_back({std::move(s.type.value), std::move(s.score.value)});
  return out;
}

// "urgency", else "severity", of ecosystem_specific, else of database_specific.
std::string rating(const Field<SectionState>& ecosystem, const Field<SectionState>& database) {
  for (const auto* section : {&ecosystem, &database}) {
    if (!section->present) continue;
    if (section->value.urgency.present) return section->value.urgency.value;
    if (section->value.severity.present) return section->value.severity.value;
  }
  return {};
}

bool event_of(EventState& state, Event& out) {
  int found = 0;
  for (std::size_t k = 0; k < state.kinds.size(); ++k) {
    auto& f = state.kinds[k];
    if (!f.present) continue;
    if (f.bad) return false;
    out.kind = static_cast<EventKind>(k);
    out.version = std::move(f.value);
    ++found;
  }
  return found == 1;
}

bool range_of(RangeState& state, Range& out) {
  if (state.type.bad || !state.events.present || !list_ok(state.events)) return false;
  out.type = std::move(state.type.value);
  for (auto& e : state.events.value) {
    if (!event_of(e, out.events.emplace_back())) return false;
  }
  return true;
}

bool affected_of(AffectedState& state, Affected& out) {
  auto& package = state.package;
  if (package.bad || package.value.ecosystem.bad || package.value.name.bad) return false;
  if (!list_ok(state.ranges) || !list_ok(state.versions) || !scores_ok(state.severity)) return false;
  out.ecosystem = std::move(package.value.ecosystem.value);
  out.name = std::move(package.value.name.value);
  for (auto& r : state.ranges.value) {
    if (!range_of(r, out.ranges.emplace_back())) return false;
  }
  out.versions = std::move(state.versions.value);
  out.severity = scores(state.severity);
  out.rating = rating(state.ecosystem_specific, state.database_specific);
  return true;
}

ReadProblem record_of(RecordState& state, Record& out) {
  out.id = std::move(state.id.value);
  if (state.id.bad || out.id.empty()) return ReadProblem::no_id;
  if (!list_ok(state.aliases) || !list_ok(state.upstream) || !list_ok(state.related) || state.modified.bad ||
      !scores_ok(state.severity)) {
    return ReadProblem::wrong_type;
  }
  out.aliases = std::move(state.aliases.value);
  for (auto& id : state.upstream.value) out.aliases.push_back(std::move(id));
  out.related = std::move(state.related.value);
  out.modified = std::move(state.modified.value);
  out.severity = scores(state.severity);
  out.withdrawn = state.withdrawn;
  if (state.affected.bad) return ReadProblem::affected_not_array;
  if (state.affected.bad_item) return ReadProblem::malformed_affected;
  const std::string record_rating = rating(state.ecosystem_specific, state.database_specific);
  for (auto& a : state.affected.value) {
    Affected& entry = out.affected.emplace_back();
    if (!affected_of(a, entry)) return ReadProblem::malformed_affected;
    if (entry.rating.empty()) entry.rating = record_rating;
  }
  return ReadProblem::none;
}

}  // namespace

ReadProblem read_record(std::string_view text, Record& out) {
  RecordState state;
  Reader reader(state);
  if (!json::sax_parse(text, &reader)) return ReadProblem::invalid_json;
  if (!reader.root_object()) return ReadProblem::not_object;
  return record_of(state, out);
}

}  // namespace ocigate::vuln::osv
