#include "ocigate/policy/policy.hpp"

#include <charconv>
#include <set>

#include <yaml-cpp/yaml.h>

#include "ocigate/oci/digest.hpp"
#include "ocigate/common/time.hpp"
#include "ocigate/policy/checks.hpp"
#include "ocigate/common/glob.hpp"

namespace ocigate::policy {

namespace {

// Thrown only while parsing (configuration load, never the data path); parse_policy turns it
// into a Result.
struct Refusal {
  std::string message;
};

bool valid_date(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  int year = std::stoi(std::string(text.substr(0, 4)));
  int month = std::stoi(std::string(text.substr(5, 2)));
  int day = std::stoi(std::string(text.substr(8, 2)));
  if (month < 1 || month > 12 || day < 1) return false;
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return day <= days[month - 1] + (month == 2 && leap ? 1 : 0);
}

// "20" -> 20s: the policy also takes a bare number of seconds for prefetch_timeout.
std::optional<std::chrono::seconds> whole_seconds(std::string_view text) {
  long long n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || n < 0 || n > 86400) return std::nullopt;
  return std::chrono::seconds(n);
}

class Parser {
 public:
  explicit Parser(std::string_view source) : source_(source) {}

  [[noreturn]] void refuse(const YAML::Node& node, const std::string& key, const std::string& why) const {
    std::string where(source_);
    if (node.IsDefined() && node.Mark().line >= 0) where += ":" + std::to_string(node.Mark().line + 1);
    throw Refusal{where + ": " + key + ": " + why};
  }

  Policy parse(const YAML::Node& root) {
    Policy policy = default_policy();
    if (!root.IsMap()) refuse(root, "policy", "must be a mapping");
    only_keys(root, "policy",
              {"mode", "checks", "rules", "exemptions", "trusted_sources", "blob_access", "layer_scan",
               "prefetch_timeout", "metrics_repositories", "trust"});
    if (auto n = root["mode"]) policy.mode = parse_mode(n);
    if (auto n = root["checks"]) {
      if (!n.IsMap()) refuse(n, "policy.checks", "must be a mapping of check id to block|warn|off");
      no_duplicates(n, "policy.checks");
      for (auto it = n.begin(); it != n.end(); ++it) {
        std::string id = check_id(it->first, "policy.checks");
        policy.checks[id] = parse_setting(it->second, "policy.checks." + id, id, policy.checks[id]);
      }
    }
    if (auto n = root["rules"]) parse_rules(n, policy);
    if (auto n = root["exemptions"]) parse_exemptions(n, policy);
    if (auto n = root["trusted_sources"]) {
      if (!n.IsSequence()) refuse(n, "policy.trusted_sources", "must be a list of repository globs");
      for (std::size_t i = 0; i < n.size(); ++i) {
        policy.trusted_sources.push_back(glob(n[i], "policy.trusted_sources[" + std::to_string(i) + "]"));
      }
    }
    if (auto n = root["metrics_repositories"]) {
      if (!n.IsSequence()) refuse(n, "policy.metrics_repositories", "must be a list of repository globs");
      for (std::size_t i = 0; i < n.size(); ++i) {
        policy.metrics_repositories.push_back(
            glob(n[i], "policy.metrics_repositories[" + std::to_string(i) + "]"));
      }
    }
    if (auto n = root["trust"]) parse_trust(n, policy);
    if (auto n = root["blob_access"]) {
      std::string v = scalar(n, "policy.blob_access");
      if (v == "referenced") policy.blob_access = BlobAccess::referenced;
      else if (v == "any") policy.blob_access = BlobAccess::any;
      else refuse(n, "policy.blob_access", "must be referenced or any, got '" + v + "'");
    }
    if (auto n = root["layer_scan"]) {
      std::string v = scalar(n, "policy.layer_scan");
      if (v == "prefetch") policy.layer_scan = LayerScan::prefetch;
      else if (v == "stream") policy.layer_scan = LayerScan::stream;
      else if (v == "off") policy.layer_scan = LayerScan::off;
      else refuse(n, "policy.layer_scan", "must be prefetch, stream or off, got '" + v + "'");
    }
    if (auto n = root["prefetch_timeout"]) {
      std::string v = scalar(n, "policy.prefetch_timeout");
      auto seconds = whole_seconds(v);
      if (!seconds) seconds = parse_duration(v);
      if (!seconds) refuse(n, "policy.prefetch_timeout", "must be a duration like 20s or 2m, got '" + v + "'");
      if (seconds->count() <= 0) refuse(n, "policy.prefetch_timeout", "must be longer than 0s");
      policy.prefetch_timeout = *seconds;
    }
    stamp_version(policy);
    return policy;
  }

