#include "server/auth.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/hash.h"

namespace lethe::server {
namespace {

constexpr char kBearer[] = "Bearer ";

absl::Status Unauthenticated(const std::string& why) {
  return absl::UnauthenticatedError(
      absl::StrCat(why,
                   "; send `authorization: Bearer <API key>` (create keys with "
                   "`lethe admin create-key`)"));
}

// "ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7", "ipv6:[::1]:5" -> "ipv6:[::1]";
// other forms (unix sockets) as they are.
std::string PeerAddress(const std::string& peer) {
  if (!absl::StartsWith(peer, "ipv4:") && !absl::StartsWith(peer, "ipv6:")) {
    return peer;
  }
  const size_t colon = peer.rfind(':');
  return colon <= 4 ? peer : peer.substr(0, colon);
}

}  // namespace

AuthMetadata AuthMetadata::From(const grpc::ServerContextBase& ctx) {
  AuthMetadata out;
  out.peer = PeerAddress(ctx.peer());
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it != md.end()) {
    out.authorization = std::string(it->second.data(), it->second.size());
  }
  return out;
}

RateBuckets::Bucket& RateBuckets::Refilled(
    const std::string& name, std::chrono::steady_clock::time_point now) {
  auto it = buckets_.find(name);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxNames) {
      std::erase_if(buckets_, [&](const auto& e) {
        const std::chrono::duration<double> idle = now - e.second.last;
        return e.second.tokens + rate_ * idle.count() >= burst_;
      });
      if (buckets_.size() >= kMaxNames) buckets_.clear();
    }
    return buckets_.emplace(name, Bucket{burst_, now}).first->second;
  }
  Bucket& b = it->second;
  const std::chrono::duration<double> dt = now - b.last;
  b.tokens = std::min(burst_, b.tokens + rate_ * dt.count());
  b.last = now;
  return b;
}

bool RateBuckets::Take(const std::string& name,
                       std::chrono::steady_clock::time_point now) {
  Bucket& b = Refilled(name, now);
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

bool RateBuckets::Has(const std::string& name,
                      std::chrono::steady_clock::time_point now) {
  return Refilled(name, now).tokens >= 1;
}

Authenticator::Authenticator(storage::ApiKeyStore* keys,
                             std::chrono::seconds cache_ttl,
                             const observability::Logger* log,
                             AuthLimits limits)
    : keys_(keys),
      ttl_(cache_ttl),
      log_(log),
      limits_(limits),
      key_rate_(limits.calls_per_key, std::max(1.0, 2 * limits.calls_per_key)),
      peer_failures_(limits.failures_per_peer,
                     std::max(1.0, 5 * limits.failures_per_peer)) {}

absl::StatusOr<Authenticator::Presented> Authenticator::Parse(
    const AuthMetadata& md) {
  if (!md.authorization) return Unauthenticated("missing API key");
  const std::string_view header(*md.authorization);
  if (header.rfind(kBearer, 0) != 0) {
    return Unauthenticated("authorization is not a Bearer token");
  }
  auto token = storage::ParseApiToken(header.substr(sizeof(kBearer) - 1));
  if (!token.ok()) return Unauthenticated("malformed API key");
  return Presented{token->key_id, storage::Sha256(token->secret)};
}

std::optional<absl::StatusOr<Principal>> Authenticator::FromCache(
    const Presented& key) {
  std::lock_guard lock(mu_);
  auto hit = cache_.find(key.key_id);
  if (hit == cache_.end() ||
      hit->second.expires <= std::chrono::steady_clock::now()) {
    return std::nullopt;
  }
  if (!storage::SecureEquals(hit->second.secret_sha256, key.secret_sha256)) {
    return Unauthenticated("unknown or revoked API key");
  }
  return Principal{key.key_id, hit->second.role, hit->second.dataset_ids};
}

std::optional<absl::Status> Authenticator::KnownBad(const std::string& key_id) {
  std::lock_guard lock(mu_);
  auto it = bad_.find(key_id);
  if (it == bad_.end()) return std::nullopt;
  if (it->second <= std::chrono::steady_clock::now()) {
    bad_.erase(it);
    return std::nullopt;
  }
  return Unauthenticated("unknown or revoked API key");
}

void Authenticator::RememberBad(const std::string& key_id) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  if (bad_.size() >= kMaxBadKeys) {
    std::erase_if(bad_, [&](const auto& e) { return e.second <= now; });
    if (bad_.size() >= kMaxBadKeys) bad_.clear();
  }
  bad_[key_id] = now + kBadKeyTtl;
}

absl::Status Authenticator::Failed(const AuthMetadata& md,
                                   absl::Status failure) {
  if (limits_.failures_per_peer > 0 && !md.peer.empty()) {
    std::lock_guard lock(mu_);
    (void)peer_failures_.Take(md.peer, std::chrono::steady_clock::now());
  }
  return failure;
}

