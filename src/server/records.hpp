#pragma once
// The small records the server keeps in the cache (cache::Store::put_record), by space: one list,
// so a reader sees every kind of state the mirror remembers, and who writes it.

#include <string_view>

namespace ocigate::server::records {

// Pull side (pull/).
inline constexpr std::string_view index_reference = "index-reference";  // child digest -> tag its index was pulled by
inline constexpr std::string_view index_digest = "index-digest";        // child digest -> the index's digest
inline constexpr std::string_view tags = "tags";                        // "<repo_key>?<query>" -> {body, link}
inline constexpr std::string_view referrers = "referrers";  // "<repo_key>@<digest>?<type>" -> {at, body, filters}

// Judgement (judge/).
inline constexpr std::string_view layer_report = "layer-report";      // layer digest -> LayerReport JSON
inline constexpr std::string_view verdict = "verdict";                // verdict cache key -> "<day> <unix> <JSON>"
inline constexpr std::string_view latest_verdict = "verdict-latest";  // manifest digest -> verdict JSON
inline constexpr std::string_view inventory = "inventory";            // manifest digest -> OS and packages JSON
inline constexpr std::string_view allowed_blob = "allowed-blob";      // blob digest -> "1" (blob_access: referenced)
inline constexpr std::string_view blocked_layer = "blocked-layer";    // "<policy version>/<digest>" -> the 403 message

}  // namespace ocigate::server::records
