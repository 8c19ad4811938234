// One function per check and the table that lists them. Each returns pass, fail or unknown
// ("the image lacks the data"), with a message, a one-line remediation and redacted evidence.

#include "ocigate/policy/checks.hpp"

#include "ocigate/oci/digest.hpp"
#include "filesystem_checks.hpp"
#include "ocigate/common/glob.hpp"
#include "ocigate/common/time.hpp"
#include "text.hpp"

namespace ocigate::policy {

namespace {

CheckResult pass(std::string message) {
  CheckResult r;
  r.outcome = Outcome::pass;
  r.message = std::move(message);
  return r;
}

CheckResult unknown(std::string message) {
  CheckResult r;
  r.outcome = Outcome::unknown;
  r.message = std::move(message);
  return r;
}

CheckResult fail(std::string message, std::string remediation, std::string evidence, std::string origin = "") {
  CheckResult r;
  r.outcome = Outcome::fail;
  r.message = std::move(message);
  r.remediation = std::move(remediation);
  r.evidence = std::move(evidence);
  r.origin = std::move(origin);
  return r;
}

// config.config (the runtime part of the image config), or nullptr.
const nlohmann::json* runtime_config(const ImageFacts& facts) {
  if (!facts.config || !facts.config->is_object()) return nullptr;
  auto it = facts.config->find("config");
  if (it == facts.config->end() || !it->is_object()) return nullptr;
  return &*it;
}

std::string string_field(const nlohmann::json* object, const char* key) {
  if (!object) return {};
  auto it = object->find(key);
  return it != object->end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string history_where(const HistoryEntry& entry) {
  return "history[" + std::to_string(entry.index) + "]" + (entry.base ? " (base image)" : "");
}

// "image" if any offending entry is the image's own, else "base".
std::string origin_of(const std::vector<const HistoryEntry*>& offending) {
  for (const auto* entry : offending) {
    if (!entry->base) return "image";
  }
  return offending.empty() ? "" : "base";
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : std::string(separator)) + item;
  return out;
}

// Evidence stays readable (and the 403 body small) however many places an image repeats a sin.
std::string join_evidence(const std::vector<std::string>& items) {
  constexpr std::size_t shown = 5;
  if (items.size() <= shown) return join(items, "; ");
  std::vector<std::string> head(items.begin(), items.begin() + shown);
  return join(head, "; ") + "; and " + std::to_string(items.size() - shown) + " more";
}

std::string redact_token(const SecretMatch& match) {
  std::string_view token = match.token;
  return match.kind + " " + std::string(token.substr(0, std::min<std::size_t>(4, token.size() / 2))) + "\u2026";
}

// "A=1 B=\"two words\"" or the legacy "A one value" of an ENV instruction.
std::vector<std::pair<std::string, std::string>> env_assignments(std::string_view body) {
  std::vector<std::pair<std::string, std::string>> out;
  body = text::trim(body);
  auto first_space = body.find_first_of(" \t");
  auto first_eq = body.find('=');
  if (first_eq == std::string_view::npos || (first_space != std::string_view::npos && first_space < first_eq)) {
    if (first_space != std::string_view::npos) {
      out.emplace_back(std::string(body.substr(0, first_space)), std::string(text::trim(body.substr(first_space))));
    }
    return out;
  }
  std::size_t i = 0;
  while (i < body.size()) {
    while (i < body.size() && text::is_space(body[i])) ++i;
    std::size_t eq = body.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string name(body.substr(i, eq - i));
    std::string value;
    i = eq + 1;
    char quote = i < body.size() && (body[i] == '"' || body[i] == '\'') ? body[i] : 0;
    if (quote) ++i;
    while (i < body.size() && (quote ? body[i] != quote : !text::is_space(body[i]))) {
      if (body[i] == '\\' && i + 1 < body.size()) ++i;
      value += body[i++];
    }
    if (quote && i < body.size()) ++i;
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

bool identifier_char(char c) { return text::is_alnum(c) || c == '_'; }

// Literal `NAME=value` words of a shell command: `export TOKEN=abc`, `TOKEN=abc make`,
// `echo "PASSWORD=x" > .env`, `--password=abc`. Values that expand something (`$X`, `$(cat f)`)
// are references, not secrets; so are flag-like values (true, 0, none, ...). Autoconf-style
// options (`--with-auth=pam`, `--enable-auth=yes`) name features, not credentials.
std::vector<std::pair<std::string, std::string>> command_assignments(std::string_view command) {
  std::vector<std::pair<std::string, std::string>> out;
  auto quote = [](char c) { return c == '"' || c == '\'' || c == '`'; };
  for (std::string_view word : text::words(command)) {
    while (!word.empty() && quote(word.front())) word.remove_prefix(1);
    bool option = false;
    while (!word.empty() && word.front() == '-') {
      word.remove_prefix(1);
      option = true;
    }
    auto eq = word.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    std::string_view name = word.substr(0, eq);
    bool valid = !text::is_digit(name.front());
    for (char c : name) valid = valid && (identifier_char(c) || (option && c == '-'));
    if (!valid) continue;
    if (option) {
      std::string lowered(name);
      for (auto& c : lowered) c = text::is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c;
      if (text::starts_with(lowered, "with") || text::starts_with(lowered, "enable") ||
          text::starts_with(lowered, "disable")) {
        continue;
      }
    }
    std::string_view value = word.substr(eq + 1);
    while (!value.empty() && quote(value.front())) value.remove_prefix(1);
    while (!value.empty() && (quote(value.back()) || value.back() == ';' || value.back() == '&' ||
                              value.back() == '|' || value.back() == ')')) {
      value.remove_suffix(1);
    }
    if (value.empty() || value.front() == '$' || value.find("$(") != std::string_view::npos ||
        value.find("${") != std::string_view::npos) {
      continue;
    }
    std::string lowered(value);
    for (auto& c : lowered) c = text::is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c;
    bool flag_like = false;
    for (std::string_view v : {"true", "false", "yes", "no", "none", "null", "0", "1", "on", "off"}) {
      flag_like = flag_like || lowered == v;
    }
    if (!flag_like) out.emplace_back(std::string(name), std::string(value));
  }
  return out;
}

bool all_zero_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c != '0') return false;
  }
  return true;
}

}  // namespace

