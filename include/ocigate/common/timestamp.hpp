#pragma once
// Log and event timestamps: UTC, milliseconds, "2026-12-07T03:53:20.123Z".

#include <chrono>
#include <string>

namespace ocigate {

std::string iso8601_millis(std::chrono::system_clock::time_point time);

}  // namespace ocigate
