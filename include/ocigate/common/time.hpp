#pragma once
// Time as ocigate's inputs write it: RFC 3339 timestamps (image configs, signatures, trusted
// roots), UTC calendar days (exemptions, the verdict cache), and configuration durations.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace ocigate {

// Parses RFC 3339 ("2024-01-02T03:04:05.123456789Z", "...+02:00"); nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);
// "YYYY-MM-DD" of a time point, in UTC.
std::string utc_date(std::chrono::system_clock::time_point when);
// "30s", "5m", "1h", "2d", "1h30m", "0s" -> seconds; nullopt for a bare number, an unknown unit
// or more than a century.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

}  // namespace ocigate
