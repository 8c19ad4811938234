// OSV record JSON as a database file or an all.zip entry holds it: parsing must end in a record
// or an error, never a crash; a parsed record is then rated, loaded into a database and matched
// against a few inventories, so the evaluation sees whatever ranges and versions the input has.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ocigate/vuln/database.hpp"
#include "ocigate/vuln/osv.hpp"

namespace {

// parse_record reads the text without a document; record_from_json reads the document: both must
// give the same record, or the same error.
void same_as_document(std::string_view text, const ocigate::Result<ocigate::vuln::osv::Record>& read) {
  auto document = nlohmann::json::parse(text, nullptr, false);
  if (document.is_discarded()) {
    if (read || read.error().message != "OSV record: not valid JSON") std::abort();
    return;
  }
  auto from_document = ocigate::vuln::osv::record_from_json(document);
  if (read.ok() != from_document.ok()) std::abort();
  if (read ? !(*read == *from_document) : read.error().message != from_document.error().message) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ocigate::vuln;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto record = osv::parse_record(text);
  same_as_document(text, record);
  if (!record) return 0;
  for (const auto& a : record->affected) {
    (void)osv::rate(*record, a);
    for (Scheme scheme : {Scheme::dpkg, Scheme::apk, Scheme::rpm}) {
      for (const char* v : {"1.0-1", "0", "2:3.4~rc1-1", "1.2.3-r4"}) {
        (void)osv::affects(a, scheme, v);
        (void)osv::fixed_version(a, scheme, v);
      }
    }
  }
  auto db = Database::from_records({*record});
  using ocigate::policy::Package;
  for (const auto* os : {"debian", "ubuntu", "alpine", "rhel"}) {
    for (const auto& a : record->affected) {
      auto distro = distro_of_ecosystem(a.ecosystem);
      if (!distro) continue;
      std::vector<Package> inventory = {Package(a.name, "1.0-1", scheme_text(distro->scheme)),
                                        Package("x", "0.1-r0", "apk", a.name)};
      (void)db->match({os, distro->key.substr(distro->key.find(':') + 1)}, inventory);
    }
  }
  return 0;
}
