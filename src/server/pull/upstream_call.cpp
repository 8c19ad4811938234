#include "pull/upstream_call.hpp"

#include <chrono>

#include "ocigate/oci/manifest.hpp"

namespace ocigate::server {

boost::asio::awaitable<Result<std::unique_ptr<upstream::Response>>> send_upstream(metrics::Metrics& metrics,
                                                                                  const Target& target,
                                                                                  upstream::Request request) {
  auto started = std::chrono::steady_clock::now();
  auto response = co_await target.client->send(std::move(request));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  metrics.record_upstream(target.upstream->name, response ? std::to_string((*response)->status()) : "error", seconds);
  co_return response;
}

std::string response_header(const upstream::Response& response, http::field field) {
  auto it = response.headers().find(field);
  return it == response.headers().end() ? std::string() : std::string(it->value());
}

std::string response_header(const upstream::Response& response, std::string_view name) {
  auto it = response.headers().find(name);
  return it == response.headers().end() ? std::string() : std::string(it->value());
}

std::string manifest_type_from(std::string content_type) {
  if (auto semi = content_type.find(';'); semi != std::string::npos) content_type.resize(semi);
  while (!content_type.empty() && content_type.back() == ' ') content_type.pop_back();
  for (auto known : {oci::media::oci_manifest, oci::media::oci_index, oci::media::docker_manifest,
                     oci::media::docker_list}) {
    if (content_type == known) return content_type;
  }
  return {};
}

std::string warning_value(std::string_view text) {
  std::string escaped;
  for (char c : text) {
    if (c == '"' || c == '\\') escaped.push_back('\\');
    escaped.push_back(c);
  }
  return "299 - \"" + escaped + "\"";
}

std::string scope_for(const std::string& repo) { return "repository:" + repo + ":pull"; }

}  // namespace ocigate::server
