// Version orders of dpkg, apk and rpm, written from each tool's documented rules (deb-version(7)
// and dpkg's lib/dpkg/version.c; apk-tools' src/version.c; rpm's rpmio/rpmvercmp.c).

#include "ocigate/vuln/version.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace ocigate::vuln {

namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }
bool lower(char c) { return c >= 'a' && c <= 'z'; }
bool alpha(char c) { return lower(c) || (c >= 'A' && c <= 'Z'); }
bool alnum(char c) { return digit(c) || alpha(c); }
bool blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

// A decimal that must fit 32 bits (epochs).
bool parse_epoch(std::string_view s, std::uint32_t& out) {
  if (s.empty() || s.size() > 10) return false;
  std::uint64_t value = 0;
  for (char c : s) {
    if (!digit(c)) return false;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())) return false;
  out = static_cast<std::uint32_t>(value);
  return true;
}

// Two digit strings compared as numbers of any length: leading zeros dropped, longer is larger.
int compare_digits(std::string_view a, std::string_view b) {
  while (!a.empty() && a.front() == '0') a.remove_prefix(1);
  while (!b.empty() && b.front() == '0') b.remove_prefix(1);
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  int r = a.compare(b);
  return r < 0 ? -1 : (r > 0 ? 1 : 0);
}

int sign(int v) { return v < 0 ? -1 : (v > 0 ? 1 : 0); }

}  // namespace

const char* scheme_text(Scheme scheme) {
  switch (scheme) {
    case Scheme::apk: return "apk";
    case Scheme::rpm: return "rpm";
    case Scheme::dpkg: break;
  }
  return "dpkg";
}

// ---- dpkg ----

namespace dpkg {

namespace {

// verrevcmp's weight of one character: '~' before everything (even the end), letters before
// other symbols; digits and the end weigh 0 here (digit runs are compared as numbers).
int order(char c) {
  if (digit(c)) return 0;
  if (alpha(c)) return static_cast<unsigned char>(c);
  if (c == '~') return -1;
  if (c) return static_cast<unsigned char>(c) + 256;
  return 0;
}

Error bad(const std::string& why, std::string_view text) {
  return Error{Errc::manifest_invalid, "dpkg version '" + std::string(text.substr(0, 80)) + "': " + why};
}

}  // namespace

int compare_part(std::string_view a, std::string_view b) {
  // verrevcmp works on C strings: a NUL ends the part.
  a = a.substr(0, a.find('\0'));
  b = b.substr(0, b.find('\0'));
  std::size_t i = 0, j = 0;
  auto at = [](std::string_view s, std::size_t k) { return k < s.size() ? s[k] : '\0'; };
  while (i < a.size() || j < b.size()) {
    int first_diff = 0;
    while ((i < a.size() && !digit(a[i])) || (j < b.size() && !digit(b[j]))) {
      int ac = order(at(a, i)), bc = order(at(b, j));
      if (ac != bc) return ac - bc;
      ++i, ++j;
    }
    while (at(a, i) == '0') ++i;
    while (at(b, j) == '0') ++j;
    while (digit(at(a, i)) && digit(at(b, j))) {
      if (!first_diff) first_diff = at(a, i) - at(b, j);
      ++i, ++j;
    }
    if (digit(at(a, i))) return 1;
    if (digit(at(b, j))) return -1;
    if (first_diff) return first_diff;
  }
  return 0;
}

namespace {

struct View {
  std::uint32_t epoch = 0;
  std::string_view upstream, revision;
};

// Splits without checking characters; false when the epoch is not a number.
bool split(std::string_view s, View& v) {
  if (auto colon = s.find(':'); colon != std::string_view::npos) {
    if (!parse_epoch(s.substr(0, colon), v.epoch)) return false;
    s.remove_prefix(colon + 1);
  }
  if (auto hyphen = s.rfind('-'); hyphen != std::string_view::npos) {
    v.revision = s.substr(hyphen + 1);
    s = s.substr(0, hyphen);
  }
  v.upstream = s;
  return true;
}

int compare(const View& a, const View& b) {
  if (a.epoch != b.epoch) return a.epoch < b.epoch ? -1 : 1;
  if (int r = compare_part(a.upstream, b.upstream)) return sign(r);
  return sign(compare_part(a.revision, b.revision));
}

}  // namespace

int compare_valid(std::string_view a, std::string_view b) {
  View va, vb;
  split(trim(a), va);
  split(trim(b), vb);
  return compare(va, vb);
}

namespace {

// parseversion's checks; on success `view` holds the parts. nullptr when valid, else why.
const char* check(std::string_view text, View& view) {
  std::string_view s = trim(text);
  if (s.empty()) return "empty";
  if (std::any_of(s.begin(), s.end(), blank)) return "embedded blank";
  if (!split(s, view)) return "epoch is not a number below 2^31";
  if (s.find(':') == s.size() - 1) return "nothing after the epoch";
  if (view.upstream.empty()) return "empty upstream version";
  if (!digit(view.upstream.front())) return "upstream version does not start with a digit";
  for (char c : view.upstream) {
    if (!alnum(c) && !std::strchr(".-+~:", c)) return "invalid character in the upstream version";
  }
  for (char c : view.revision) {
    if (!alnum(c) && !std::strchr(".+~", c)) return "invalid character in the revision";
  }
  return nullptr;
}

}  // namespace

bool valid(std::string_view text) {
  View view;
  return check(text, view) == nullptr;
}

Result<Version> parse(std::string_view text) {
  View view;
  if (const char* why = check(text, view)) return bad(why, text);
  return Version{view.epoch, std::string(view.upstream), std::string(view.revision)};
}

int compare(const Version& a, const Version& b) { return compare(View{a.epoch, a.upstream, a.revision}, View{b.epoch, b.upstream, b.revision}); }

}  // namespace dpkg