absl::Status Authenticator::PeerAllowed(const AuthMetadata& md) {
  if (limits_.failures_per_peer <= 0 || md.peer.empty()) {
    return absl::OkStatus();
  }
  std::lock_guard lock(mu_);
  if (peer_failures_.Has(md.peer, std::chrono::steady_clock::now())) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(
      "too many failed authentications from this address; retry later with "
      "a valid API key");
}

absl::Status Authenticator::ChargeKey(const std::string& key_id) {
  if (limits_.calls_per_key <= 0) return absl::OkStatus();
  std::lock_guard lock(mu_);
  if (key_rate_.Take(key_id, std::chrono::steady_clock::now())) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "API key ", key_id, " is over its rate limit of ", limits_.calls_per_key,
      " calls a second (--rate-limit-per-key); retry with backoff"));
}

std::optional<absl::Status> Authenticator::Precheck(const AuthMetadata& md) {
  auto key = Parse(md);
  if (!key.ok()) return Failed(md, key.status());
  if (auto cached = FromCache(*key)) {
    if (!cached->ok()) return Failed(md, cached->status());
    return std::nullopt;
  }
  if (auto bad = KnownBad(key->key_id)) return Failed(md, *bad);
  if (auto st = PeerAllowed(md); !st.ok()) return st;
  return std::nullopt;
}

absl::StatusOr<Principal> Authenticator::Verify(const AuthMetadata& md) {
  auto key = Parse(md);
  if (!key.ok()) return Failed(md, key.status());
  if (auto cached = FromCache(*key)) {
    if (!cached->ok()) return Failed(md, cached->status());
    return *std::move(cached);
  }
  if (auto bad = KnownBad(key->key_id)) return Failed(md, *bad);
  if (auto st = PeerAllowed(md); !st.ok()) return st;
  const auto now = std::chrono::steady_clock::now();
  auto row = keys_->Lookup(key->key_id);
  if (absl::IsNotFound(row.status())) {
    RememberBad(key->key_id);
    return Failed(md, Unauthenticated("unknown or revoked API key"));
  }
  if (!row.ok()) {
    if (log_ != nullptr) {
      log_->Warn({}, "API key lookup failed",
                 {{"key_id", key->key_id},
                  {"error", std::string(row.status().ToString())}});
    }
    return absl::UnavailableError(
        "cannot check the API key now (the key store is unreachable); "
        "retry later");
  }
  if (row->revoked) {
    RememberBad(key->key_id);
    return Failed(md, Unauthenticated("unknown or revoked API key"));
  }
  if (!storage::SecureEquals(row->secret_sha256, key->secret_sha256)) {
    return Failed(md, Unauthenticated("unknown or revoked API key"));
  }
  std::lock_guard lock(mu_);
  cache_[key->key_id] =
      Entry{row->secret_sha256, row->role, row->dataset_ids, now + ttl_};
  return Principal{key->key_id, row->role, row->dataset_ids};
}

absl::StatusOr<Principal> Authenticator::Authenticate(const AuthMetadata& md) {
  auto principal = Verify(md);
  if (!principal.ok()) return principal;
  if (auto st = ChargeKey(principal->key_id); !st.ok()) return st;
  return principal;
}

absl::StatusOr<Principal> Authenticator::Reauthenticate(
    const AuthMetadata& md) {
  return Verify(md);
}

absl::StatusOr<Principal> Authenticator::Authorize(
    const AuthMetadata& md, std::initializer_list<storage::Role> allowed) {
  return CheckRole(Authenticate(md), allowed);
}

std::optional<absl::StatusOr<Principal>> Authenticator::AuthorizeCached(
    const AuthMetadata& md, std::initializer_list<storage::Role> allowed) {
  auto key = Parse(md);
  if (!key.ok()) return Failed(md, key.status());
  auto cached = FromCache(*key);
  if (!cached) {
    if (auto bad = KnownBad(key->key_id)) {
      return absl::StatusOr<Principal>(Failed(md, *bad));
    }
    if (auto st = PeerAllowed(md); !st.ok()) {
      return absl::StatusOr<Principal>(st);
    }
    return std::nullopt;
  }
  if (!cached->ok())
    return absl::StatusOr<Principal>(Failed(md, cached->status()));
  if (auto st = ChargeKey((*cached)->key_id); !st.ok()) {
    return absl::StatusOr<Principal>(st);
  }
  return CheckRole(*std::move(cached), allowed);
}

absl::StatusOr<Principal> Authenticator::CheckRole(
    absl::StatusOr<Principal> principal,
    std::initializer_list<storage::Role> allowed) {
  if (!principal.ok()) return principal;
  if (principal->role == storage::Role::kAdmin) return principal;
  for (storage::Role r : allowed) {
    if (principal->role == r) return principal;
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "API key ", principal->key_id, " has role '",
      storage::RoleName(principal->role), "', which may not make this call"));
}

}  // namespace lethe::server
