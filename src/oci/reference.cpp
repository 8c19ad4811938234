#include "ocigate/oci/reference.hpp"

#include <array>

namespace ocigate::oci {

namespace {

bool alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return alnum_lower(c) || (c >= 'A' && c <= 'Z'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool valid_component(std::string_view c) {
  if (c.empty() || !alnum_lower(c.front()) || !alnum_lower(c.back())) return false;
  for (std::size_t i = 0; i < c.size();) {
    if (alnum_lower(c[i])) {
      ++i;
      continue;
    }
    // A separator run: ".", "_", "__" or one or more "-".
    std::size_t j = i;
    if (c[i] == '.') {
      j = i + 1;
    } else if (c[i] == '_') {
      j = i + 1;
      if (j < c.size() && c[j] == '_') ++j;
    } else if (c[i] == '-') {
      while (j < c.size() && c[j] == '-') ++j;
    } else {
      return false;
    }
    if (j >= c.size() || !alnum_lower(c[j])) return false;
    i = j;
  }
  return true;
}

// Digest grammar of the image spec: algorithm ":" encoded, where
//   algorithm := [a-z0-9]+ ([+._-] [a-z0-9]+)*     encoded := [a-zA-Z0-9=_-]+
bool digest_algorithm(std::string_view a) {
  if (a.empty() || !alnum_lower(a.front()) || !alnum_lower(a.back())) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (alnum_lower(a[i])) continue;
    bool separator = a[i] == '+' || a[i] == '.' || a[i] == '_' || a[i] == '-';
    if (!separator || !alnum_lower(a[i + 1])) return false;  // a.back() is alnum, so i + 1 exists
  }
  return true;
}

bool digest_encoded(std::string_view e) {
  if (e.empty()) return false;
  for (char c : e) {
    if (!(alnum(c) || c == '=' || c == '_' || c == '-')) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Plain percent-decoding. '+' stays '+': the values we read (media types such as
// "application/vnd.dev.sigstore.bundle.v0.3+json", tags, hosts) never hold spaces, and clients
// that write a literal '+' mean a plus. Malformed escapes are kept as they are.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

struct Marker {
  std::string_view text;
  RouteKind kind;
};

constexpr std::array<Marker, 4> markers = {{{"/manifests/", RouteKind::manifest},
                                            {"/blobs/", RouteKind::blob},
                                            {"/tags/list", RouteKind::tags_list},
                                            {"/referrers/", RouteKind::referrers}}};

bool is_upload_tail(std::string_view tail) { return tail == "uploads" || tail.starts_with("uploads/"); }

// Whether `tail` (what follows the marker) completes a route of this kind.
bool well_formed_tail(RouteKind kind, std::string_view tail) {
  if (kind == RouteKind::tags_list) return tail.empty();
  if (kind == RouteKind::blob && is_upload_tail(tail)) return true;
  return !tail.empty() && tail.find('/') == std::string_view::npos;
}

// Rightmost position in `rest` where `m` yields a well-formed route with a non-empty name.
std::size_t rightmost_match(std::string_view rest, const Marker& m) {
  std::size_t at = rest.rfind(m.text);
  while (at != std::string_view::npos && at > 0) {
    if (well_formed_tail(m.kind, rest.substr(at + m.text.size()))) return at;
    at = rest.rfind(m.text, at - 1);
  }
  return std::string_view::npos;
}

}  // namespace

bool valid_repository_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  std::size_t start = 0;
  while (true) {
    auto slash = name.find('/', start);
    auto component = name.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!valid_component(component)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  if (!(alnum(tag[0]) || tag[0] == '_')) return false;
  for (char c : tag) {
    if (!(alnum(c) || c == '_' || c == '.' || c == '-')) return false;
  }
  return true;
}

bool looks_like_digest(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  return digest_algorithm(text.substr(0, colon)) && digest_encoded(text.substr(colon + 1));
}

Route parse_route(std::string_view target) {
  Route route;
  if (auto qmark = target.find('?'); qmark != std::string_view::npos) {
    route.query = std::string(target.substr(qmark + 1));
    target = target.substr(0, qmark);
  }
  if (target == "/v2" || target == "/v2/") {
    route.kind = RouteKind::base;
    return route;
  }
  constexpr std::string_view prefix = "/v2/";
  if (!target.starts_with(prefix)) return route;
  auto rest = target.substr(prefix.size());
  if (rest == "_catalog") {
    route.kind = RouteKind::catalog;
    return route;
  }
  // The rightmost well-formed marker wins, so a repository may itself have components named
  // "manifests", "blobs", "tags" or "referrers" ("a/blobs/b/manifests/latest" is repo "a/blobs/b").
  std::size_t best = std::string_view::npos;
  const Marker* chosen = nullptr;
  for (const auto& m : markers) {
    auto at = rightmost_match(rest, m);
    if (at != std::string_view::npos && (chosen == nullptr || at > best)) {
      best = at;
      chosen = &m;
    }
  }
  if (chosen == nullptr) return route;
  route.name = std::string(rest.substr(0, best));
  auto tail = rest.substr(best + chosen->text.size());
  if (chosen->kind == RouteKind::blob && is_upload_tail(tail)) {
    route.kind = RouteKind::blob_upload;
    return route;
  }
  route.kind = chosen->kind;
  route.reference = std::string(tail);
  return route;
}

std::optional<std::string> query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    if (percent_decode(part.substr(0, eq)) != key) continue;
    return eq == std::string_view::npos ? std::string() : percent_decode(part.substr(eq + 1));
  }
  return std::nullopt;
}

}  // namespace ocigate::oci
