#pragma once
// OSV records (the OpenSSF Open Source Vulnerability schema, as osv.dev publishes them) and
// their evaluation: which versions of a package a record affects, and which fix to report.
// Only what the matcher needs is kept: ids, withdrawn, affected packages with their ECOSYSTEM
// ranges and `versions` lists, severities and the distributions' own ratings.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ocigate/common/result.hpp"
#include "ocigate/vuln/cvss.hpp"
#include "ocigate/vuln/version.hpp"

namespace ocigate::vuln::osv {

enum class EventKind { introduced, fixed, last_affected, limit };

struct Event {
  EventKind kind = EventKind::introduced;
  std::string version;  // "0" for introduced means "before every version"; "*" in a limit is infinity
  bool operator==(const Event&) const = default;
};

struct Range {
  std::string type;  // "ECOSYSTEM", "SEMVER", "GIT": only ECOSYSTEM ranges are evaluated
  std::vector<Event> events;
  bool operator==(const Range&) const = default;
};

struct SeverityScore {
  std::string type;   // "CVSS_V3", "CVSS_V4", "Ubuntu", ...
  std::string score;  // a vector, or the database's word
  bool operator==(const SeverityScore&) const = default;
};

struct Affected {
  std::string ecosystem;  // "Debian:12", "Alpine:v3.20", "Ubuntu:22.04:LTS", "Red Hat:enterprise_linux:9::baseos"
  std::string name;       // source package (Debian, Ubuntu), origin (Alpine), rpm name (Red Hat, Rocky, Alma)
  std::vector<Range> ranges;
  std::vector<std::string> versions;
  std::vector<SeverityScore> severity;  // affected[].severity, when the record scores per package
  // The distribution's own rating for this package, as written: Debian's
  // ecosystem_specific.urgency, or a database_specific / ecosystem_specific "severity".
  std::string rating;
  bool operator==(const Affected&) const = default;
};

struct Record {
  std::string id;
  std::vector<std::string> aliases;  // `aliases` then `upstream` (DEBIAN-CVE-*, UBUNTU-CVE-* name their CVE there)
  std::vector<std::string> related;  // `related` (ALSA/RLSA list the CVEs they fix there)
  bool withdrawn = false;            // a `withdrawn` time is present
  std::string modified;
  std::vector<SeverityScore> severity;
  std::vector<Affected> affected;
  bool operator==(const Record&) const = default;
};

// One record from its JSON text. An error for bad JSON, a missing or empty id, or a field of the
// wrong type among those read; unknown fields are ignored. Never throws. It reads the text
// without building a document (the loader's cost); record_from_json reads a document by the same
// rules, and both give the same answer for the same JSON (fuzz_osv checks it).
Result<Record> parse_record(std::string_view json_text);
Result<Record> record_from_json(const nlohmann::json& json);

// The schema's evaluation ("Evaluation" section of the OSV schema): events sorted by version,
// then walked; limits bound the range. `version` and every event version must be valid for
// `scheme` (an error otherwise). A non-ECOSYSTEM range affects nothing.
Result<bool> range_affects(const Range& range, Scheme scheme, std::string_view version);
// IncludedInVersions || IncludedInRanges for one affected entry.
Result<bool> affects(const Affected& affected, Scheme scheme, std::string_view version);
// The fix to report for an affected version: the lowest `fixed` above it in the ranges that
// include it; nullopt when none (no fix yet, or the range ends in last_affected / limit).
std::optional<std::string> fixed_version(const Affected& affected, Scheme scheme, std::string_view version);

// The same, split for callers that check and sort a range once and evaluate it often (the
// database): events_valid checks every version (introduced "0" and limit "*" aside),
// sort_events orders them as the evaluation needs (stable), and the sorted_* functions
// evaluate without allocating. `version` must be valid for the scheme.
bool events_valid(const std::vector<Event>& events, Scheme scheme);
void sort_events(std::vector<Event>& events, Scheme scheme);
bool sorted_affects(const std::vector<Event>& sorted, Scheme scheme, std::string_view version);
std::optional<std::string_view> sorted_fixed(const std::vector<Event>& sorted, Scheme scheme, std::string_view version);

// A record's severity for one affected entry: a CVSS v3.x vector (affected-level first, then
// record-level), else a CVSS v4.0 vector, else the distribution's rating, else unknown.
struct Rating {
  Severity severity = Severity::unknown;
  std::optional<double> score;  // the CVSS score, when one was computed
  std::string source;           // the vector, or e.g. "Debian urgency: low", "Ubuntu priority: medium"
};
Rating rate(const Record& record, const Affected& affected);
// A distribution's word as a severity: Debian urgency (unimportant, low, medium, high), Ubuntu
// priority (negligible, low, medium, high, critical), Red Hat (Low, Moderate, Important,
// Critical). "unimportant" and "negligible" are none; unknown words (e.g. "not yet assigned")
// are unknown.
Severity severity_of_word(std::string_view word);

}  // namespace ocigate::vuln::osv