CheckResult check_non_root_user(const CheckInput& in) {
  if (!in.facts.config || !in.facts.config->is_object()) return unknown("the image config is unavailable");
  if (const nlohmann::json* runtime = runtime_config(in.facts)) {
    auto field = runtime->find("User");
    if (field != runtime->end() && !field->is_string() && !field->is_null()) {
      return unknown("config.User is not a string");
    }
  }
  std::string user = string_field(runtime_config(in.facts), "User");
  std::string_view name = user;
  name = name.substr(0, name.find(':'));
  name = text::trim(name);
  if (name.empty() || name == "root" || all_zero_digits(name)) {
    std::string shown = user.empty() ? "no USER (defaults to root)" : "USER " + user;
    return fail("runs as root (" + shown + ")", "add `USER 10001` (a non-root uid) at the end of the Dockerfile",
                "config.User=\"" + user + "\"");
  }
  // A name is only as good as the image's /etc/passwd says (`toor:x:0:0` is root).
  if (auto root = fs::name_maps_to_root(in, std::string(name))) {
    return fail("runs as root (" + *root + ")", "give the user a non-zero uid, or use `USER 10001`",
                "config.User=\"" + user + "\"; " + *root);
  }
  return pass("runs as " + user);
}

CheckResult check_healthcheck(const CheckInput& in) {
  if (!in.facts.config || !in.facts.config->is_object()) return unknown("the image config is unavailable");
  const nlohmann::json* runtime = runtime_config(in.facts);
  const std::string remediation = "add `HEALTHCHECK CMD <probe>` to the Dockerfile";
  if (!runtime) return fail("declares no HEALTHCHECK", remediation, "config.Healthcheck absent");
  auto it = runtime->find("Healthcheck");
  if (it == runtime->end() || it->is_null()) {
    return fail("declares no HEALTHCHECK", remediation, "config.Healthcheck absent");
  }
  if (!it->is_object()) return unknown("config.Healthcheck is not an object");
  auto test = it->find("Test");
  if (test != it->end() && !test->is_array() && !test->is_null()) return unknown("config.Healthcheck.Test is not a list");
  if (test == it->end() || test->is_null() || test->empty()) {
    return fail("HEALTHCHECK has no test", remediation, "config.Healthcheck.Test empty");
  }
  if (!(*test)[0].is_string()) return unknown("config.Healthcheck.Test is not a list of strings");
  if ((*test)[0] == "NONE") return fail("HEALTHCHECK is disabled (NONE)", remediation, "config.Healthcheck.Test=[\"NONE\"]");
  return pass("declares a HEALTHCHECK");
}

