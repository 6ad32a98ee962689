#include "cert/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cert/encoding.h"
#include "cert/json.h"

namespace lethe::cert {
namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using CtxPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

std::shared_ptr<EVP_PKEY> Own(EVP_PKEY* pkey) {
  return std::shared_ptr<EVP_PKEY>(pkey, EVP_PKEY_free);
}

std::string RawPublic(EVP_PKEY* pkey) {
  unsigned char buf[kEd25519PublicKeyBytes];
  size_t len = sizeof(buf);
  if (EVP_PKEY_get_raw_public_key(pkey, buf, &len) != 1) return {};
  return std::string(reinterpret_cast<const char*>(buf), len);
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  // BIO_get_mem_data is BIO_ctrl, which returns long.
  const long len = BIO_get_mem_data(bio, &data);  // NOLINT(google-runtime-int)
  return std::string(data, static_cast<size_t>(len));
}

bool ValidKeyName(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c <= 0x20 || c == '+' || c == 0x7f) return false;
  }
  return true;
}

// Reads the "# key: value" lines before the PEM block.
absl::StatusOr<KeyInfo> ParseInfo(std::string_view pem) {
  KeyInfo info;
  for (std::string_view line : Split(pem, '\n')) {
    if (line.starts_with("-----BEGIN")) break;
    if (!line.starts_with("#")) continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string key(Trim(line.substr(1, colon - 1)));
    const std::string value(Trim(line.substr(colon + 1)));
    if (key == "name") {
      if (!ValidKeyName(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("key name \"", value,
                         "\" must be non-empty, without spaces or '+'"));
      }
      info.name = value;
    } else if (key == "not-before" || key == "not-after") {
      auto t = ParseTime(value);
      if (!t) {
        return absl::InvalidArgumentError(
            absl::StrCat(key, ": \"", value, "\" is not an RFC 3339 time"));
      }
      (key == "not-before" ? info.not_before_us : info.not_after_us) = *t;
    }
  }
  if (info.not_before_us != 0 && info.not_after_us != 0 &&
      info.not_after_us <= info.not_before_us) {
    return absl::InvalidArgumentError("not-after must be after not-before");
  }
  return info;
}

std::string InfoLines(const KeyInfo& info) {
  std::string out = absl::StrCat("# name: ", info.name, "\n");
  if (info.not_before_us != 0) {
    absl::StrAppend(&out, "# not-before: ", FormatTime(info.not_before_us),
                    "\n");
  }
  if (info.not_after_us != 0) {
    absl::StrAppend(&out, "# not-after: ", FormatTime(info.not_after_us), "\n");
  }
  return out;
}

absl::Status WriteNew(const std::string& path, const std::string& data,
                      mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat(path, " exists; remove it or choose another --out"));
    }
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", path));
  }
  // Whatever the umask, the private key is readable by its owner only.
  ::fchmod(fd, mode);
  const ssize_t n = ::write(fd, data.data(), data.size());
  const bool ok = n == static_cast<ssize_t>(data.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PublicKey> PublicKey::FromRaw(std::string_view raw) {
  if (raw.size() != kEd25519PublicKeyBytes) {
    return absl::InvalidArgumentError("an Ed25519 public key has 32 bytes");
  }
  PublicKey key;
  key.raw_ = std::string(raw);
  key.key_id_ = HexEncode(Sha256(raw));
  return key;
}

absl::StatusOr<PublicKey> PublicKey::FromPem(std::string_view pem) {
  auto info = ParseInfo(pem);
  if (!info.ok()) return info.status();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
             BIO_free);
  auto pkey = Own(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey || EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        "not a PEM Ed25519 public key (-----BEGIN PUBLIC KEY-----)");
  }
  auto key = FromRaw(RawPublic(pkey.get()));
  if (key.ok()) key->info_ = *std::move(info);
  return key;
}

std::string PublicKey::Pem() const {
  auto pkey = Own(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr,
      reinterpret_cast<const unsigned char*>(raw_.data()), raw_.size()));
  BioPtr bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!pkey || PEM_write_bio_PUBKEY(bio.get(), pkey.get()) != 1) std::abort();
  return InfoLines(info_) + BioContents(bio.get());
}

std::string PublicKey::Jwk() const {
  return Json(Json::Object{{"crv", "Ed25519"},
                           {"kid", key_id_},
                           {"kty", "OKP"},
                           {"x", Base64UrlEncode(raw_)}})
      .Dump();
}

bool PublicKey::Verify(std::string_view message,
                       std::string_view signature) const {
  if (signature.size() != kEd25519SignatureBytes) return false;
  auto pkey = Own(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr,
      reinterpret_cast<const unsigned char*>(raw_.data()), raw_.size()));
  if (!pkey) return false;
  CtxPtr ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr,
                                   pkey.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(
             ctx.get(),
             reinterpret_cast<const unsigned char*>(signature.data()),
             signature.size(),
             reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

absl::StatusOr<PrivateKey> PrivateKey::FromPkey(EVP_PKEY* raw_pkey) {
  auto pkey = Own(raw_pkey);
  if (!pkey || EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        "not a PEM Ed25519 private key (-----BEGIN PRIVATE KEY-----)");
  }
  auto pub = PublicKey::FromRaw(RawPublic(pkey.get()));
  if (!pub.ok()) return pub.status();
  PrivateKey key;
  key.pkey_ = std::move(pkey);
  key.public_key_ = *std::move(pub);
  return key;
}

