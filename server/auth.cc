#include "server/auth.h"

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

}  // namespace

AuthMetadata AuthMetadata::From(const grpc::ServerContextBase& ctx) {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return {};
  return {std::string(it->second.data(), it->second.size())};
}

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
  return Principal{key.key_id, hit->second.role};
}

absl::StatusOr<Principal> Authenticator::Authenticate(const AuthMetadata& md) {
  auto key = Parse(md);
  if (!key.ok()) return key.status();
  if (auto cached = FromCache(*key)) return *std::move(cached);
  const auto now = std::chrono::steady_clock::now();
  auto row = keys_->Lookup(key->key_id);
  if (absl::IsNotFound(row.status())) {
    return Unauthenticated("unknown or revoked API key");
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
  if (row->revoked ||
      !storage::SecureEquals(row->secret_sha256, key->secret_sha256)) {
    return Unauthenticated("unknown or revoked API key");
  }
  std::lock_guard lock(mu_);
  cache_[key->key_id] = Entry{row->secret_sha256, row->role, now + ttl_};
  return Principal{key->key_id, row->role};
}

absl::StatusOr<Principal> Authenticator::Authorize(
    const AuthMetadata& md, std::initializer_list<storage::Role> allowed) {
  return CheckRole(Authenticate(md), allowed);
}

std::optional<absl::StatusOr<Principal>> Authenticator::AuthorizeCached(
    const AuthMetadata& md, std::initializer_list<storage::Role> allowed) {
  auto key = Parse(md);
  if (!key.ok()) return key.status();
  auto cached = FromCache(*key);
  if (!cached) return std::nullopt;
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