CheckResult check_no_secrets(const CheckInput& in) {
  const std::vector<std::string> extra = text::string_list(in.params, "extra_names");
  auto secret_name = [&](std::string_view name) { return credential_name(name, extra); };
  std::vector<std::string> evidence;
  std::vector<std::string> unreadable;  // fields of the wrong type: "unknown", never a silent pass
  std::vector<const HistoryEntry*> offending;
  bool own = false;  // found in Env/Labels: origin cannot be told
  const nlohmann::json* runtime = runtime_config(in.facts);
  if (runtime) {
    auto env = runtime->find("Env");
    if (env != runtime->end() && !env->is_array() && !env->is_null()) unreadable.push_back("config.Env is not a list");
    if (env != runtime->end() && env->is_array()) {
      for (const auto& item : *env) {
        if (!item.is_string()) {
          unreadable.push_back("config.Env has a non-string entry");
          continue;
        }
        std::string_view pair = item.get_ref<const std::string&>();
        auto eq = pair.find('=');
        if (eq == std::string_view::npos) continue;
        std::string_view name = pair.substr(0, eq), value = pair.substr(eq + 1);
        if (!value.empty() && secret_name(name)) {
          evidence.push_back("Env " + redact(name, value));
          own = true;
        } else if (auto match = find_credential(value)) {
          evidence.push_back("Env " + std::string(name) + ": " + redact_token(*match));
          own = true;
        }
      }
    }
    auto labels = runtime->find("Labels");
    if (labels != runtime->end() && !labels->is_object() && !labels->is_null()) {
      unreadable.push_back("config.Labels is not an object");
    }
    if (labels != runtime->end() && labels->is_object()) {
      for (const auto& [key, value] : labels->items()) {
        if (!value.is_string()) continue;
        if (auto match = find_credential(value.get_ref<const std::string&>())) {
          evidence.push_back("Label " + key + ": " + redact_token(*match));
          own = true;
        }
      }
    }
  }
  if (in.history) {
    for (const auto& entry : *in.history) {
      bool hit = false;
      auto flag = [&](const std::string& what, std::string_view name, std::string_view value) {
        evidence.push_back(history_where(entry) + ": " + what + " " + redact(name, value));
        hit = true;
      };
      // An ENV that was later overwritten or emptied is gone from Env but not from the history;
      // an ARG default (classic builder) is recorded the same way.
      if (entry.instruction == "ENV" || entry.instruction == "ARG") {
        for (const auto& [name, value] : env_assignments(entry.body)) {
          if (!value.empty() && secret_name(name)) flag(entry.instruction, name, value);
        }
      }
      for (const auto& [name, value] : entry.build_args) {
        if (!value.empty() && secret_name(name)) flag("build arg", name, value);
      }
      if (entry.instruction == "RUN") {
        for (const auto& [name, value] : command_assignments(entry.body)) {
          if (secret_name(name)) flag("RUN", name, value);
        }
      }
      if (auto match = find_credential(entry.created_by)) {
        evidence.push_back(history_where(entry) + ": " + redact_token(*match));
        hit = true;
      }
      if (hit) offending.push_back(&entry);
    }
  }
  // Secret files count in every layer: a file deleted later still ships in the earlier blob.
  for (auto& item : fs::secret_file_evidence(in)) {
    evidence.push_back(std::move(item));
    own = true;
  }
  if (!evidence.empty()) {
    // Env and Labels cannot tell the base's settings from the image's: no origin unless the
    // history names the image's own step.
    std::string origin = origin_of(offending);
    if (own && origin != "image") origin.clear();
    return fail("credentials are baked into the image (" + std::to_string(evidence.size()) + " found)",
                "pass secrets at run time or with `RUN --mount=type=secret`, never ENV/ARG/LABEL; rotate the exposed ones",
                join_evidence(evidence), origin);
  }
  if (!in.facts.config) return unknown("the image config is unavailable");
  if (!unreadable.empty()) return unknown("could not be checked: " + unreadable.front());
  if (!in.history) return unknown("the image has no history: build commands and build args could not be checked (Env and Labels are clean)");
  return pass("no credentials in Env, Labels or build history");
}

