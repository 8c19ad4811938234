#pragma once
// A small expected-like result for I/O boundaries. No exceptions on the data path:
// functions that can fail on outside input return Result<T>.

#include <string>
#include <utility>
#include <variant>

namespace ocigate {

// OCI distribution error codes plus a few internal ones. The server maps each to an HTTP
// status and an OCI error JSON body in one place (server/errors).
enum class Errc {
  ok = 0,
  name_invalid,        // 400 NAME_INVALID
  name_unknown,        // 404 NAME_UNKNOWN
  manifest_invalid,    // 400 MANIFEST_INVALID
  manifest_unknown,    // 404 MANIFEST_UNKNOWN
  blob_unknown,        // 404 BLOB_UNKNOWN
  digest_invalid,      // 400 DIGEST_INVALID
  size_invalid,        // 400 SIZE_INVALID (e.g. manifest over the limit)
  range_invalid,       // 416 RANGE_NOT_SATISFIABLE
  unsupported,         // 405 UNSUPPORTED
  unauthorized,        // 401 UNAUTHORIZED
  denied,              // 403 DENIED
  too_many_requests,   // 429 TOOMANYREQUESTS
  upstream_error,      // 502 upstream failed or answered garbage
  upstream_timeout,    // 504 upstream did not answer in time
  upstream_busy,       // 503 UNAVAILABLE: no upstream fetch slot within fetch_slot_timeout (Retry-After)
  digest_mismatch,     // upstream bytes did not match their digest (502 to the client)
  storage_error,       // local cache failure
  config_invalid,      // configuration refused
  cancelled,           // shutdown or client gone
  internal,            // broken invariant
};

struct Error {
  Errc code = Errc::internal;
  std::string message;
  // Seconds, for too_many_requests when the upstream said so, and for upstream_busy; 0 = unknown.
  unsigned retry_after = 0;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                 // NOLINT: implicit on purpose
  Result(Error error) : v_(std::move(error)) {}             // NOLINT
  Result(Errc code, std::string message) : v_(Error{code, std::move(message)}) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void> equivalent.
struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() { return Unit{}; }

}  // namespace ocigate
