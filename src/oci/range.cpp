#include "ocigate/oci/range.hpp"

#include <cctype>
#include <limits>
#include <optional>

namespace ocigate::oci {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Decimal digits only; nullopt on empty, junk or overflow.
std::optional<std::uint64_t> number(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    unsigned digit = static_cast<unsigned>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

}  // namespace

ParsedRange parse_range(std::string_view header, std::uint64_t size) {
  ParsedRange none;
  header = trim(header);
  constexpr std::string_view unit = "bytes=";
  if (header.size() < unit.size()) return none;
  for (std::size_t i = 0; i < unit.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != unit[i]) return none;
  }
  auto spec = trim(header.substr(unit.size()));
  if (spec.find(',') != std::string_view::npos) return none;
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return none;
  auto first_text = trim(spec.substr(0, dash));
  auto last_text = trim(spec.substr(dash + 1));
  ParsedRange out;
  if (first_text.empty()) {  // suffix: the last n bytes
    auto n = number(last_text);
    if (!n) return none;
    if (*n == 0 || size == 0) return {RangeResult::unsatisfiable, {}};
    std::uint64_t length = std::min(*n, size);
    return {RangeResult::satisfiable, {size - length, size - 1}};
  }
  auto first = number(first_text);
  if (!first) return none;
  std::uint64_t last = size == 0 ? 0 : size - 1;
  if (!last_text.empty()) {
    auto parsed_last = number(last_text);
    if (!parsed_last || *parsed_last < *first) return none;
    last = std::min(*parsed_last, last);
  }
  if (*first >= size) return {RangeResult::unsatisfiable, {}};
  return {RangeResult::satisfiable, {*first, last}};
}

}  // namespace ocigate::oci
