#include "server/auth.h"

#include "absl/strings/str_cat.h"
#include "storage/hash.h"

namespace lethe::server {
namespace {

constexpr char kBearer[] = "Bearer ";

absl::Status Unauthenticated(const std::string& why) {
  return absl::UnauthenticatedError(absl::StrCat(
      why, "; send `authorization: Bearer <API key>` (create keys with "
           "`lethe admin create-key`)"));
}

}  // namespace

absl::StatusOr<Principal> Authenticator::Authenticate(
    const grpc::ServerContextBase& ctx) {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return Unauthenticated("missing API key");
  const std::string header(it->second.data(), it->second.size());
  if (header.rfind(kBearer, 0) != 0) {
    return Unauthenticated("authorization is not a Bearer token");
  }
  auto token = storage::ParseApiToken(
      std::string_view(header).substr(sizeof(kBearer) - 1));
  if (!token.ok()) return Unauthenticated("malformed API key");
  const std::string secret_hash = storage::Sha256(token->secret);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    auto hit = cache_.find(token->key_id);
    if (hit != cache_.end() && hit->second.expires > now) {
      if (!storage::SecureEquals(hit->second.secret_sha256, secret_hash)) {
        return Unauthenticated("unknown or revoked API key");
      }
      return Principal{token->key_id, hit->second.role};
    }
  }
  auto row = keys_->Lookup(token->key_id);
  if (absl::IsNotFound(row.status())) {
    return Unauthenticated("unknown or revoked API key");
  }
  if (!row.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot check the API key: ", row.status().message()));
  }
  if (row->revoked || !storage::SecureEquals(row->secret_sha256, secret_hash)) {
    return Unauthenticated("unknown or revoked API key");
  }
  std::lock_guard lock(mu_);
  cache_[token->key_id] = Entry{row->secret_sha256, row->role, now + ttl_};
  return Principal{token->key_id, row->role};
}

absl::StatusOr<Principal> Authenticator::Authorize(
    const grpc::ServerContextBase& ctx,
    std::initializer_list<storage::Role> allowed) {
  auto principal = Authenticate(ctx);
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
