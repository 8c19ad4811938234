#pragma once
// CVSS scores from vector strings, and the qualitative severity bands.
//   v3.0 / v3.1: the base score by the CVSS v3.1 specification's equations (section 7.1) and its
//                Roundup (Appendix A); temporal and environmental metrics are accepted, ignored.
//   v4.0:        the specification's MacroVector method (section 8.2) with its lookup table;
//                threat/environmental metrics in the vector take part as the spec says
//                (CVSS-BT/BE/BTE), supplemental ones are accepted and do not change the score.
// Malformed vectors (unknown or repeated metrics, bad values, a missing base metric) are errors.

#include <optional>
#include <string_view>

#include "ocigate/common/result.hpp"

namespace ocigate::vuln {

enum class Severity { unknown, none, low, medium, high, critical };

const char* severity_text(Severity s);  // "unknown", "none", "low", "medium", "high", "critical"
std::optional<Severity> parse_severity(std::string_view text);  // the words above
// Bands of CVSS v3.1 table 14 / v4.0 table 23: 0 none, 0.1-3.9 low, 4.0-6.9 medium,
// 7.0-8.9 high, 9.0-10.0 critical.
Severity severity_of_score(double score);

Result<double> cvss3_base_score(std::string_view vector);  // "CVSS:3.x/AV:../..."
Result<double> cvss4_score(std::string_view vector);       // "CVSS:4.0/AV:../..."

}  // namespace ocigate::vuln
