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
//
// Limits (issue 17, item 4): each key may make `calls_per_key` calls a
// second (a token bucket holding two seconds' worth); each peer address may
// fail authentication `failures_per_peer` times a second, after which its
// calls with keys not already verified are refused before any lookup; key
// ids that named no key or a revoked one are remembered (the negative
// cache). Precheck applies what needs no database on the gRPC thread, so a
// flood of bad keys neither queues work nor reaches PostgreSQL.
#ifndef LETHE_SERVER_AUTH_H_
#define LETHE_SERVER_AUTH_H_

#include <chrono>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

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
  std::string peer;  // the client's address without its port; "" unknown
};

struct AuthLimits {
  double calls_per_key = 0;      // per second; 0: unlimited
  double failures_per_peer = 0;  // per second; 0: unlimited
};

// A token bucket per name: `rate` tokens a second, at most `burst` held.
// Not thread-safe (Authenticator guards it). At kMaxNames names, idle
// (full) buckets are dropped, and if none was, all.
class RateBuckets {
 public:
  RateBuckets(double rate, double burst) : rate_(rate), burst_(burst) {}
  // False, taking nothing, when `name` has less than one token.
  bool Take(const std::string& name, std::chrono::steady_clock::time_point now);
  // Whether `name` has a token, taking nothing.
  bool Has(const std::string& name, std::chrono::steady_clock::time_point now);
  static constexpr size_t kMaxNames = 65536;

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point last;
  };
  Bucket& Refilled(const std::string& name,
                   std::chrono::steady_clock::time_point now);
  const double rate_;
  const double burst_;
  std::map<std::string, Bucket> buckets_;
};

struct Principal {
  std::string key_id;
  storage::Role role;
  // The key's datasets (storage::ApiKeyRow::dataset_ids); empty: all.
  std::vector<std::string> dataset_ids;
};

class Authenticator {
 public:
  // `log` (may be null) receives the key store's errors: callers are not
  // authenticated yet, so they get a generic message.
  Authenticator(storage::ApiKeyStore* keys, std::chrono::seconds cache_ttl,
                const observability::Logger* log = nullptr,
                AuthLimits limits = {});

  // UNAUTHENTICATED for a missing, malformed, unknown or revoked key;
  // UNAVAILABLE if the key store cannot be reached (without its error text,
  // which names hosts, users and SQL: that goes to the log);
  // RESOURCE_EXHAUSTED when the key is over its rate or the peer over its
  // failures. Counts as one call of the key.
  absl::StatusOr<Principal> Authenticate(const AuthMetadata& md);

  // Authenticate for a call already admitted (a watch stream's polls): no
  // rate is charged.
  absl::StatusOr<Principal> Reauthenticate(const AuthMetadata& md);

  // What can be refused without the database, on the calling thread: a
  // missing or malformed header, a key id in the negative cache, a peer
  // over its failures (unless the key is verified in the cache). nullopt:
  // go on (queue the call).
  std::optional<absl::Status> Precheck(const AuthMetadata& md);

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
    std::vector<std::string> dataset_ids;
    std::chrono::steady_clock::time_point expires;
  };

  // UNAUTHENTICATED if `key_id` is in the negative cache.
  std::optional<absl::Status> KnownBad(const std::string& key_id);
  void RememberBad(const std::string& key_id);
  absl::StatusOr<Principal> Verify(const AuthMetadata& md);
  // `failure` with the peer's failure counted.
  absl::Status Failed(const AuthMetadata& md, absl::Status failure);
  // RESOURCE_EXHAUSTED when the peer is over its failures.
  absl::Status PeerAllowed(const AuthMetadata& md);
  // RESOURCE_EXHAUSTED when the key is over its rate; else takes a token.
  absl::Status ChargeKey(const std::string& key_id);

  storage::ApiKeyStore* keys_;  // not owned
  const std::chrono::seconds ttl_;
  const observability::Logger* log_;
  const AuthLimits limits_;
  std::mutex mu_;
  RateBuckets key_rate_;                // guarded by mu_
  RateBuckets peer_failures_;           // guarded by mu_
  std::map<std::string, Entry> cache_;  // guarded by mu_
  // The negative cache (issue 17, item 4): key ids that named no key or a
  // revoked one, answered without a lookup until the time given, so that a
  // flood of well-formed bogus keys costs no database round trip each. Safe
  // whatever the positive TTL: a random key id is never issued later, and
  // revocation is final. Bounded: at kMaxBadKeys, expired entries go, and
  // if none had expired, all. Guarded by mu_.
  std::map<std::string, std::chrono::steady_clock::time_point> bad_;
};

inline constexpr size_t kMaxBadKeys = 65536;
inline constexpr std::chrono::seconds kBadKeyTtl{300};

}  // namespace lethe::server

#endif  // LETHE_SERVER_AUTH_H_