// ---- apk ----

namespace apk {

namespace {

// Token kinds in the order apk-tools gives them: a later kind may only follow an earlier one,
// and when two versions run out of equal tokens, the one whose next kind is later is older.
enum Kind { initial_digit, digit_run, letter, suffix, suffix_no, commit_hash, revision_no, end, invalid };

// Suffix ranks: the pre-release ones sort before "no suffix", the others after it.
enum Suffix { suffix_invalid, s_alpha, s_beta, s_pre, s_rc, suffix_none, s_cvs, s_svn, s_git, s_hg, s_p };

Suffix suffix_of(std::string_view s) {
  static constexpr std::pair<std::string_view, Suffix> names[] = {
      {"alpha", s_alpha}, {"beta", s_beta}, {"pre", s_pre}, {"rc", s_rc}, {"cvs", s_cvs},
      {"svn", s_svn},     {"git", s_git},   {"hg", s_hg},   {"p", s_p}};
  for (const auto& [name, rank] : names) {
    if (s == name) return rank;
  }
  return suffix_invalid;
}

struct Token {
  Kind kind = initial_digit;
  Suffix rank = suffix_invalid;
  std::string_view value;
};

std::string_view take_while(std::string_view& s, bool (*pred)(char)) {
  std::size_t n = 0;
  while (n < s.size() && pred(s[n])) ++n;
  std::string_view out = s.substr(0, n);
  s.remove_prefix(n);
  return out;
}

bool hex(char c) { return digit(c) || (c >= 'a' && c <= 'f'); }

void take_digits(Token& t, std::string_view& s) {
  t.value = take_while(s, digit);
  if (t.value.empty()) t.kind = invalid;
}

void first(Token& t, std::string_view& s) {
  t.kind = initial_digit;
  take_digits(t, s);
}

void next(Token& t, std::string_view& s) {
  if (s.empty()) {
    t.kind = end;
    return;
  }
  char c = s.front();
  if (lower(c)) {
    if (t.kind > digit_run) return void(t.kind = invalid);
    t.value = s.substr(0, 1);
    t.kind = letter;
    s.remove_prefix(1);
  } else if (c == '.' || digit(c)) {
    if (c == '.') {
      if (t.kind > digit_run) return void(t.kind = invalid);
      s.remove_prefix(1);
    }
    if (t.kind == initial_digit || t.kind == digit_run) {
      t.kind = digit_run;
    } else if (t.kind == suffix) {
      t.kind = suffix_no;
    } else {
      return void(t.kind = invalid);
    }
    take_digits(t, s);
  } else if (c == '_') {
    if (t.kind > suffix_no) return void(t.kind = invalid);
    s.remove_prefix(1);
    t.value = take_while(s, lower);
    t.rank = suffix_of(t.value);
    t.kind = t.rank == suffix_invalid ? invalid : suffix;
  } else if (c == '~') {
    if (t.kind >= commit_hash) return void(t.kind = invalid);
    s.remove_prefix(1);
    t.value = take_while(s, hex);
    t.kind = t.value.empty() ? invalid : commit_hash;
  } else if (c == '-') {
    if (t.kind >= revision_no || s.substr(0, 2) != "-r") return void(t.kind = invalid);
    s.remove_prefix(2);
    t.kind = revision_no;
    take_digits(t, s);
  } else {
    t.kind = invalid;
  }
}

// apk_blob_sort: bytes, then length.
int string_sort(std::string_view a, std::string_view b) {
  int r = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  if (r) return sign(r);
  return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
}

int compare_tokens(const Token& a, const Token& b) {
  switch (a.kind) {
    case digit_run:
      // A leading zero makes it a fraction-like run: compared as text (Gentoo's rule).
      if (a.value.front() == '0' || b.value.front() == '0') return string_sort(a.value, b.value);
      return compare_digits(a.value, b.value);
    case initial_digit:
    case suffix_no:
    case revision_no: return compare_digits(a.value, b.value);
    case letter: return sign(a.value.front() - b.value.front());
    case suffix: return a.rank == b.rank ? 0 : (a.rank < b.rank ? -1 : 1);
    default: return string_sort(a.value, b.value);
  }
}

}  // namespace

bool valid(std::string_view version) {
  Token t;
  for (first(t, version); t.kind < end; next(t, version)) {
  }
  return t.kind == end;
}

int compare(std::string_view a, std::string_view b) {
  Token ta, tb;
  for (first(ta, a), first(tb, b); ta.kind == tb.kind && ta.kind < end; next(ta, a), next(tb, b)) {
    if (int r = compare_tokens(ta, tb)) return r;
  }
  if (ta.kind == tb.kind) return 0;
  // Equal so far: the longer one is newer, unless what follows is a pre-release suffix.
  if (ta.kind == suffix && ta.rank < suffix_none) return -1;
  if (tb.kind == suffix && tb.rank < suffix_none) return 1;
  return ta.kind > tb.kind ? -1 : 1;
}

}  // namespace apk

