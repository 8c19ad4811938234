// Verdict rendering: JSON (API, audit log, verdict cache), the 403 message, Warning headers.

#include "ocigate/policy/engine.hpp"

namespace ocigate::policy {

namespace {

constexpr std::size_t warning_budget = 4096;   // bytes over all Warning values
constexpr std::size_t warning_message_cap = 300;  // one long message must not eat the budget

nlohmann::json violation_json(const Finding& f) {
  return {{"check", f.check},     {"action", action_text(f.action)}, {"message", f.message},
          {"remediation", f.remediation}, {"evidence", f.evidence},  {"origin", f.origin}};
}

// Details with each array cut to `items` entries and "<name>_omitted" counting the rest (added to
// what an earlier cut left out). Details that are not an object are kept whole.
nlohmann::json capped(const nlohmann::json& details, std::size_t items) {
  if (!details.is_object() || items == Verdict::unlimited) return details;
  nlohmann::json out = details;
  for (auto& [key, value] : details.items()) {
    if (!value.is_array() || value.size() <= items) continue;
    const std::string omitted = key + "_omitted";
    std::size_t before = out.contains(omitted) && out[omitted].is_number_unsigned() ? out[omitted].get<std::size_t>() : 0;
    out[omitted] = before + (value.size() - items);
    out[key] = nlohmann::json(value.begin(), value.begin() + static_cast<std::ptrdiff_t>(items));
  }
  return out;
}

std::optional<Action> action_from(const std::string& s) {
  if (s == "off") return Action::off;
  if (s == "warn") return Action::warn;
  if (s == "block") return Action::block;
  return std::nullopt;
}

std::optional<Outcome> outcome_from(const std::string& s) {
  if (s == "pass") return Outcome::pass;
  if (s == "fail") return Outcome::fail;
  if (s == "unknown") return Outcome::unknown;
  return std::nullopt;
}

std::optional<Decision> decision_from(const std::string& s) {
  if (s == "allow") return Decision::allow;
  if (s == "warn") return Decision::warn;
  if (s == "block") return Decision::block;
  return std::nullopt;
}

bool read_string(const nlohmann::json& object, const char* key, std::string& out, bool required = true) {
  auto it = object.find(key);
  if (it == object.end()) return !required;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

// A quoted-string for the Warning header: printable ASCII only, quotes and backslashes escaped.
std::string quoted_text(std::string_view s, std::size_t cap) {
  std::string out;
  for (char c : s) {
    if (out.size() >= cap) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      if (u >= 0x80 && (u & 0xC0) == 0x80) continue;  // UTF-8 continuation bytes: one '?' per character
      out += u >= 0x80 ? '?' : ' ';
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

std::string warning_value(std::string_view text) { return "299 - \"ocigate: " + std::string(text) + "\""; }

}  // namespace

nlohmann::json Verdict::violations_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const Finding* f : violations()) out.push_back(violation_json(*f));
  return out;
}

void Verdict::cap_details(std::size_t detail_items) {
  for (auto& f : findings) {
    if (!f.details.is_null()) f.details = capped(f.details, detail_items);
  }
}

nlohmann::json Verdict::to_json(std::size_t detail_items) const {
  nlohmann::json exempted = nlohmann::json::array();
  nlohmann::json checks = nlohmann::json::array();
  nlohmann::json violations = nlohmann::json::array();
  for (const auto& f : findings) {
    nlohmann::json details = f.details.is_null() ? nlohmann::json() : capped(f.details, detail_items);
    nlohmann::json check = {{"check", f.check}, {"result", outcome_text(f.outcome)}, {"action", action_text(f.action)},
                            {"message", f.message}};
    if (!f.remediation.empty()) check["remediation"] = f.remediation;
    if (!f.evidence.empty()) check["evidence"] = f.evidence;
    if (!f.origin.empty()) check["origin"] = f.origin;
    if (f.exempted) {
      check["exempted"] = true;
      check["exemption_reason"] = f.exemption_reason;
    }
    if (!details.is_null()) check["details"] = details;
    checks.push_back(std::move(check));
    if (f.outcome != Outcome::fail || f.action == Action::off) continue;
    auto item = violation_json(f);
    if (!details.is_null()) item["details"] = std::move(details);
    if (!f.exempted) {
      violations.push_back(std::move(item));
      continue;
    }
    item["reason"] = f.exemption_reason;
    exempted.push_back(std::move(item));
  }
  return {{"verdict", decision_text(decision)},
          {"digest", digest},
          {"reference", reference},
          {"image", image},
          {"policy_version", policy_version},
          {"violations", violations},
          {"exempted", exempted},
          {"notes", notes},
          {"checks", checks}};
}

std::optional<Verdict> Verdict::from_json(const nlohmann::json& json) {
  if (!json.is_object()) return std::nullopt;
  Verdict v;
  std::string decision;
  if (!read_string(json, "verdict", decision)) return std::nullopt;
  auto d = decision_from(decision);
  if (!d) return std::nullopt;
  v.decision = *d;
  if (!read_string(json, "digest", v.digest) || !read_string(json, "reference", v.reference) ||
      !read_string(json, "image", v.image) || !read_string(json, "policy_version", v.policy_version)) {
    return std::nullopt;
  }
  auto notes = json.find("notes");
  if (notes != json.end()) {
    if (!notes->is_array()) return std::nullopt;
    for (const auto& note : *notes) {
      if (!note.is_string()) return std::nullopt;
      v.notes.push_back(note.get<std::string>());
    }
  }
  auto checks = json.find("checks");
  if (checks == json.end() || !checks->is_array()) return std::nullopt;
  for (const auto& item : *checks) {
    if (!item.is_object()) return std::nullopt;
    Finding f;
    std::string result, action;
    if (!read_string(item, "check", f.check) || !read_string(item, "result", result) ||
        !read_string(item, "action", action) || !read_string(item, "message", f.message) ||
        !read_string(item, "remediation", f.remediation, false) || !read_string(item, "evidence", f.evidence, false) ||
        !read_string(item, "origin", f.origin, false) ||
        !read_string(item, "exemption_reason", f.exemption_reason, false)) {
      return std::nullopt;
    }
    auto o = outcome_from(result);
    auto a = action_from(action);
    if (!o || !a) return std::nullopt;
    f.outcome = *o;
    f.action = *a;
    auto exempted = item.find("exempted");
    if (exempted != item.end()) {
      if (!exempted->is_boolean()) return std::nullopt;
      f.exempted = exempted->get<bool>();
    }
    if (auto details = item.find("details"); details != item.end()) f.details = *details;
    v.findings.push_back(std::move(f));
  }
  return v;
}

std::string Verdict::denied_message() const {
  std::string ids;
  const Finding* first = nullptr;
  for (const Finding* f : violations()) {
    if (f->action != Action::block) continue;
    ids += (ids.empty() ? "" : ", ") + f->check;
    if (!first) first = f;
  }
  std::string out = image + "@" + digest + ": blocked by policy";
  if (!first) return out;
  return out + ": " + ids + " (" + first->message + ")";
}

std::vector<std::string> Verdict::warning_headers() const {
  std::vector<std::string> all;
  for (const Finding* f : violations()) {
    all.push_back(warning_value(quoted_text(f->check + ": " + f->message, warning_message_cap)));
  }
  std::size_t total = 0;
  for (const auto& w : all) total += w.size();
  if (total <= warning_budget) return all;
  // Keep as many as fit together with the "and N more" line that replaces the rest.
  std::vector<std::string> kept;
  std::size_t used = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string more = warning_value("and " + std::to_string(all.size() - i - 1) + " more");
    if (used + all[i].size() + more.size() > warning_budget) break;
    kept.push_back(all[i]);
    used += all[i].size();
  }
  kept.push_back(warning_value("and " + std::to_string(all.size() - kept.size()) + " more"));
  return kept;
}

}  // namespace ocigate::policy