 private:
  // yaml-cpp keeps duplicate keys and lookups see only the first: a second `mode:` or a check
  // listed twice would be silently ignored, so refuse it.
  void no_duplicates(const YAML::Node& map, const std::string& path) const {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      if (!seen.insert(it->first.Scalar()).second) refuse(it->first, path + "." + it->first.Scalar(), "duplicate key");
    }
  }

  void only_keys(const YAML::Node& map, const std::string& path, std::initializer_list<std::string_view> known) const {
    no_duplicates(map, path);
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      bool found = false;
      for (auto k : known) found = found || k == key;
      if (found) continue;
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      refuse(it->first, path + "." + key, "unknown key (known: " + list + ")");
    }
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) refuse(node, key, "must be a single value");
    return node.Scalar();
  }

  Mode parse_mode(const YAML::Node& node) const {
    std::string v = scalar(node, "policy.mode");
    if (v == "enforce") return Mode::enforce;
    if (v == "audit") return Mode::audit;
    refuse(node, "policy.mode", "must be enforce or audit, got '" + v + "'");
  }

  Action parse_action(const YAML::Node& node, const std::string& key) const {
    std::string v = scalar(node, key);
    if (v == "block") return Action::block;
    if (v == "warn") return Action::warn;
    if (v == "off") return Action::off;
    refuse(node, key, "must be block, warn or off, got '" + v + "'");
  }

  std::string check_id(const YAML::Node& node, const std::string& path) const {
    std::string id = scalar(node, path);
    if (find_check(id)) return id;
    std::string list;
    for (const auto& known : check_ids()) list += (list.empty() ? "" : ", ") + known;
    refuse(node, path + "." + id, "unknown check (known: " + list + ")");
  }

  std::string glob(const YAML::Node& node, const std::string& key) const {
    std::string v = scalar(node, key);
    if (auto why = glob_error(v)) refuse(node, key, "malformed glob '" + v + "': " + *why);
    return v;
  }

  // `id: block|warn|off` or `id: {action: ..., <params>}`; starts from `base` so a rule or a
  // mapping without `action` keeps the inherited action and parameters.
  CheckSetting parse_setting(const YAML::Node& node, const std::string& path, const std::string& id,
                             CheckSetting base) const {
    if (node.IsScalar()) {
      base.action = parse_action(node, path);
      return base;
    }
    if (!node.IsMap()) refuse(node, path, "must be block, warn, off or a mapping with action and parameters");
    no_duplicates(node, path);
    const CheckSpec* spec = find_check(id);
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string key = scalar(it->first, path);
      if (key == "action") {
        base.action = parse_action(it->second, path + ".action");
        continue;
      }
      const ParamSpec* param = nullptr;
      for (const auto& p : spec->params) {
        if (p.name == key) param = &p;
      }
      if (!param) {
        std::string list = "action";
        for (const auto& p : spec->params) list += ", " + std::string(p.name);
        refuse(it->first, path + "." + key, "unknown key (known: " + list + ")");
      }
      base.params[key] = param_value(*param, it->second, path + "." + key);
    }
    return base;
  }

  nlohmann::json param_value(const ParamSpec& param, const YAML::Node& node, const std::string& key) const {
    if (param.kind == ParamSpec::Kind::name_list) return name_list(node, key);
    if (param.kind == ParamSpec::Kind::path_list) return path_list(node, key);
    std::string v = scalar(node, key);
    if (param.kind == ParamSpec::Kind::boolean) {
      if (v == "true") return true;
      if (v == "false") return false;
      refuse(node, key, "must be true or false, got '" + v + "'");
    }
    long long n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc{} || end != v.data() + v.size() || n <= 0 || n > 100000) {
      refuse(node, key, "must be a whole number from 1 to 100000, got '" + v + "'");
    }
    return n;
  }

  // Absolute paths inside the image, optionally with glob wildcards ("/usr/bin/passwd",
  // "/opt/app/**"): printable, no whitespace, so a typo cannot silently allow nothing.
  nlohmann::json path_list(const YAML::Node& node, const std::string& key) const {
    if (!node.IsSequence()) refuse(node, key, "must be a list of absolute paths");
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t i = 0; i < node.size(); ++i) {
      std::string item_key = key + "[" + std::to_string(i) + "]";
      std::string v = scalar(node[i], item_key);
      bool valid = v.size() >= 2 && v.size() <= 4096 && v.front() == '/' && v.find("***") == std::string::npos;
      for (char c : v) valid = valid && static_cast<unsigned char>(c) > ' ' && c != 0x7f;
      if (!valid) refuse(node[i], item_key, "must be an absolute path such as /usr/bin/passwd, got '" + v + "'");
      out.push_back(v);
    }
    return out;
  }

  nlohmann::json name_list(const YAML::Node& node, const std::string& key) const {
    if (!node.IsSequence()) refuse(node, key, "must be a list of variable names");
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t i = 0; i < node.size(); ++i) {
      std::string item_key = key + "[" + std::to_string(i) + "]";
      std::string v = scalar(node[i], item_key);
      bool letter = false, valid = !v.empty() && v.size() <= 128;
      for (char c : v) {
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        letter = letter || alpha;
        valid = valid && (alpha || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.');
      }
      if (!valid || !letter) {
        refuse(node[i], item_key, "must be a variable name (letters, digits, '_', '-', '.'), got '" + v + "'");
      }
      out.push_back(v);
    }
    return out;
  }

  void parse_rules(const YAML::Node& node, Policy& policy) const {
    if (!node.IsSequence()) refuse(node, "policy.rules", "must be a list of {match, checks}");
    for (std::size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      std::string path = "policy.rules[" + std::to_string(i) + "]";
      if (!item.IsMap()) refuse(item, path, "must be a mapping with match and checks");
      only_keys(item, path, {"match", "checks"});
      if (!item["match"]) refuse(item, path + ".match", "is required");
      Rule rule;
      rule.match = glob(item["match"], path + ".match");
      if (!item["checks"]) refuse(item, path + ".checks", "is required");
      const YAML::Node checks = item["checks"];
      if (!checks.IsMap()) refuse(checks, path + ".checks", "must be a mapping of check id to block|warn|off");
      no_duplicates(checks, path + ".checks");
      for (auto it = checks.begin(); it != checks.end(); ++it) {
        std::string id = check_id(it->first, path + ".checks");
        rule.checks[id] = parse_setting(it->second, path + ".checks." + id, id, policy.checks.at(id));
      }
      policy.rules.push_back(std::move(rule));
    }
  }

  void parse_exemptions(const YAML::Node& node, Policy& policy) const {
    if (!node.IsSequence()) refuse(node, "policy.exemptions", "must be a list of {match, checks, reason, expires}");
    for (std::size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      std::string path = "policy.exemptions[" + std::to_string(i) + "]";
      if (!item.IsMap()) refuse(item, path, "must be a mapping with match, checks, reason and optional expires");
      only_keys(item, path, {"match", "checks", "reason", "expires"});
      Exemption exemption;
      if (!item["match"]) refuse(item, path + ".match", "is required (a digest or a repository glob)");
      exemption.match = exemption_match(item["match"], path + ".match");
      if (!item["checks"]) refuse(item, path + ".checks", "is required (the check ids it exempts)");
      const YAML::Node checks = item["checks"];
      if (!checks.IsSequence() || checks.size() == 0) refuse(checks, path + ".checks", "must be a non-empty list of check ids");
      for (std::size_t c = 0; c < checks.size(); ++c) exemption.checks.push_back(check_id(checks[c], path + ".checks"));
      if (!item["reason"]) refuse(item, path + ".reason", "is required: say why the risk is accepted");
      exemption.reason = scalar(item["reason"], path + ".reason");
      if (exemption.reason.find_first_not_of(" \t\r\n") == std::string::npos) {
        refuse(item["reason"], path + ".reason", "must not be empty: say why the risk is accepted");
      }
      if (auto expires = item["expires"]) {
        std::string v = scalar(expires, path + ".expires");
        if (!valid_date(v)) refuse(expires, path + ".expires", "must be a date YYYY-MM-DD, got '" + v + "'");
        exemption.expires = v;
      }
      policy.exemptions.push_back(std::move(exemption));
    }
  }

  std::string where(const YAML::Node& node, const std::string& key) const {
    std::string out(source_);
    if (node.IsDefined() && node.Mark().line >= 0) out += ":" + std::to_string(node.Mark().line + 1);
    return out + ": " + key;
  }

  TrustFile trust_file(const YAML::Node& node, const std::string& key) const {
    std::string v = scalar(node, key);
    if (v.find_first_not_of(" \t") == std::string::npos) refuse(node, key, "must be a file path");
    return TrustFile{v, where(node, key)};
  }

  // "x509.subject: CN=release,O=Acme" (attribute=value pairs, order-insensitive) or "*".
  std::string identity(const YAML::Node& node, const std::string& key) const {
    std::string v = scalar(node, key);
    if (v == "*") return v;
    static constexpr std::string_view prefix = "x509.subject:";
    if (v.rfind(prefix, 0) != 0) refuse(node, key, "must be \"x509.subject: CN=...,O=...\" or \"*\", got '" + v + "'");
    std::string dn = v.substr(prefix.size());
    if (dn.find('=') == std::string::npos) refuse(node, key, "names no subject attributes (e.g. CN=release,O=Acme)");
    return v;
  }

  void parse_trust(const YAML::Node& node, Policy& policy) const {
    if (!node.IsSequence()) refuse(node, "policy.trust", "must be a list of {match, cosign, notation}");
    for (std::size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      std::string path = "policy.trust[" + std::to_string(i) + "]";
      if (!item.IsMap()) refuse(item, path, "must be a mapping with match and cosign and/or notation");
      only_keys(item, path, {"match", "cosign", "notation"});
      TrustEntry entry;
      entry.where = where(item, path);
      if (!item["match"]) refuse(item, path + ".match", "is required (a repository glob)");
      entry.match = glob(item["match"], path + ".match");
      if (auto cosign = item["cosign"]) {
        std::string key = path + ".cosign";
        if (!cosign.IsMap()) refuse(cosign, key, "must be a mapping with keys");
        only_keys(cosign, key, {"keys"});
        const YAML::Node keys = cosign["keys"];
        if (!keys || !keys.IsSequence() || keys.size() == 0) {
          refuse(keys ? keys : cosign, key + ".keys", "must be a non-empty list of PEM public key files");
        }
        entry.cosign = true;
        for (std::size_t k = 0; k < keys.size(); ++k) {
          entry.cosign_keys.push_back(trust_file(keys[k], key + ".keys[" + std::to_string(k) + "]"));
        }
      }
      if (auto notation = item["notation"]) {
        std::string key = path + ".notation";
        if (!notation.IsMap()) refuse(notation, key, "must be a mapping with trust_store and identities");
        only_keys(notation, key, {"trust_store", "identities"});
        if (!notation["trust_store"]) refuse(notation, key + ".trust_store", "is required (a PEM file of CA certificates)");
        entry.notation = true;
        entry.notation_trust_store = trust_file(notation["trust_store"], key + ".trust_store");
        const YAML::Node ids = notation["identities"];
        if (!ids || !ids.IsSequence() || ids.size() == 0) {
          refuse(ids ? ids : notation, key + ".identities",
                 "must be a non-empty list like [\"x509.subject: CN=release,O=Acme\"] (or [\"*\"])");
        }
        for (std::size_t k = 0; k < ids.size(); ++k) {
          entry.notation_identities.push_back(identity(ids[k], key + ".identities[" + std::to_string(k) + "]"));
        }
      }
      if (!entry.cosign && !entry.notation) refuse(item, path, "needs cosign and/or notation: which signers satisfy it");
      policy.trust.push_back(std::move(entry));
    }
  }

  std::string exemption_match(const YAML::Node& node, const std::string& key) const {
    std::string v = scalar(node, key);
    if (v.rfind("sha256:", 0) == 0 || v.rfind("sha512:", 0) == 0) {
      if (!oci::Digest::parse(v)) refuse(node, key, "malformed digest '" + v + "'");
      return v;
    }
    return glob(node, key);
  }

  std::string_view source_;
};

}  // namespace

