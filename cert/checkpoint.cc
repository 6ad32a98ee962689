#include "cert/checkpoint.h"

#include <charconv>

#include "absl/strings/str_cat.h"
#include "cert/encoding.h"

namespace lethe::cert {
namespace {

constexpr std::string_view kSigPrefix = "\xe2\x80\x94 ";  // U+2014, space
constexpr char kEd25519Type = 0x01;

absl::Status Malformed(std::string_view what) {
  std::string msg = "checkpoint: ";
  msg.append(what);
  return absl::InvalidArgumentError(msg);
}

}  // namespace

std::string Checkpoint::Body() const {
  return absl::StrCat(origin, "\n", size, "\n", Base64Encode(root_hash), "\n");
}

absl::StatusOr<Checkpoint> Checkpoint::ParseBody(std::string_view body) {
  if (body.empty() || body.back() != '\n') return Malformed("no final newline");
  const std::vector<std::string_view> lines =
      Split(body.substr(0, body.size() - 1), '\n');
  if (lines.size() != 3) {
    return Malformed("expected origin, size and root hash lines");
  }
  Checkpoint cp;
  cp.origin = std::string(lines[0]);
  if (cp.origin.empty()) return Malformed("empty origin");
  const std::string_view size = lines[1];
  auto res = std::from_chars(size.data(), size.data() + size.size(), cp.size);
  if (size.empty() || res.ec != std::errc() ||
      res.ptr != size.data() + size.size() ||
      (size.size() > 1 && size[0] == '0')) {
    return Malformed("the tree size is not a decimal number");
  }
  auto root = Base64Decode(lines[2]);
  if (!root || root->size() != kSha256Bytes) {
    return Malformed("the root hash is not 32 bytes of base64");
  }
  cp.root_hash = *std::move(root);
  return cp;
}

std::string NoteKeyId(std::string_view name, const PublicKey& key) {
  std::string data(name);
  data.push_back('\n');
  data.push_back(kEd25519Type);
  data.append(key.raw());
  return Sha256(data).substr(0, 4);
}

std::string VerifierKey(std::string_view name, const PublicKey& key) {
  std::string out(name);
  absl::StrAppend(&out, "+", HexEncode(NoteKeyId(name, key)), "+",
                  Base64Encode(std::string(1, kEd25519Type) + key.raw()));
  return out;
}

absl::StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint,
                                           const PrivateKey& key) {
  if (checkpoint.origin.empty() ||
      checkpoint.origin.find('\n') != std::string::npos) {
    return Malformed("the origin must be one non-empty line");
  }
  if (checkpoint.root_hash.size() != kSha256Bytes) {
    return Malformed("the root hash must be 32 bytes");
  }
  const std::string body = checkpoint.Body();
  const std::string& name = key.info().name;
  const std::string sig = NoteKeyId(name, key.public_key()) + key.Sign(body);
  std::string note = body;
  note.append("\n");
  note.append(kSigPrefix);
  absl::StrAppend(&note, name, " ", Base64Encode(sig), "\n");
  return note;
}

absl::StatusOr<OpenedCheckpoint> OpenCheckpoint(
    std::string_view note, std::span<const PublicKey> keys) {
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return Malformed("no blank line before the signatures");
  }
  const std::string_view body = note.substr(0, split + 1);
  std::string_view sigs = note.substr(split + 2);
  if (sigs.empty() || sigs.back() != '\n') {
    return Malformed("signature lines must end with a newline");
  }
  auto checkpoint = Checkpoint::ParseBody(body);
  if (!checkpoint.ok()) return checkpoint.status();
  sigs.remove_suffix(1);
  bool known = false;
  for (std::string_view line : Split(sigs, '\n')) {
    if (line.substr(0, kSigPrefix.size()) != kSigPrefix) {
      return Malformed("a signature line must start with an em dash");
    }
    line.remove_prefix(kSigPrefix.size());
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) return Malformed("bad signature line");
    const std::string_view name = line.substr(0, space);
    auto sig = Base64Decode(line.substr(space + 1));
    if (!sig || sig->size() < 5) return Malformed("bad signature encoding");
    for (const PublicKey& key : keys) {
      if (key.info().name != name ||
          NoteKeyId(name, key) != sig->substr(0, 4)) {
        continue;
      }
      known = true;
      if (key.Verify(body, sig->substr(4))) {
        return OpenedCheckpoint{*std::move(checkpoint), &key};
      }
    }
  }
  return absl::PermissionDeniedError(
      known ? "checkpoint: the signature does not verify: the checkpoint was "
              "altered"
            : "checkpoint: signed by none of the given keys (name or key id "
              "mismatch)");
}

}  // namespace lethe::cert
