// Repeats of an event held back per webhook (notify/repeats.hpp).

#include "repeats.hpp"

#include "json_text.hpp"

#include <algorithm>
#include <vector>

namespace ocigate::notify::detail {

namespace {

// "check:action" of every violation, sorted: the same findings in another order are the same.
std::string findings(const nlohmann::json& violations) {
  if (!violations.is_array()) return {};
  std::vector<std::string> items;
  for (const auto& violation : violations) {
    if (violation.is_object()) items.push_back(text_field(violation, "check") + ":" + text_field(violation, "action"));
  }
  std::sort(items.begin(), items.end());
  std::string out;
  for (const auto& item : items) out.append(item).append(",");
  return out;
}

}  // namespace

std::string repeat_key(const Event& event) {
  std::string key(kind_name(event.kind));
  key += '\n';
  switch (event.kind) {
    case EventKind::block:
    case EventKind::warn:
      key.append(event.image).append("\n").append(event.digest).append("\n").append(findings(event.violations));
      break;
    case EventKind::digest_mismatch:
      key.append(event.upstream).append("\n").append(event.repository).append("\n").append(event.digest);
      key.append("\n").append(event.actual);
      break;
    case EventKind::policy_reload_failed:
      key.append(event.error);
      break;
  }
  return key;
}

std::optional<std::uint64_t> Repeats::admit(const std::string& key, Clock::time_point now) {
  if (window_.count() <= 0) return 0;
  auto found = seen_.find(key);
  if (found == seen_.end()) {
    if (seen_.size() >= max_keys) make_room(now);
    seen_.emplace(key, Seen{now, 0});
    return 0;
  }
  Seen& seen = found->second;
  if (now - seen.sent < window_) {
    ++seen.held;
    return std::nullopt;
  }
  const std::uint64_t held = seen.held;
  seen = Seen{now, 0};
  return held;
}

void Repeats::reopen(const std::string& key, Clock::time_point now) {
  auto found = seen_.find(key);
  if (found != seen_.end()) found->second.sent = now - window_;  // its window ends now
}

void Repeats::make_room(Clock::time_point now) {
  std::erase_if(seen_, [&](const auto& entry) { return now - entry.second.sent >= window_; });
  if (seen_.size() >= max_keys) seen_.clear();
}

}  // namespace ocigate::notify::detail
