#pragma once
// Holds back repeats of an event, per webhook: a kubelet retrying a blocked image every few seconds,
// a DaemonSet pulling it on every node, or Docker's HEAD then GET of one manifest would otherwise
// be one message each. Two events repeat each other when they say the same thing: the same
// decision about the same image (kind, image, manifest digest, violated checks and their actions;
// not who pulled, when, or by which reference), the same wrong bytes from the same upstream
// repository, or the same refused reload. Within notify.webhooks[].repeat_window of the last event
// let through, a repeat is held back and counted; the next one let through says how many were.
// Only what reached its receiver holds repeats back: after a drop or a failed delivery the next
// repeat goes out.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "ocigate/notify/event.hpp"

namespace ocigate::notify::detail {

std::string repeat_key(const Event& event);

class Repeats {
 public:
  using Clock = std::chrono::steady_clock;
  // At most this many keys are remembered; past it, those whose window ended are forgotten first,
  // then all (a few repeats may then go out again).
  static constexpr std::size_t max_keys = 10000;

  explicit Repeats(std::chrono::milliseconds window) : window_(window) {}

  // nullopt: a repeat within the window, held back. Otherwise the event goes out, carrying how
  // many repeats of it were held back since the last one that went out.
  std::optional<std::uint64_t> admit(const std::string& key, Clock::time_point now);
  // An event let through never reached its receiver (dropped, or its delivery failed): the next
  // repeat goes out, still counting the repeats held back since.
  void reopen(const std::string& key, Clock::time_point now);
  // What another webhook's memory holds (the one a reload replaced), judged by this one's window.
  void remember_from(const Repeats& previous) { seen_ = previous.seen_; }

 private:
  struct Seen {
    Clock::time_point sent;
    std::uint64_t held = 0;
  };
  void make_room(Clock::time_point now);

  std::chrono::milliseconds window_;
  std::unordered_map<std::string, Seen> seen_;
};

}  // namespace ocigate::notify::detail
