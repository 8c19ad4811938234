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

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i] == '+' ? ' ' : s[i]);
  }
  return out;
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

bool looks_like_digest(std::string_view text) { return text.find(':') != std::string_view::npos; }

Route parse_route(std::string_view target) {
  Route route;
  auto qmark = target.find('?');
  if (qmark != std::string_view::npos) {
    route.query = std::string(target.substr(qmark + 1));
    target = target.substr(0, qmark);
  }
  if (target == "/v2" || target == "/v2/") {
    route.kind = RouteKind::base;
    return route;
  }
  constexpr std::string_view prefix = "/v2/";
  if (target.substr(0, prefix.size()) != prefix) return route;
  auto rest = target.substr(prefix.size());
  if (rest == "_catalog") {
    route.kind = RouteKind::catalog;
    return route;
  }
  // Try markers from the right so a repository may contain "manifests" or "blobs" components.
  struct Marker {
    std::string_view text;
    RouteKind kind;
    bool exact_end;  // "tags/list" ends the path
  };
  static constexpr std::array<Marker, 4> markers = {{{"/manifests/", RouteKind::manifest, false},
                                                     {"/blobs/", RouteKind::blob, false},
                                                     {"/tags/list", RouteKind::tags_list, true},
                                                     {"/referrers/", RouteKind::referrers, false}}};
  std::size_t best = std::string_view::npos;
  const Marker* chosen = nullptr;
  for (const auto& m : markers) {
    auto at = rest.rfind(m.text);
    if (at == std::string_view::npos || at == 0) continue;
    auto tail = rest.substr(at + m.text.size());
    bool well_formed = m.exact_end ? tail.empty() : (!tail.empty() && tail.find('/') == std::string_view::npos);
    if (m.kind == RouteKind::blob && tail.substr(0, 8) == "uploads/") well_formed = true;
    if (m.kind == RouteKind::blob && tail == "uploads") well_formed = true;
    if (!well_formed) continue;
    if (best == std::string_view::npos || at > best) {
      best = at;
      chosen = &m;
    }
  }
  if (!chosen) return route;
  route.name = std::string(rest.substr(0, best));
  auto tail = rest.substr(best + chosen->text.size());
  route.kind = chosen->kind;
  if (chosen->kind == RouteKind::blob && (tail == "uploads" || tail.substr(0, 8) == "uploads/")) {
    route.kind = RouteKind::blob_upload;
    return route;
  }
  route.reference = std::string(tail);
  return route;
}

std::optional<std::string> query_param(std::string_view query, std::string_view key) {
  std::size_t start = 0;
  while (start <= query.size()) {
    auto amp = query.find('&', start);
    auto part = query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    auto eq = part.find('=');
    auto name = part.substr(0, eq);
    if (percent_decode(name) == key) {
      return eq == std::string_view::npos ? std::string() : percent_decode(part.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return std::nullopt;
}

}  // namespace ocigate::oci
