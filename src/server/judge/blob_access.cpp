#include "judge/blob_access.hpp"

#include "ocigate/server/log.hpp"
#include "records.hpp"

namespace ocigate::server {

void BlobAccess::allow(const std::vector<std::string>& digests) {
  for (const auto& digest : digests) {
    if (!store_.get_record(records::allowed_blob, digest)) (void)store_.put_record(records::allowed_blob, digest, "1");
  }
}

bool BlobAccess::allowed(const std::string& digest) {
  auto current = policy_.get();
  if (current->blob_access == policy::BlobAccess::any) return true;
  if (store_.get_record(records::allowed_blob, digest)) return true;
  metrics_.record_blob_denied();
  // Audit mode blocks nothing: the request is counted and logged, and served.
  if (current->mode == policy::Mode::audit) {
    log::info("blob not referenced by an allowed image (audit mode: served)", {{"digest", digest}});
    return true;
  }
  return false;
}

}  // namespace ocigate::server
