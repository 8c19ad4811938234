#include "front/forwarded.hpp"

#include <optional>
#include <string_view>

namespace ocigate::server {

namespace asio = boost::asio;

namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// One X-Forwarded-For entry: an address, "[IPv6]" or "[IPv6]:port", or "IPv4:port".
std::optional<asio::ip::address> entry_address(std::string_view entry) {
  entry = trim(entry);
  if (!entry.empty() && entry.front() == '[') {
    const auto close = entry.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    entry = entry.substr(1, close - 1);
  } else if (entry.find(':') == entry.rfind(':') && entry.find('.') != std::string_view::npos) {
    entry = entry.substr(0, entry.find(':'));  // IPv4, perhaps with a port
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(std::string(entry), ec);
  if (ec) return std::nullopt;
  return net::unmapped(address);
}

bool trusted_address(const std::vector<net::Network>& trusted, const asio::ip::address& address) {
  for (const auto& network : trusted) {
    if (network.contains(address)) return true;
  }
  return false;
}

// Every X-Forwarded-For line of the request, in order, as one comma-separated list.
std::string forwarded_list(const Request& request) {
  std::string list;
  auto [first, last] = request.equal_range("X-Forwarded-For");
  for (auto it = first; it != last; ++it) {
    if (!list.empty()) list += ',';
    list += std::string_view(it->value());
  }
  return list;
}

}  // namespace

bool trusted_peer(const std::vector<net::Network>& trusted, const std::string& peer) {
  if (trusted.empty()) return false;
  boost::system::error_code ec;
  auto address = asio::ip::make_address(peer, ec);
  return !ec && trusted_address(trusted, address);
}

std::string forwarded_client(const std::vector<net::Network>& trusted, const std::string& peer, const Request& request) {
  if (!trusted_peer(trusted, peer)) return peer;
  const std::string list = forwarded_list(request);
  std::string client = peer;
  std::string_view rest = list;
  while (!trim(rest).empty()) {
    const auto comma = rest.rfind(',');
    const auto entry = comma == std::string_view::npos ? rest : rest.substr(comma + 1);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    auto address = entry_address(entry);
    if (!address) break;
    client = address->to_string();
    if (!trusted_address(trusted, *address)) break;
  }
  return client;
}

}  // namespace ocigate::server
