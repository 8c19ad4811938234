// CVSS v3.x base scores and v4.0 scores, written from the FIRST specifications.

#include "ocigate/vuln/cvss.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace ocigate::vuln {

namespace {

struct MetricSpec {
  std::string_view name;
  std::string_view values;  // allowed values, space separated
  bool required;
};

using Metrics = std::map<std::string_view, std::string_view>;

bool one_of(std::string_view values, std::string_view v) {
  while (!values.empty()) {
    auto space = values.find(' ');
    if (values.substr(0, space) == v) return true;
    if (space == std::string_view::npos) break;
    values.remove_prefix(space + 1);
  }
  return false;
}

Error bad_vector(std::string_view vector, const std::string& why) {
  return Error{Errc::manifest_invalid, "CVSS vector '" + std::string(vector.substr(0, 200)) + "': " + why};
}

// "CVSS:<version>/K:V/K:V..." checked against the metric table: every metric known, none
// repeated, each value allowed, every required one present.
template <std::size_t N>
Result<Metrics> parse_vector(std::string_view vector, std::string_view prefix, const std::array<MetricSpec, N>& specs) {
  if (vector.substr(0, prefix.size()) != prefix) return bad_vector(vector, "does not start with " + std::string(prefix));
  std::string_view rest = vector.substr(prefix.size());
  Metrics metrics;
  while (!rest.empty()) {
    if (rest.front() != '/') return bad_vector(vector, "expected '/'");
    rest.remove_prefix(1);
    auto slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    auto colon = part.find(':');
    if (colon == std::string_view::npos) return bad_vector(vector, "metric without a value");
    std::string_view name = part.substr(0, colon), value = part.substr(colon + 1);
    auto spec = std::find_if(specs.begin(), specs.end(), [&](const MetricSpec& s) { return s.name == name; });
    if (spec == specs.end()) return bad_vector(vector, "unknown metric " + std::string(name));
    if (!one_of(spec->values, value)) return bad_vector(vector, "bad value for " + std::string(name));
    if (!metrics.emplace(name, value).second) return bad_vector(vector, "repeated metric " + std::string(name));
  }
  for (const auto& spec : specs) {
    if (spec.required && !metrics.count(spec.name)) return bad_vector(vector, "missing metric " + std::string(spec.name));
  }
  return metrics;
}

// ---- v3 ----

constexpr std::array<MetricSpec, 22> v3_specs = {{
    {"AV", "N A L P", true},   {"AC", "L H", true},       {"PR", "N L H", true},     {"UI", "N R", true},
    {"S", "U C", true},        {"C", "H L N", true},      {"I", "H L N", true},      {"A", "H L N", true},
    {"E", "X U P F H", false}, {"RL", "X O T W U", false}, {"RC", "X U R C", false},  {"CR", "X L M H", false},
    {"IR", "X L M H", false},  {"AR", "X L M H", false},  {"MAV", "X N A L P", false}, {"MAC", "X L H", false},
    {"MPR", "X N L H", false}, {"MUI", "X N R", false},   {"MS", "X U C", false},    {"MC", "X N L H", false},
    {"MI", "X N L H", false},  {"MA", "X N L H", false},
}};

// Appendix A of CVSS v3.1: the smallest one-decimal number >= x, computed on integers so that
// floating-point noise (e.g. 4.000000000000001) does not round up.
double roundup(double x) {
  long long int_input = std::llround(x * 100000.0);
  if (int_input % 10000 == 0) return static_cast<double>(int_input) / 100000.0;
  return static_cast<double>(int_input / 10000 + 1) / 10.0;
}

double weight(std::string_view metric, std::string_view v, bool changed) {
  if (metric == "AV") return v == "N" ? 0.85 : v == "A" ? 0.62 : v == "L" ? 0.55 : 0.2;
  if (metric == "AC") return v == "L" ? 0.77 : 0.44;
  if (metric == "PR") return v == "N" ? 0.85 : v == "L" ? (changed ? 0.68 : 0.62) : (changed ? 0.5 : 0.27);
  if (metric == "UI") return v == "N" ? 0.85 : 0.62;
  return v == "H" ? 0.56 : v == "L" ? 0.22 : 0.0;  // C, I, A
}

// ---- v4 ----

constexpr std::array<MetricSpec, 32> v4_specs = {{
    {"AV", "N A L P", true},      {"AC", "L H", true},           {"AT", "N P", true},
    {"PR", "N L H", true},        {"UI", "N P A", true},         {"VC", "H L N", true},
    {"VI", "H L N", true},        {"VA", "H L N", true},         {"SC", "H L N", true},
    {"SI", "H L N", true},        {"SA", "H L N", true},         {"E", "X A P U", false},
    {"CR", "X H M L", false},     {"IR", "X H M L", false},      {"AR", "X H M L", false},
    {"MAV", "X N A L P", false},  {"MAC", "X L H", false},       {"MAT", "X N P", false},
    {"MPR", "X N L H", false},    {"MUI", "X N P A", false},     {"MVC", "X H L N", false},
    {"MVI", "X H L N", false},    {"MVA", "X H L N", false},     {"MSC", "X H L N", false},
    {"MSI", "X S H L N", false},  {"MSA", "X S H L N", false},   {"S", "X N P", false},
    {"AU", "X N Y", false},       {"R", "X A U I", false},       {"V", "X D C", false},
    {"RE", "X L M H", false},     {"U", "X Clear Green Amber Red", false},
}};

struct LookupRow {
  const char* macro;
  double score;
};
constexpr LookupRow lookup_rows[] = {
#include "cvss4_lookup.inc"
};

std::optional<double> lookup(const std::string& macro) {
  static const std::map<std::string, double> table = [] {
    std::map<std::string, double> t;
    for (const auto& row : lookup_rows) t.emplace(row.macro, row.score);
    return t;
  }();
  auto it = table.find(macro);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

// The value a metric takes in the score: an unset threat/requirement metric counts as its
// worst case (E:A, CR/IR/AR:H), a set modified metric (M*) replaces its base metric.
class Effective {
 public:
  explicit Effective(const Metrics& m) : m_(m) {}
  std::string_view operator()(std::string_view metric) const {
    auto raw = get(metric);
    if (metric == "E" && (raw.empty() || raw == "X")) return "A";
    if ((metric == "CR" || metric == "IR" || metric == "AR") && (raw.empty() || raw == "X")) return "H";
    std::string name = "M";  // appended, not "M" + metric: GCC 12 warns falsely (-Wrestrict) on the latter
    name += metric;
    auto modified = get(name);
    if (!modified.empty() && modified != "X") return modified;
    return raw;
  }

 private:
  std::string_view get(std::string_view metric) const {
    auto it = m_.find(metric);
    return it == m_.end() ? std::string_view() : it->second;
  }
  const Metrics& m_;
};

std::string macro_vector(const Effective& m) {
  bool av_n = m("AV") == "N", pr_n = m("PR") == "N", ui_n = m("UI") == "N";
  int eq1 = (av_n && pr_n && ui_n) ? 0 : ((av_n || pr_n || ui_n) && m("AV") != "P") ? 1 : 2;
  int eq2 = (m("AC") == "L" && m("AT") == "N") ? 0 : 1;
  bool vc_h = m("VC") == "H", vi_h = m("VI") == "H", va_h = m("VA") == "H";
  int eq3 = (vc_h && vi_h) ? 0 : (vc_h || vi_h || va_h) ? 1 : 2;
  bool safety = m("MSI") == "S" || m("MSA") == "S";
  int eq4 = safety ? 0 : (m("SC") == "H" || m("SI") == "H" || m("SA") == "H") ? 1 : 2;
  int eq5 = m("E") == "A" ? 0 : m("E") == "P" ? 1 : 2;
  bool eq6_0 = (m("CR") == "H" && vc_h) || (m("IR") == "H" && vi_h) || (m("AR") == "H" && va_h);
  int eq6 = eq6_0 ? 0 : 1;
  std::string out;
  for (int eq : {eq1, eq2, eq3, eq4, eq5, eq6}) out += static_cast<char>('0' + eq);
  return out;
}

// Severity levels of each metric value inside a MacroVector (spec section 8.2: "severity
// distance"), in tenths.
double level(std::string_view metric, std::string_view v) {
  if (metric == "AV") return v == "N" ? 0.0 : v == "A" ? 0.1 : v == "L" ? 0.2 : 0.3;
  if (metric == "PR") return v == "N" ? 0.0 : v == "L" ? 0.1 : 0.2;
  if (metric == "UI") return v == "N" ? 0.0 : v == "P" ? 0.1 : 0.2;
  if (metric == "AC") return v == "L" ? 0.0 : 0.1;
  if (metric == "AT") return v == "N" ? 0.0 : 0.1;
  if (metric == "VC" || metric == "VI" || metric == "VA") return v == "H" ? 0.0 : v == "L" ? 0.1 : 0.2;
  if (metric == "SC") return v == "H" ? 0.1 : v == "L" ? 0.2 : 0.3;
  if (metric == "SI" || metric == "SA") return v == "S" ? 0.0 : v == "H" ? 0.1 : v == "L" ? 0.2 : 0.3;
  return v == "H" ? 0.0 : v == "M" ? 0.1 : 0.2;  // CR, IR, AR
}

// The highest-severity vectors of each MacroVector level (spec tables 24-29, the "max_composed"
// data of the reference calculator), as metric strings.
const std::vector<std::string>& eq_maxes(int eq, int value, int eq6) {
  static const std::vector<std::string> none;
  static const std::vector<std::string> eq1[] = {
      {"AV:N/PR:N/UI:N/"}, {"AV:A/PR:N/UI:N/", "AV:N/PR:L/UI:N/", "AV:N/PR:N/UI:P/"}, {"AV:P/PR:N/UI:N/", "AV:A/PR:L/UI:P/"}};
  static const std::vector<std::string> eq2[] = {{"AC:L/AT:N/"}, {"AC:H/AT:N/", "AC:L/AT:P/"}};
  static const std::vector<std::string> eq3_6[3][2] = {
      {{"VC:H/VI:H/VA:H/CR:H/IR:H/AR:H/"}, {"VC:H/VI:H/VA:L/CR:M/IR:M/AR:H/", "VC:H/VI:H/VA:H/CR:M/IR:M/AR:M/"}},
      {{"VC:L/VI:H/VA:H/CR:H/IR:H/AR:H/", "VC:H/VI:L/VA:H/CR:H/IR:H/AR:H/"},
       {"VC:L/VI:H/VA:L/CR:H/IR:M/AR:H/", "VC:L/VI:H/VA:H/CR:H/IR:M/AR:M/", "VC:H/VI:L/VA:H/CR:M/IR:H/AR:M/",
        "VC:H/VI:L/VA:L/CR:M/IR:H/AR:H/", "VC:L/VI:L/VA:H/CR:H/IR:H/AR:M/"}},
      {{}, {"VC:L/VI:L/VA:L/CR:H/IR:H/AR:H/"}}};
  static const std::vector<std::string> eq4[] = {{"SC:H/SI:S/SA:S/"}, {"SC:H/SI:H/SA:H/"}, {"SC:L/SI:L/SA:L/"}};
  static const std::vector<std::string> eq5[] = {{"E:A/"}, {"E:P/"}, {"E:U/"}};
  switch (eq) {
    case 1: return eq1[value];
    case 2: return eq2[value];
    case 3: return eq3_6[value][eq6];
    case 4: return eq4[value];
    case 5: return eq5[value];
  }
  return none;
}

// "AV:N/PR:L/..." -> the value of one metric.
std::string_view value_in(std::string_view max_vector, std::string_view metric) {
  std::string key = std::string(metric) + ":";
  for (std::size_t at = 0; at < max_vector.size();) {
    auto slash = max_vector.find('/', at);
    std::string_view part = max_vector.substr(at, slash - at);
    if (part.substr(0, key.size()) == key) return part.substr(key.size());
    if (slash == std::string_view::npos) break;
    at = slash + 1;
  }
  return {};
}

// Depth of each MacroVector level (spec: the number of severity steps it spans, plus one).
double depth(int eq, int value, int eq6) {
  static const double eq1[] = {1, 4, 5}, eq2[] = {1, 2}, eq4[] = {6, 5, 4};
  static const double eq3_6[3][2] = {{7, 6}, {8, 8}, {0, 10}};
  switch (eq) {
    case 1: return eq1[value];
    case 2: return eq2[value];
    case 3: return eq3_6[value][eq6];
    case 4: return eq4[value];
  }
  return 1;
}

constexpr std::array<std::string_view, 14> distance_metrics = {"AV", "PR", "UI", "AC", "AT", "VC", "VI",
                                                                "VA", "SC", "SI", "SA", "CR", "IR", "AR"};

// Severity distances (per metric) from the first highest vector of the MacroVector that the
// scored vector does not exceed.
std::map<std::string_view, double> distances(const Effective& m, const std::string& macro) {
  int e[6];
  for (int i = 0; i < 6; ++i) e[i] = macro[i] - '0';
  std::vector<std::string> maxes = {""};
  for (int eq = 1; eq <= 5; ++eq) {
    std::vector<std::string> next;
    for (const auto& prefix : maxes) {
      for (const auto& part : eq_maxes(eq, e[eq - 1], e[5])) next.push_back(prefix + part);
    }
    maxes = std::move(next);
  }
  std::map<std::string_view, double> d;
  for (const auto& max_vector : maxes) {
    bool fits = true;
    for (auto metric : distance_metrics) {
      d[metric] = level(metric, m(metric)) - level(metric, value_in(max_vector, metric));
      fits = fits && d[metric] >= 0;
    }
    if (fits) break;
  }
  return d;
}

double v4_value(const Metrics& metrics) {
  Effective m(metrics);
  bool no_impact = true;
  for (auto metric : {"VC", "VI", "VA", "SC", "SI", "SA"}) no_impact = no_impact && m(metric) == "N";
  if (no_impact) return 0.0;
  std::string macro = macro_vector(m);
  double value = lookup(macro).value_or(0.0);
  int e[6];
  for (int i = 0; i < 6; ++i) e[i] = macro[i] - '0';
  auto lower = [&](int i, int j = -1) {
    std::string next = macro;
    next[i] = static_cast<char>(next[i] + 1);
    if (j >= 0) next[j] = static_cast<char>(next[j] + 1);
    return lookup(next);
  };
  // The next lower MacroVector along each EQ (EQ3 and EQ6 move together).
  std::optional<double> lower_eq3_6;
  if (e[2] == 0 && e[5] == 0) {
    // Two ways down; the higher one counts (the reference calculator takes the right one unless
    // the left is strictly higher, so a missing right one means none).
    auto left = lower(5), right = lower(2);
    lower_eq3_6 = (left && right && *left > *right) ? left : right;
  } else if (e[2] == 1 && e[5] == 0) {
    lower_eq3_6 = lower(5);
  } else if (e[5] == 1 && e[2] <= 1) {
    lower_eq3_6 = lower(2);
  } else {
    lower_eq3_6 = lower(2, 5);
  }
  auto d = distances(m, macro);
  double current[5] = {d["AV"] + d["PR"] + d["UI"], d["AC"] + d["AT"],
                       d["VC"] + d["VI"] + d["VA"] + d["CR"] + d["IR"] + d["AR"], d["SC"] + d["SI"] + d["SA"], 0};
  std::optional<double> lowers[5] = {lower(0), lower(1), lower_eq3_6, lower(3), lower(4)};
  int eq_index[5] = {1, 2, 3, 4, 5};
  int existing = 0;
  double total = 0;
  for (int k = 0; k < 5; ++k) {
    if (!lowers[k]) continue;
    ++existing;
    if (k == 4) continue;  // EQ5's proportion is always 0
    double available = value - *lowers[k];
    double max_severity = depth(eq_index[k], e[eq_index[k] - 1], e[5]) * 0.1;
    total += available * (current[k] / max_severity);
  }
  double mean = existing == 0 ? 0 : total / existing;
  value -= mean;
  value = std::clamp(value, 0.0, 10.0);
  // Half up to one decimal, after a 1e-6 nudge so that a half computed as 5.64999999 still
  // rounds up (what FIRST's calculator does since its floating-point fix).
  return std::floor((value + 1e-6) * 10 + 0.5) / 10;
}

}  // namespace

const char* severity_text(Severity s) {
  switch (s) {
    case Severity::none: return "none";
    case Severity::low: return "low";
    case Severity::medium: return "medium";
    case Severity::high: return "high";
    case Severity::critical: return "critical";
    case Severity::unknown: break;
  }
  return "unknown";
}

std::optional<Severity> parse_severity(std::string_view text) {
  for (Severity s : {Severity::unknown, Severity::none, Severity::low, Severity::medium, Severity::high, Severity::critical}) {
    if (text == severity_text(s)) return s;
  }
  return std::nullopt;
}

Severity severity_of_score(double score) {
  if (score <= 0.0) return Severity::none;
  if (score < 4.0) return Severity::low;
  if (score < 7.0) return Severity::medium;
  if (score < 9.0) return Severity::high;
  return Severity::critical;
}

Result<double> cvss3_base_score(std::string_view vector) {
  std::string_view prefix = vector.substr(0, 9) == "CVSS:3.0/" ? "CVSS:3.0" : "CVSS:3.1";
  auto parsed = parse_vector(vector, prefix, v3_specs);
  if (!parsed) return parsed.error();
  const Metrics& m = *parsed;
  bool changed = m.at("S") == "C";
  double iss = 1 - (1 - weight("C", m.at("C"), changed)) * (1 - weight("I", m.at("I"), changed)) *
                       (1 - weight("A", m.at("A"), changed));
  double impact = changed ? 7.52 * (iss - 0.029) - 3.25 * std::pow(iss - 0.02, 15) : 6.42 * iss;
  double exploitability = 8.22 * weight("AV", m.at("AV"), changed) * weight("AC", m.at("AC"), changed) *
                          weight("PR", m.at("PR"), changed) * weight("UI", m.at("UI"), changed);
  if (impact <= 0) return 0.0;
  if (changed) return roundup(std::min(1.08 * (impact + exploitability), 10.0));
  return roundup(std::min(impact + exploitability, 10.0));
}

Result<double> cvss4_score(std::string_view vector) {
  auto parsed = parse_vector(vector, "CVSS:4.0", v4_specs);
  if (!parsed) return parsed.error();
  return v4_value(*parsed);
}

}  // namespace ocigate::vuln