// ---- rpm ----

namespace rpm {

int vercmp(std::string_view a, std::string_view b) {
  // rpmvercmp works on C strings: a NUL ends the version (found by fuzz_version).
  a = a.substr(0, a.find('\0'));
  b = b.substr(0, b.find('\0'));
  if (a == b) return 0;
  std::size_t i = 0, j = 0;
  auto at = [](std::string_view s, std::size_t k) { return k < s.size() ? s[k] : '\0'; };
  auto separator = [](char c) { return c && !alnum(c) && c != '~' && c != '^'; };
  while (i < a.size() || j < b.size()) {
    while (separator(at(a, i))) ++i;
    while (separator(at(b, j))) ++j;
    // '~' sorts before everything, the end included.
    if (at(a, i) == '~' || at(b, j) == '~') {
      if (at(a, i) != '~') return 1;
      if (at(b, j) != '~') return -1;
      ++i, ++j;
      continue;
    }
    // '^' sorts after the end of the base version but before anything else.
    if (at(a, i) == '^' || at(b, j) == '^') {
      if (i >= a.size()) return -1;
      if (j >= b.size()) return 1;
      if (at(a, i) != '^') return 1;
      if (at(b, j) != '^') return -1;
      ++i, ++j;
      continue;
    }
    if (i >= a.size() || j >= b.size()) break;
    bool numeric = digit(a[i]);
    auto in_segment = [numeric](char c) { return numeric ? digit(c) : alpha(c); };
    std::size_t ei = i, ej = j;
    while (ei < a.size() && in_segment(a[ei])) ++ei;
    while (ej < b.size() && in_segment(b[ej])) ++ej;
    // A numeric segment is newer than an alphabetic one.
    if (ej == j) return numeric ? 1 : -1;
    std::string_view sa = a.substr(i, ei - i), sb = b.substr(j, ej - j);
    int r = numeric ? compare_digits(sa, sb) : sign(sa.compare(sb));
    if (r) return r;
    i = ei, j = ej;
  }
  if (i >= a.size() && j >= b.size()) return 0;
  return i >= a.size() ? -1 : 1;
}

namespace {

struct View {
  std::uint32_t epoch = 0;
  std::string_view version, release;
  bool has_epoch = false;
};

// rpm's parseEVR: an epoch only when leading digits end in ':'; the release after the last '-'.
bool split(std::string_view s, View& v) {
  std::size_t digits = 0;
  while (digits < s.size() && digit(s[digits])) ++digits;
  if (digits < s.size() && s[digits] == ':') {
    if (digits > 0 && !parse_epoch(s.substr(0, digits), v.epoch)) return false;
    v.has_epoch = true;
    s.remove_prefix(digits + 1);
  }
  if (auto hyphen = s.rfind('-'); hyphen != std::string_view::npos) {
    v.release = s.substr(hyphen + 1);
    s = s.substr(0, hyphen);
  }
  v.version = s;
  return true;
}

int compare(const View& a, const View& b) {
  if (a.epoch != b.epoch) return a.epoch < b.epoch ? -1 : 1;
  if (int r = vercmp(a.version, b.version)) return r;
  if (a.release.empty() || b.release.empty()) return 0;
  return vercmp(a.release, b.release);
}

}  // namespace

int compare_valid(std::string_view a, std::string_view b) {
  View va, vb;
  split(a, va);
  split(b, vb);
  return compare(va, vb);
}

namespace {

const char* check(std::string_view text, View& view) {
  if (text.empty()) return "empty";
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return "blank or control character";
  }
  if (!split(text, view)) return "epoch too large";
  if (view.version.empty()) return "empty version";
  return nullptr;
}

}  // namespace