const char* action_text(Action action) {
  switch (action) {
    case Action::off: return "off";
    case Action::warn: return "warn";
    case Action::block: return "block";
  }
  return "block";
}

const char* mode_text(Mode mode) { return mode == Mode::enforce ? "enforce" : "audit"; }

const std::vector<std::string>& check_ids() {
  static const std::vector<std::string> ids = [] {
    std::vector<std::string> out;
    for (const auto& spec : registry()) out.emplace_back(spec.id);
    return out;
  }();
  return ids;
}

Policy default_policy() {
  Policy policy;
  for (const auto& spec : registry()) {
    CheckSetting setting;
    for (const auto& param : spec.params) setting.params[std::string(param.name)] = param.default_value;
    policy.checks.emplace(std::string(spec.id), std::move(setting));
  }
  stamp_version(policy);
  return policy;
}

namespace {

nlohmann::json trust_json(const std::vector<TrustEntry>& trust) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& entry : trust) {
    nlohmann::json item = {{"match", entry.match}};
    if (entry.cosign) {
      nlohmann::json keys = nlohmann::json::array();
      for (const auto& key : entry.cosign_keys) keys.push_back(key.path);
      item["cosign"] = {{"keys", keys}};
    }
    if (entry.notation) {
      item["notation"] = {{"trust_store", entry.notation_trust_store.path}, {"identities", entry.notation_identities}};
    }
    out.push_back(std::move(item));
  }
  return out;
}

