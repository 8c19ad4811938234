#include "ocigate/metrics/metrics.hpp"

#include <gtest/gtest.h>

namespace ocigate::metrics {
namespace {

TEST(Metrics, RenderedTextCarriesRecordedSamplesWithLabels) {
  Metrics m;
  m.record_request("blob", "GET", 200, 0.01);
  m.record_cache("blob", "miss");
  m.record_digest_mismatch("up");
  m.record_upstream("up", "429", 0.2);
  auto text = m.render();
  EXPECT_NE(text.find("ocigate_http_requests_total{method=\"GET\",route=\"blob\",status=\"200\"} 1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("ocigate_cache_requests_total{kind=\"blob\",result=\"miss\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ocigate_digest_mismatches_total{upstream=\"up\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ocigate_upstream_requests_total{status=\"429\",upstream=\"up\"} 1"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ocigate_http_request_duration_seconds histogram"), std::string::npos);
}

TEST(Metrics, MirroredEvictionCountersStayMonotonic) {
  Metrics m;
  m.set_evictions(3, 300);
  m.set_evictions(2, 200);  // a smaller reading never decreases a counter
  m.set_evictions(5, 500);
  auto text = m.render();
  EXPECT_NE(text.find("ocigate_cache_evictions_total 5"), std::string::npos) << text;
  EXPECT_NE(text.find("ocigate_cache_evicted_bytes_total 500"), std::string::npos);
}

TEST(Metrics, NotifyEventsStartAtZeroForEveryResult) {
  Metrics m;
  auto text = m.render();
  for (const char* result : {"delivered", "failed", "dropped", "retried"}) {
    EXPECT_NE(text.find("ocigate_notify_events_total{result=\"" + std::string(result) + "\"} 0"), std::string::npos)
        << result << "\n" << text;
  }
  m.record_notify("retried");
  m.record_notify("delivered");
  m.record_notify("retried");
  text = m.render();
  EXPECT_NE(text.find("ocigate_notify_events_total{result=\"retried\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("ocigate_notify_events_total{result=\"delivered\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ocigate_notify_events_total{result=\"dropped\"} 0"), std::string::npos);
}

TEST(Metrics, AuthFailuresAndLimitsAreCountedByReasonOnly) {
  Metrics m;
  m.record_auth_failure("bad_password");
  m.record_auth_failure("bad_password");
  m.record_auth_failure("denied");
  m.record_limited("rate");
  m.record_limited("connections");
  m.set_fetch_slot_timeouts("up", 2);
  m.set_fetch_slot_timeouts("up", 1);
  auto text = m.render();
  EXPECT_NE(text.find("ocigate_auth_failures_total{reason=\"bad_password\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("ocigate_auth_failures_total{reason=\"denied\"} 1"), std::string::npos);
  EXPECT_EQ(text.find("ocigate_auth_failures_total{reason=\"missing\"}"), std::string::npos)
      << "a reason never seen has no series";
  EXPECT_NE(text.find("ocigate_rate_limited_total{limit=\"rate\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ocigate_rate_limited_total{limit=\"connections\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ocigate_upstream_fetch_slot_timeouts_total{upstream=\"up\"} 2"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ocigate_auth_failures_total counter"), std::string::npos);
}

}  // namespace
}  // namespace ocigate::metrics
