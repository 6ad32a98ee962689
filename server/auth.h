// Authentication and authorisation of API calls.
//
// Each call carries `authorization: Bearer lethe_<key id>_<secret>`. The
// key id finds the stored row; the secret is checked against its SHA-256
// in constant time. Verified keys are cached for `cache_ttl` so that a
// busy client costs no database round trip per call; a revoked key stops
// working within that time. Thread-safe.
//
// The methods take an AuthMetadata, a copy of the header, never a call's
// context: handlers authenticate on executor threads, and gRPC frees the
// context of a cancelled call as soon as its reactor is done, which may be
// before a queued task runs.
#ifndef LETHE_SERVER_AUTH_H_
#define LETHE_SERVER_AUTH_H_

#include <chrono>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "observability/log.h"
#include "storage/api_key_store.h"

namespace lethe::server {

// What authentication reads from a call. Copy it with From() on the gRPC
// thread that runs the handler or reactor method, while the context is
// certainly alive; the copy may then go anywhere.
struct AuthMetadata {
  static AuthMetadata From(const grpc::ServerContextBase& ctx);

  std::optional<std::string> authorization;  // nullopt: no such header
};

struct Principal {
  std::string key_id;
  storage::Role role;
};

class Authenticator {
 public:
  // `log` (may be null) receives the key store's errors: callers are not
  // authenticated yet, so they get a generic message.
  Authenticator(storage::ApiKeyStore* keys, std::chrono::seconds cache_ttl,
                const observability::Logger* log = nullptr)
      : keys_(keys), ttl_(cache_ttl), log_(log) {}

  // UNAUTHENTICATED for a missing, malformed, unknown or revoked key;
  // UNAVAILABLE if the key store cannot be reached (without its error text,
  // which names hosts, users and SQL: that goes to the log).
  absl::StatusOr<Principal> Authenticate(const AuthMetadata& md);

  // Authenticates, then PERMISSION_DENIED unless the key's role is admin or
  // one of `allowed`.
  absl::StatusOr<Principal> Authorize(
      const AuthMetadata& md, std::initializer_list<storage::Role> allowed);

  // As Authorize, without touching the database: nullopt when the key is
  // not in the cache (or its entry expired), and the caller must call
  // Authorize from a thread that may block.
  std::optional<absl::StatusOr<Principal>> AuthorizeCached(
      const AuthMetadata& md, std::initializer_list<storage::Role> allowed);

 private:
  struct Presented {  // what the call's authorization header names
    std::string key_id;
    std::string secret_sha256;
  };
  // UNAUTHENTICATED for a missing or malformed header.
  static absl::StatusOr<Presented> Parse(const AuthMetadata& md);
  // nullopt on a miss; UNAUTHENTICATED when the secret does not match.
  std::optional<absl::StatusOr<Principal>> FromCache(const Presented& key);
  static absl::StatusOr<Principal> CheckRole(
      absl::StatusOr<Principal> principal,
      std::initializer_list<storage::Role> allowed);

  struct Entry {
    std::string secret_sha256;
    storage::Role role;
    std::chrono::steady_clock::time_point expires;
  };

  storage::ApiKeyStore* keys_;  // not owned
  const std::chrono::seconds ttl_;
  const observability::Logger* log_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // guarded by mu_
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_AUTH_H_
