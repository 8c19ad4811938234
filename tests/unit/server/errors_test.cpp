#include "ocigate/server/errors.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ocigate::server {
namespace {

TEST(ErrorMapping, ClientMistakesAre4xxWithTheirOciCode) {
  EXPECT_EQ(http_status(Errc::digest_invalid), 400u);
  EXPECT_EQ(oci_code(Errc::digest_invalid), "DIGEST_INVALID");
  EXPECT_EQ(http_status(Errc::name_invalid), 400u);
  EXPECT_EQ(http_status(Errc::manifest_unknown), 404u);
  EXPECT_EQ(oci_code(Errc::blob_unknown), "BLOB_UNKNOWN");
  EXPECT_EQ(http_status(Errc::unsupported), 405u);
  EXPECT_EQ(http_status(Errc::denied), 403u);
  EXPECT_EQ(http_status(Errc::too_many_requests), 429u);
  EXPECT_EQ(oci_code(Errc::too_many_requests), "TOOMANYREQUESTS");
}

TEST(ErrorMapping, UpstreamTroubleIsNever500) {
  EXPECT_EQ(http_status(Errc::upstream_error), 502u);
  EXPECT_EQ(http_status(Errc::digest_mismatch), 502u);
  EXPECT_EQ(http_status(Errc::upstream_timeout), 504u);
}

TEST(ErrorMapping, NoFreeUpstreamFetchSlotIs503Unavailable) {
  EXPECT_EQ(http_status(Errc::upstream_busy), 503u);
  EXPECT_EQ(oci_code(Errc::upstream_busy), "UNAVAILABLE");
}

TEST(ErrorBody, IsOciErrorJsonWithDetail) {
  nlohmann::json detail = {{"verdict", "block"}};
  auto body = nlohmann::json::parse(error_body(Errc::denied, "image blocked", &detail));
  ASSERT_EQ(body["errors"].size(), 1u);
  EXPECT_EQ(body["errors"][0]["code"], "DENIED");
  EXPECT_EQ(body["errors"][0]["message"], "image blocked");
  EXPECT_EQ(body["errors"][0]["detail"]["verdict"], "block");
}

TEST(ErrorBody, InvalidUtf8InMessageStillYieldsJson) {
  auto body = nlohmann::json::parse(error_body(Errc::name_invalid, std::string("bad \xff name")));
  EXPECT_EQ(body["errors"][0]["code"], "NAME_INVALID");
}

}  // namespace
}  // namespace ocigate::server