bool valid(std::string_view text) {
  View view;
  return check(text, view) == nullptr;
}

Result<Version> parse(std::string_view text) {
  View view;
  if (const char* why = check(text, view)) {
    return Error{Errc::manifest_invalid, "rpm version '" + std::string(text.substr(0, 80)) + "': " + why};
  }
  return Version{view.epoch, std::string(view.version), std::string(view.release), view.has_epoch};
}

int compare(const Version& a, const Version& b) {
  return compare(View{a.epoch, a.version, a.release, a.has_epoch}, View{b.epoch, b.version, b.release, b.has_epoch});
}

}  // namespace rpm

Result<int> compare(Scheme scheme, std::string_view a, std::string_view b) {
  switch (scheme) {
    case Scheme::dpkg: {
      auto va = dpkg::parse(a);
      if (!va) return va.error();
      auto vb = dpkg::parse(b);
      if (!vb) return vb.error();
      return dpkg::compare(*va, *vb);
    }
    case Scheme::apk: {
      for (auto v : {a, b}) {
        if (!apk::valid(v)) return Error{Errc::manifest_invalid, "apk version '" + std::string(v.substr(0, 80)) + "' is invalid"};
      }
      return apk::compare(a, b);
    }
    case Scheme::rpm: {
      auto va = rpm::parse(a);
      if (!va) return va.error();
      auto vb = rpm::parse(b);
      if (!vb) return vb.error();
      return rpm::compare(*va, *vb);
    }
  }
  return Error{Errc::internal, "unknown version scheme"};
}

int compare_valid(Scheme scheme, std::string_view a, std::string_view b) {
  switch (scheme) {
    case Scheme::dpkg: return dpkg::compare_valid(a, b);
    case Scheme::apk: return apk::compare(a, b);
    case Scheme::rpm: return rpm::compare_valid(a, b);
  }
  return 0;
}

bool valid(Scheme scheme, std::string_view version) {
  switch (scheme) {
    case Scheme::dpkg: return dpkg::valid(version);
    case Scheme::apk: return apk::valid(version);
    case Scheme::rpm: return rpm::valid(version);
  }
  return false;
}

}  // namespace ocigate::vuln