CheckResult check_copy_not_add(const CheckInput& in) {
  if (!in.history) return unknown("the image has no history");
  std::vector<std::string> evidence;
  std::vector<std::string> notes;
  for (const auto& entry : *in.history) {
    if (entry.base || entry.instruction != "ADD") continue;
    // `ADD --checksum=sha256:... <url>` verifies what it downloads: Docker's recommended way to
    // fetch a remote file, so only a note. Git sources have no checksum and stay violations.
    bool checksum = entry.body.find("--checksum=") != std::string::npos;
    for (const auto& source : add_sources(entry.body)) {
      std::string shown = text::shorten(redact_credentials(source), 100);
      bool git = text::starts_with(source, "git@") || text::starts_with(source, "git://") ||
                 text::ends_with(source, ".git") || source.find(".git#") != std::string::npos;
      bool remote = git || text::starts_with(source, "http://") || text::starts_with(source, "https://");
      if (remote && (git || !checksum)) {
        evidence.push_back(history_where(entry) + ": ADD " + shown);
      } else if (remote) {
        notes.push_back("copy-not-add: " + history_where(entry) + " ADDs '" + shown + "' verified by --checksum");
      } else {
        notes.push_back("copy-not-add: " + history_where(entry) + " ADDs the local source '" +
                        text::shorten(source, 60) + "': prefer COPY unless it extracts an archive");
      }
    }
  }
  CheckResult result = evidence.empty()
                           ? pass("no unverified ADD of a remote source")
                           : fail("ADDs a remote source without a checksum (" + std::to_string(evidence.size()) + ")",
                                  "use `ADD --checksum=sha256:<hex> <url> <dest>` (or `RUN curl -fsSLO <url> && sha256sum -c`) "
                                  "and COPY for local files; clone git sources in a build stage at a pinned commit",
                                  join_evidence(evidence), "image");
  result.notes = std::move(notes);
  return result;
}

CheckResult check_no_update_alone(const CheckInput& in) {
  if (!in.history) return unknown("the image has no history");
  std::vector<std::string> evidence;
  std::vector<const HistoryEntry*> offending;
  for (const auto& entry : *in.history) {
    if (entry.instruction != "RUN" || !lone_index_update(entry.body)) continue;
    evidence.push_back(history_where(entry) + ": RUN " + text::shorten(redact_credentials(entry.body)));
    offending.push_back(&entry);
  }
  if (evidence.empty()) return pass("every package-index update is followed by an install in the same RUN");
  return fail("a RUN updates the package index without installing in the same RUN",
              "combine them: `RUN apt-get update && apt-get install -y <pkgs> && rm -rf /var/lib/apt/lists/*`",
              join_evidence(evidence), origin_of(offending));
}

CheckResult check_pinned_base(const CheckInput& in) {
  auto pinned = [](const std::string& key, const std::string& value) {
    if (key == "org.opencontainers.image.base.digest") return oci::Digest::parse(value).has_value();
    if (key == "org.opencontainers.image.base.name") return value.find("@sha256:") != std::string::npos;
    return false;
  };
  for (const auto& [key, value] : in.facts.manifest_annotations) {
    if (pinned(key, value)) return pass("declares its base by digest (manifest annotation " + key + ")");
  }
  const nlohmann::json* runtime = runtime_config(in.facts);
  if (runtime) {
    auto labels = runtime->find("Labels");
    if (labels != runtime->end() && labels->is_object()) {
      for (const auto& [key, value] : labels->items()) {
        if (value.is_string() && pinned(key, value.get<std::string>())) {
          return pass("declares its base by digest (label " + key + ")");
        }
      }
    }
  }
  if (!in.facts.config) return unknown("the image config (labels) is unavailable and no manifest annotation pins the base");
  std::string seen;
  auto name = in.facts.manifest_annotations.find("org.opencontainers.image.base.name");
  if (name != in.facts.manifest_annotations.end()) seen = "base.name=" + name->second;
  return fail("does not declare its base image by digest",
              "use `FROM <image>@sha256:<digest>` and build with base annotations (BuildKit sets "
              "org.opencontainers.image.base.digest)",
              seen.empty() ? "no org.opencontainers.image.base.digest or pinned base.name" : seen);
}

CheckResult check_pinned_reference(const CheckInput& in) {
  const std::string& ref = in.facts.reference;
  std::string pin = "pin it: `" + in.facts.upstream + "/" + in.facts.repository + "@" +
                    (in.facts.digest.empty() ? "sha256:<digest>" : in.facts.digest) + "`";
  if (ref.find(':') != std::string::npos) return pass("pulled by digest");
  if (ref.empty()) return fail("pulled without a tag or digest", pin, "reference empty");
  if (ref == "latest") return fail("pulled by the tag 'latest'", pin + " or a versioned tag", "reference=latest");
  auto require = in.params.find("require_digest");
  if (require != in.params.end() && require->is_boolean() && require->get<bool>()) {
    return fail("pulled by the tag '" + ref + "' where digests are required", pin, "reference=" + ref);
  }
  return pass("pulled by the tag '" + ref + "'");
}