nlohmann::json setting_json(const CheckSetting& setting) {
  return {{"action", action_text(setting.action)}, {"params", setting.params}};
}

}  // namespace

nlohmann::json canonical_json(const Policy& policy) {
  nlohmann::json checks = nlohmann::json::object();
  for (const auto& [id, setting] : policy.checks) checks[id] = setting_json(setting);
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& rule : policy.rules) {
    nlohmann::json rule_checks = nlohmann::json::object();
    for (const auto& [id, setting] : rule.checks) rule_checks[id] = setting_json(setting);
    rules.push_back({{"match", rule.match}, {"checks", rule_checks}});
  }
  nlohmann::json exemptions = nlohmann::json::array();
  for (const auto& e : policy.exemptions) {
    exemptions.push_back({{"match", e.match},
                          {"checks", e.checks},
                          {"reason", e.reason},
                          {"expires", e.expires ? nlohmann::json(*e.expires) : nlohmann::json(nullptr)}});
  }
  const char* blob_access = policy.blob_access == BlobAccess::any ? "any" : "referenced";
  const char* layer_scan = policy.layer_scan == LayerScan::prefetch ? "prefetch"
                           : policy.layer_scan == LayerScan::stream ? "stream"
                                                                    : "off";
  // nlohmann::json objects keep keys sorted, so the dump is canonical.
  return {{"mode", mode_text(policy.mode)},
          {"checks", checks},
          {"rules", rules},
          {"exemptions", exemptions},
          {"trusted_sources", policy.trusted_sources},
          {"blob_access", blob_access},
          {"layer_scan", layer_scan},
          {"prefetch_timeout", policy.prefetch_timeout.count()},
          {"trust", trust_json(policy.trust)}};
}

void stamp_version(Policy& policy) {
  // ensure_ascii plus replace: a reason with invalid UTF-8 still hashes instead of throwing.
  policy.version =
      oci::sha256_digest(canonical_json(policy).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace));
}

Result<Policy> parse_policy(const YAML::Node& node, std::string_view source) {
  if (!node.IsDefined() || node.IsNull()) return default_policy();
  try {
    return Parser(source).parse(node);
  } catch (const Refusal& refusal) {
    return Error{Errc::config_invalid, refusal.message};
  } catch (const std::exception& e) {
    return Error{Errc::config_invalid, std::string(source) + ": policy: " + e.what()};
  }
}

Result<Policy> parse_policy(const YAML::Node* node, std::string_view source) {
  return node ? parse_policy(*node, source) : default_policy();
}

}  // namespace ocigate::policy
