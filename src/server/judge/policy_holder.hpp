#pragma once
// What a judgement reads besides the image: the policy in force and the keys its trust entries
// name. Swapped whole on SIGHUP; a request keeps the snapshot it started with.

#include <memory>
#include <mutex>
#include <string>

#include "ocigate/policy/policy.hpp"
#include "ocigate/signature/trust.hpp"

namespace ocigate::server {

class PolicyHolder {
 public:
  explicit PolicyHolder(policy::Policy initial, signature::TrustStore trust = {})
      : active_(std::make_shared<const Active>(Active{std::move(initial), std::move(trust)})) {}
  std::shared_ptr<const policy::Policy> get() const {
    auto active = snapshot();
    return {active, &active->policy};
  }
  std::shared_ptr<const signature::TrustStore> trust() const {
    auto active = snapshot();
    return {active, &active->trust};
  }
  void set(policy::Policy next, signature::TrustStore trust) {
    auto fresh = std::make_shared<const Active>(Active{std::move(next), std::move(trust)});
    std::lock_guard lock(mutex_);
    active_ = std::move(fresh);
  }

 private:
  struct Active {
    policy::Policy policy;
    signature::TrustStore trust;
  };
  std::shared_ptr<const Active> snapshot() const {
    std::lock_guard lock(mutex_);
    return active_;
  }
  mutable std::mutex mutex_;
  std::shared_ptr<const Active> active_;
};

}  // namespace ocigate::server
