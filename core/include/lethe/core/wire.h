// A minimal length-prefixed binary encoding for messages between the worker
// and its sandboxed engine process (docs/security.md, "The engine sandbox"):
// little-endian fixed-width integers, doubles as their IEEE bits, and byte
// strings as a u64 length then the bytes. No schema evolution: both ends
// are built from one tree, and each message starts with a magic string.
//
// WireReader never reads past its input: every Get fails (returns false and
// stays failed) once the input is short, so a truncated or hostile message
// is an error, never undefined behaviour. Torch-free.
#ifndef LETHE_CORE_WIRE_H_
#define LETHE_CORE_WIRE_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::core {

class WireWriter {
 public:
  void PutU64(uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out_.append(b, 8);
  }
  void PutI64(int64_t v) { PutU64(static_cast<uint64_t>(v)); }
  void PutBool(bool v) { PutU64(v ? 1 : 0); }
  void PutDouble(double v) {
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(bits));
    PutU64(bits);
  }
  void PutBytes(std::string_view s) {
    PutU64(s.size());
    out_.append(s);
  }
  void PutStrings(const std::vector<std::string>& v) {
    PutU64(v.size());
    for (const std::string& s : v) PutBytes(s);
  }
  void PutI64s(const std::vector<int64_t>& v) {
    PutU64(v.size());
    for (int64_t x : v) PutI64(x);
  }
  // Raw bytes with no length (the reader knows the size from context).
  void PutRaw(std::string_view s) { out_.append(s); }
  void Reserve(size_t n) { out_.reserve(n); }

  std::string& str() { return out_; }

 private:
  std::string out_;
};

class WireReader {
 public:
  explicit WireReader(std::string_view in) : in_(in) {}

  bool ok() const { return ok_; }
  bool done() const { return ok_ && in_.empty(); }
  size_t remaining() const { return in_.size(); }

  bool GetU64(uint64_t* v) {
    if (!Need(8)) return false;
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) {
      r |= static_cast<uint64_t>(static_cast<unsigned char>(in_[i])) << (8 * i);
    }
    in_.remove_prefix(8);
    *v = r;
    return true;
  }
  bool GetI64(int64_t* v) {
    uint64_t u = 0;
    if (!GetU64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  bool GetBool(bool* v) {
    uint64_t u = 0;
    if (!GetU64(&u)) return false;
    if (u > 1) return Fail();
    *v = u == 1;
    return true;
  }
  bool GetDouble(double* v) {
    uint64_t bits = 0;
    if (!GetU64(&bits)) return false;
    std::memcpy(v, &bits, sizeof(bits));
    return true;
  }
  // A view into the input (valid while the input is).
  bool GetView(std::string_view* s) {
    uint64_t n = 0;
    if (!GetU64(&n) || !Need(n)) return false;
    *s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool GetBytes(std::string* s) {
    std::string_view v;
    if (!GetView(&v)) return false;
    s->assign(v);
    return true;
  }
  // A count of items each at least `min_item_bytes` long: a count the
  // remaining input cannot hold fails before anything is allocated.
  bool GetCount(uint64_t* n, uint64_t min_item_bytes) {
    if (!GetU64(n)) return false;
    if (min_item_bytes > 0 && *n > in_.size() / min_item_bytes) return Fail();
    return true;
  }
  bool GetStrings(std::vector<std::string>* v) {
    uint64_t n = 0;
    if (!GetCount(&n, 8)) return false;
    v->assign(n, std::string());
    for (std::string& s : *v) {
      if (!GetBytes(&s)) return false;
    }
    return true;
  }
  bool GetI64s(std::vector<int64_t>* v) {
    uint64_t n = 0;
    if (!GetCount(&n, 8)) return false;
    v->assign(n, 0);
    for (int64_t& x : *v) {
      if (!GetI64(&x)) return false;
    }
    return true;
  }
  bool GetRaw(uint64_t n, std::string_view* s) {
    if (!Need(n)) return false;
    *s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }

 private:
  bool Need(uint64_t n) {
    if (!ok_ || in_.size() < n) return Fail();
    return true;
  }
  bool Fail() {
    ok_ = false;
    return false;
  }

  std::string_view in_;
  bool ok_ = true;
};

}  // namespace lethe::core

#endif  // LETHE_CORE_WIRE_H_
