#include "ocigate/oci/range.hpp"

#include <algorithm>
#include <limits>
#include <optional>

namespace ocigate::oci {

namespace {

constexpr std::uint64_t saturated = std::numeric_limits<std::uint64_t>::max();

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Decimal digits only; nullopt on empty or junk. Values past 2^64-1 saturate: a position that
// large is beyond any body, which is what the header means, and no arithmetic can overflow.
std::optional<std::uint64_t> number(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    auto digit = static_cast<std::uint64_t>(c - '0');
    value = value > (saturated - digit) / 10 ? saturated : value * 10 + digit;
  }
  return value;
}

bool starts_with_bytes_unit(std::string_view header) {
  constexpr std::string_view unit = "bytes=";
  if (header.size() < unit.size()) return false;
  for (std::size_t i = 0; i < unit.size(); ++i) {
    char c = header[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != unit[i]) return false;
  }
  return true;
}

constexpr ParsedRange unsatisfiable{RangeResult::unsatisfiable, {}};

}  // namespace

ParsedRange parse_range(std::string_view header, std::uint64_t size) {
  const ParsedRange none;
  header = trim(header);
  if (!starts_with_bytes_unit(header)) return none;
  auto spec = trim(header.substr(6));
  // A multi-range is legal but not worth serving as multipart: the whole body is a valid answer.
  if (spec.find(',') != std::string_view::npos) return none;
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return none;
  auto first_text = trim(spec.substr(0, dash));
  auto last_text = trim(spec.substr(dash + 1));

  if (first_text.empty()) {  // suffix: the last n bytes
    auto n = number(last_text);
    if (!n) return none;
    if (*n == 0 || size == 0) return unsatisfiable;
    std::uint64_t length = std::min(*n, size);
    return {RangeResult::satisfiable, {size - length, size - 1}};
  }
  auto first = number(first_text);
  if (!first) return none;
  std::optional<std::uint64_t> last;
  if (!last_text.empty()) {
    last = number(last_text);
    if (!last || *last < *first) return none;
  }
  if (*first >= size) return unsatisfiable;  // also covers size == 0
  return {RangeResult::satisfiable, {*first, std::min(last.value_or(saturated), size - 1)}};
}

}  // namespace ocigate::oci
