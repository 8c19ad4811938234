#include <nlohmann/json.hpp>

#include "judge/sources.hpp"

namespace ocigate::server {

boost::asio::awaitable<void> ConfigSource::gather(const ImageRequest& image, policy::ImageFacts& facts) {
  constexpr std::int64_t max_config_size = 8 << 20;
  if (!image.manifest.config) co_return;
  auto bytes = co_await content_.small_blob(image.target, *image.manifest.config, max_config_size);
  if (!bytes) co_return;
  auto json = nlohmann::json::parse(*bytes, nullptr, false);
  if (json.is_discarded() || !json.is_object()) co_return;
  facts.config = std::move(json);
}

}  // namespace ocigate::server
