// Authentication and authorisation of API calls.
//
// Each call carries `authorization: Bearer lethe_<key id>_<secret>`. The
// key id finds the stored row; the secret is checked against its SHA-256
// in constant time. Verified keys are cached for `cache_ttl` so that a
// busy client costs no database round trip per call; a revoked key stops
// working within that time. Thread-safe.
#ifndef LETHE_SERVER_AUTH_H_
#define LETHE_SERVER_AUTH_H_

#include <chrono>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>

#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "storage/api_key_store.h"

namespace lethe::server {

struct Principal {
  std::string key_id;
  storage::Role role;
};

class Authenticator {
 public:
  Authenticator(storage::ApiKeyStore* keys, std::chrono::seconds cache_ttl)
      : keys_(keys), ttl_(cache_ttl) {}

  // UNAUTHENTICATED for a missing, malformed, unknown or revoked key;
  // UNAVAILABLE if the key store cannot be reached.
  absl::StatusOr<Principal> Authenticate(
      const grpc::ServerContextBase& ctx);

  // Authenticates, then PERMISSION_DENIED unless the key's role is admin or
  // one of `allowed`.
  absl::StatusOr<Principal> Authorize(
      const grpc::ServerContextBase& ctx,
      std::initializer_list<storage::Role> allowed);

 private:
  struct Entry {
    std::string secret_sha256;
    storage::Role role;
    std::chrono::steady_clock::time_point expires;
  };

  storage::ApiKeyStore* keys_;  // not owned
  const std::chrono::seconds ttl_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // guarded by mu_
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_AUTH_H_
