// Version strings of each scheme: the first byte picks dpkg, apk or rpm, the rest is split at
// the first NUL into two versions. Parsing is an error or a value; comparison must be a total
// order's answer (antisymmetric) and never crash, for valid and invalid strings alike.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ocigate/vuln/version.hpp"

namespace {
int sign(int v) { return v < 0 ? -1 : (v > 0 ? 1 : 0); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ocigate::vuln;
  if (size == 0) return 0;
  Scheme scheme = static_cast<Scheme>(data[0] % 3);
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  auto nul = rest.find('\0');
  std::string_view a = rest.substr(0, nul), b = nul == std::string_view::npos ? rest : rest.substr(nul + 1);
  (void)dpkg::parse(a);
  (void)rpm::parse(a);
  (void)apk::valid(a);
  if (sign(dpkg::compare_part(a, b)) != -sign(dpkg::compare_part(b, a))) std::abort();
  if (sign(apk::compare(a, b)) != -sign(apk::compare(b, a))) std::abort();
  if (sign(rpm::vercmp(a, b)) != -sign(rpm::vercmp(b, a))) std::abort();
  auto ab = compare(scheme, a, b);
  auto ba = compare(scheme, b, a);
  if (ab.ok() != ba.ok()) std::abort();
  if (ab.ok() && sign(*ab) != -sign(*ba)) std::abort();
  if (ab.ok() && sign(compare_valid(scheme, a, b)) != sign(*ab)) std::abort();
  if (valid(scheme, a) && compare(scheme, a, a).value() != 0) std::abort();
  return 0;
}