PrivateKey PrivateKey::Generate() {
  EVP_PKEY* pkey = nullptr;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr), EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_keygen(ctx.get(), &pkey) != 1) {
    std::abort();  // Only a broken CSPRNG fails here; nothing safe follows.
  }
  return *FromPkey(pkey);
}

absl::StatusOr<PrivateKey> PrivateKey::FromSeed(std::string_view seed) {
  if (seed.size() != 32) {
    return absl::InvalidArgumentError("an Ed25519 secret key has 32 bytes");
  }
  return FromPkey(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr,
      reinterpret_cast<const unsigned char*>(seed.data()), seed.size()));
}

absl::StatusOr<PrivateKey> PrivateKey::FromPem(std::string_view pem) {
  auto info = ParseInfo(pem);
  if (!info.ok()) return info.status();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
             BIO_free);
  auto key =
      FromPkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key.ok()) key->set_info(*std::move(info));
  return key;
}

std::string PrivateKey::Sign(std::string_view message) const {
  CtxPtr ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char sig[kEd25519SignatureBytes];
  size_t len = sizeof(sig);
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) !=
          1 ||
      EVP_DigestSign(ctx.get(), sig, &len,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1) {
    std::abort();  // Ed25519 signing of a loaded key cannot fail.
  }
  return std::string(reinterpret_cast<const char*>(sig), len);
}

std::string PrivateKey::Pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()), BIO_free);
  if (PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0,
                               nullptr, nullptr) != 1) {
    std::abort();
  }
  return InfoLines(info()) + BioContents(bio.get());
}

absl::StatusOr<KeyRing> KeyRing::LoadFiles(
    const std::vector<std::string>& paths) {
  std::vector<PrivateKey> keys;
  std::set<std::string> ids;
  for (const std::string& path : paths) {
    auto pem = ReadFile(path);
    if (!pem.ok()) return absl::InvalidArgumentError(pem.status().message());
    auto key = PrivateKey::FromPem(*pem);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", key.status().message()));
    }
    if (!ids.insert(key->public_key().key_id()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": the same key is given twice"));
    }
    keys.push_back(*std::move(key));
  }
  return KeyRing(std::move(keys));
}

absl::StatusOr<std::vector<PublicKey>> LoadPublicKeyFiles(
    const std::vector<std::string>& paths) {
  std::vector<PublicKey> keys;
  std::set<std::string> ids;
  for (const std::string& path : paths) {
    auto pem = ReadFile(path);
    if (!pem.ok()) return absl::InvalidArgumentError(pem.status().message());
    if (absl::StrContains(*pem, "PRIVATE KEY")) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": a private key; give the public key (the .pub file)"));
    }
    auto key = PublicKey::FromPem(*pem);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", key.status().message()));
    }
    if (!ids.insert(key->key_id()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": the same key is given twice"));
    }
    keys.push_back(*std::move(key));
  }
  return keys;
}

std::vector<PublicKey> KeyRing::PublicKeys() const {
  std::vector<PublicKey> out;
  for (const PrivateKey& k : keys_) out.push_back(k.public_key());
  return out;
}

absl::StatusOr<const PrivateKey*> KeyRing::SignerAt(int64_t t_us) const {
  const PrivateKey* best = nullptr;
  for (const PrivateKey& k : keys_) {
    if (!k.info().ValidAt(t_us)) continue;
    if (best == nullptr ||
        k.info().not_before_us > best->info().not_before_us) {
      best = &k;
    }
  }
  if (best == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no signing key is valid at ", FormatTime(t_us), " (", keys_.size(),
        " configured): add a current key to --signing-keys"));
  }
  return best;
}

const PublicKey* FindKey(std::span<const PublicKey> keys,
                         std::string_view key_id) {
  for (const PublicKey& k : keys) {
    if (k.key_id() == key_id) return &k;
  }
  return nullptr;
}

absl::StatusOr<PrivateKey> GenerateKeyFiles(const std::string& prefix,
                                            const KeyInfo& info) {
  if (!ValidKeyName(info.name)) {
    return absl::InvalidArgumentError(
        "the key name must be non-empty, without spaces or '+'");
  }
  PrivateKey key = PrivateKey::Generate();
  key.set_info(info);
  if (auto st = WriteNew(prefix + ".key", key.Pem(), 0600); !st.ok()) {
    return st;
  }
  if (auto st = WriteNew(prefix + ".pub", key.public_key().Pem(), 0644);
      !st.ok()) {
    return st;
  }
  return key;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

}  // namespace lethe::cert
