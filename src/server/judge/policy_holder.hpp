#pragma once
// What a judgement reads besides the image: the policy in force, the keys its trust entries
// name, and the vulnerability database. Swapped whole on SIGHUP (the database when its load on a
// thread of its own is done); a request keeps the snapshot it started with.

#include <memory>
#include <mutex>
#include <string>

#include "ocigate/policy/policy.hpp"
#include "ocigate/server/settings.hpp"
#include "ocigate/signature/trust.hpp"

namespace ocigate::server {

class PolicyHolder {
 public:
  explicit PolicyHolder(policy::Policy initial, signature::TrustStore trust = {}, VulnerabilityData vulnerabilities = {})
      : active_(std::make_shared<const Active>(
            Active{std::move(initial), std::move(trust),
                   std::make_shared<const VulnerabilityData>(std::move(vulnerabilities))})) {}
  std::shared_ptr<const policy::Policy> get() const {
    auto active = snapshot();
    return {active, &active->policy};
  }
  std::shared_ptr<const signature::TrustStore> trust() const {
    auto active = snapshot();
    return {active, &active->trust};
  }
  std::shared_ptr<const VulnerabilityData> vulnerabilities() const { return snapshot()->vulnerabilities; }
  // A new policy and keys; the database stays.
  void set(policy::Policy next, signature::TrustStore trust) {
    std::lock_guard lock(mutex_);
    active_ = std::make_shared<const Active>(Active{std::move(next), std::move(trust), active_->vulnerabilities});
  }
  // A new database; the policy and keys stay.
  void set_vulnerabilities(VulnerabilityData next) {
    auto data = std::make_shared<const VulnerabilityData>(std::move(next));
    std::lock_guard lock(mutex_);
    active_ = std::make_shared<const Active>(Active{active_->policy, active_->trust, std::move(data)});
  }

 private:
  struct Active {
    policy::Policy policy;
    signature::TrustStore trust;
    std::shared_ptr<const VulnerabilityData> vulnerabilities;
  };
  std::shared_ptr<const Active> snapshot() const {
    std::lock_guard lock(mutex_);
    return active_;
  }
  mutable std::mutex mutex_;
  std::shared_ptr<const Active> active_;
};

}  // namespace ocigate::server
