#include "ocigate/common/glob.hpp"

#include <vector>

namespace ocigate {

namespace {

bool glob_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/' ||
         c == ':' || c == '@' || c == '*' || c == '?';
}

// Dynamic programming over (glob position, text position): linear memory per row and no
// recursion, so hostile globs like "*a*a*a*a*b" cannot blow up time or stack.
class Matcher {
 public:
  Matcher(std::string_view glob, std::string_view text) : glob_(glob), text_(text) {}

  bool run() {
    const std::size_t n = text_.size();
    // next[t]: does glob_[g+1..] match text_[t..]; computed from the end of the glob backwards.
    std::vector<char> next(n + 1, 0), cur(n + 1, 0), plain(n + 1, 0);
    next[n] = 1;  // empty glob matches empty text
    // Walk glob tokens from the end. A "**" token spans two characters.
    std::vector<std::size_t> starts;
    for (std::size_t g = 0; g < glob_.size();) {
      starts.push_back(g);
      g += (glob_.compare(g, 2, "**") == 0) ? 2 : 1;
    }
    // rows[k] = match table for the glob suffix starting at token k; we need rows[k+2] for the
    // "/**/" shortcut, so keep the two previous rows.
    std::vector<char> after_next;  // table for token k+2
    for (std::size_t k = starts.size(); k-- > 0;) {
      std::size_t g = starts[k];
      bool double_star = glob_.compare(g, 2, "**") == 0;
      char c = glob_[g];
      for (std::size_t t = n + 1; t-- > 0;) {
        bool m = false;
        if (double_star) {
          // Consume nothing, or one more character of any kind.
          plain[t] = next[t] || (t < n && plain[t + 1]);
          m = plain[t];
          // "/**/" also matches a single "/": when "**" consumes nothing, the "/" after it may be
          // skipped too (only then: "a/**/b" must not match "a/xb").
          bool slash_before = g > 0 && glob_[g - 1] == '/';
          bool slash_after = k + 1 < starts.size() && glob_[starts[k + 1]] == '/';
          if (!m && slash_before && slash_after && !after_next.empty()) m = after_next[t];
        } else if (c == '*') {
          m = next[t] || (t < n && text_[t] != '/' && cur[t + 1]);
        } else if (c == '?') {
          m = t < n && text_[t] != '/' && next[t + 1];
        } else {
          m = t < n && text_[t] == c && next[t + 1];
        }
        cur[t] = m;
      }
      after_next = next;
      std::swap(next, cur);
    }
    return next[0];
  }

 private:
  std::string_view glob_, text_;
};

}  // namespace

bool glob_match(std::string_view glob, std::string_view text) { return Matcher(glob, text).run(); }

std::optional<std::string> glob_error(std::string_view glob) {
  if (glob.empty()) return "is empty";
  for (char c : glob) {
    if (!glob_char(c)) {
      return "has '" + std::string(1, c) +
             "': globs use lowercase a-z, 0-9, '.', '_', '-', '/', ':', '@' and the wildcards '*', '**', '?'";
    }
  }
  if (glob.find("***") != std::string_view::npos) return "has '***': use '*' within a segment or '**' across";
  return std::nullopt;
}

}  // namespace ocigate