CheckResult check_trusted_source(const CheckInput& in) {
  std::string image = in.facts.upstream + "/" + in.facts.repository;
  if (in.policy.trusted_sources.empty()) {
    CheckResult r = pass("no trusted_sources configured");
    r.notes.push_back("trusted-source: no trusted_sources configured");
    return r;
  }
  for (const auto& glob : in.policy.trusted_sources) {
    if (glob_match(glob, image)) return pass("matches trusted source " + glob);
  }
  return fail(image + " is not a trusted source", "use an image from a trusted source (" + join(in.policy.trusted_sources, ", ") + ")",
              "image=" + image);
}

CheckResult check_image_age(const CheckInput& in) {
  if (!in.facts.config || !in.facts.config->is_object()) return unknown("the image config is unavailable");
  std::string created = string_field(&*in.facts.config, "created");
  if (created.empty()) return unknown("the image config has no created time");
  // Reproducible builds (ko, nix, distroless, SOURCE_DATE_EPOCH=0) stamp the epoch or Go's zero
  // time (year 1): that says nothing about the image's age. Checked on the text because year 1 is
  // out of the clock's range.
  if (created.size() >= 4 && created.compare(0, 4, "1980") < 0 && text::is_digit(created[0])) {
    return unknown("created is a placeholder date (" + text::shorten(created, 40) + "), typical of reproducible builds");
  }
  auto when = parse_rfc3339(created);
  if (!when) return unknown("the created time '" + text::shorten(created, 40) + "' is not RFC 3339");
  long long max_days = 90;
  auto it = in.params.find("max_days");
  if (it != in.params.end() && it->is_number_integer()) max_days = it->get<long long>();
  auto age = std::chrono::duration_cast<std::chrono::seconds>(in.facts.now - *when).count();
  long long days = age / 86400;
  if (age > max_days * 86400) {
    return fail("built " + std::to_string(days) + " days ago, more than max_days " + std::to_string(max_days),
                "rebuild the image on an updated base (and rebuild on a schedule)", "created=" + created);
  }
  return pass("built " + std::to_string(days < 0 ? 0 : days) + " days ago");
}

// The verification itself happens in the signature module, which has the keys and the fetched
// signatures; this check only turns its outcome into a finding.
CheckResult check_signature(const CheckInput& in) {
  if (!in.facts.signature) return unknown("not evaluated: the image's signatures were not looked up");
  const SignatureFacts& s = *in.facts.signature;
  CheckResult r;
  if (!s.required || s.satisfied) {
    r = pass(s.message.empty() ? std::string(s.required ? "signed" : "no signature required") : s.message);
  } else {
    // Fails closed: a signature lookup the upstream made fail (incomplete) is no signature, or
    // breaking the lookup would let an unsigned image through.
    return fail(s.message.empty() ? std::string("no valid signature") : s.message, s.remediation, s.evidence);
  }
  r.evidence = s.evidence;
  return r;
}
CheckResult check_vulnerabilities(const CheckInput&) { return unknown("not evaluated: vulnerability scanning is not built yet"); }

const std::vector<CheckSpec>& registry() {
  using Kind = ParamSpec::Kind;
  static const std::vector<CheckSpec> specs = {
      {"non-root-user", check_non_root_user, {}},
      {"healthcheck", check_healthcheck, {}},
      {"no-secrets", check_no_secrets, {{"extra_names", Kind::name_list, nlohmann::json::array()}}},
      {"copy-not-add", check_copy_not_add, {}},
      {"no-update-alone", check_no_update_alone, {}},
      {"pinned-base", check_pinned_base, {}},
      {"pinned-reference", check_pinned_reference, {{"require_digest", Kind::boolean, false}}},
      {"trusted-source", check_trusted_source, {}},
      {"image-age", check_image_age, {{"max_days", Kind::positive_int, 90}}},
      {"signature", check_signature, {}},
      {"no-setuid", check_no_setuid, {{"allow", Kind::path_list, nlohmann::json::array()}}},
      {"no-package-manager", check_no_package_manager, {{"max_packages", Kind::positive_int, nullptr}}},
      {"vulnerabilities", check_vulnerabilities, {}},
  };
  return specs;
}

const CheckSpec* find_check(std::string_view id) {
  for (const auto& spec : registry()) {
    if (spec.id == id) return &spec;
  }
  return nullptr;
}

}  // namespace ocigate::policy
