#include "ocigate/common/network.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace ocigate::net {

namespace asio = boost::asio;

namespace {

// The address's bytes: an IPv4 address in the first 4.
std::array<unsigned char, 16> bytes_of(const asio::ip::address& address) {
  if (!address.is_v4()) return address.to_v6().to_bytes();
  std::array<unsigned char, 16> out{};
  const auto v4 = address.to_v4().to_bytes();
  std::copy(v4.begin(), v4.end(), out.begin());
  return out;
}

// Do the first prefix bits of a and b agree?
bool same_prefix(const std::array<unsigned char, 16>& a, const std::array<unsigned char, 16>& b, unsigned prefix) {
  const unsigned whole = prefix / 8, rest = prefix % 8;
  for (unsigned i = 0; i < whole; ++i) {
    if (a[i] != b[i]) return false;
  }
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xffu << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

// Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on "'" + std::string(...).
Error invalid(std::string_view text, const std::string& why) {
  std::string message = "'";
  message.append(text).append("' ").append(why);
  return Error{Errc::config_invalid, std::move(message)};
}

}  // namespace

asio::ip::address unmapped(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  return address;
}

Result<Network> Network::parse(std::string_view text) {
  const auto slash = text.find('/');
  boost::system::error_code ec;
  const auto base = asio::ip::make_address(std::string(text.substr(0, slash)), ec);
  if (ec) return invalid(text, "is not an IP address or a network like 10.0.0.0/8 or fd00::/8");
  if (base.is_v6() && base.to_v6().is_v4_mapped()) {
    return invalid(text, "is an IPv4-mapped address: write the IPv4 network instead");
  }
  const unsigned width = base.is_v4() ? 32 : 128;
  unsigned prefix = width;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() || prefix > width) {
      return invalid(text, "has a prefix length that is not 0-" + std::to_string(width));
    }
  }
  const auto given = bytes_of(base);
  std::array<unsigned char, 16> masked{};
  for (unsigned bit = 0; bit < prefix; ++bit) masked[bit / 8] |= given[bit / 8] & (0x80u >> (bit % 8));
  if (masked != given) {
    return invalid(text, "sets bits past its /" + std::to_string(prefix) + " prefix");
  }
  return Network(base, prefix, std::string(text));
}

bool Network::contains(const asio::ip::address& address) const {
  const auto plain = unmapped(address);
  if (plain.is_v4() != base_.is_v4()) return false;
  return same_prefix(bytes_of(base_), bytes_of(plain), prefix_);
}

}  // namespace ocigate::net
