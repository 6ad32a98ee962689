#include "worker/engine/engine_wire.h"

#include <utility>

#include "lethe/core/report.h"
#include "lethe/core/wire.h"

namespace lethe::worker {
namespace {

constexpr std::string_view kCallMagic = "LETHE-ENGINE-CALL-2";
constexpr std::string_view kReplyMagic = "LETHE-ENGINE-REPLY-2";

// The largest model file a message may announce: 1 TiB.
constexpr uint64_t kMaxModelSize = uint64_t{1} << 40;

core::Status Malformed(std::string_view what) {
  return core::Status(core::Code::kInvalidArgument,
                      "engine message: " + std::string(what));
}

bool KnownCode(uint64_t c) {
  switch (static_cast<core::Code>(c)) {
    case core::Code::kOk:
    case core::Code::kInvalidArgument:
    case core::Code::kDeadlineExceeded:
    case core::Code::kNotFound:
    case core::Code::kResourceExhausted:
    case core::Code::kFailedPrecondition:
    case core::Code::kAborted:
    case core::Code::kInternal:
      return true;
  }
  return false;
}

void PutTrained(core::WireWriter& w, const core::TrainedModel& t) {
  w.PutBytes(t.model_sha256);
  w.PutDouble(t.train_accuracy);
  w.PutDouble(t.test_accuracy);
  w.PutDouble(t.seconds);
  w.PutBytes(t.sisa_state);
  w.PutBytes(t.newton_state);
}

bool GetTrained(core::WireReader& r, core::TrainedModel* t) {
  return r.GetBytes(&t->model_sha256) && r.GetDouble(&t->train_accuracy) &&
         r.GetDouble(&t->test_accuracy) && r.GetDouble(&t->seconds) &&
         r.GetBytes(&t->sisa_state) && r.GetBytes(&t->newton_state);
}

void PutOutcome(core::WireWriter& w, const core::UnlearnOutcome& o) {
  w.PutBytes(core::EncodeReport(o.report));
  w.PutBytes(o.model_sha256);
  w.PutBytes(o.sisa_state);
  w.PutBytes(o.newton_state);
}

core::Status GetOutcome(core::WireReader& r, core::UnlearnOutcome* o) {
  std::string_view report;
  if (!r.GetView(&report) || !r.GetBytes(&o->model_sha256) ||
      !r.GetBytes(&o->sisa_state) || !r.GetBytes(&o->newton_state)) {
    return Malformed("truncated outcome");
  }
  core::Result<core::Report> decoded = core::DecodeReport(report);
  if (!decoded.ok()) return decoded.status();
  o->report = std::move(decoded).value();
  return core::OkStatus();
}

// Reads exactly n bytes; false at an end before them.
core::Result<bool> ReadExactly(const core::ByteReader& read, char* buf,
                               size_t n) {
  for (size_t got = 0; got < n;) {
    core::Result<size_t> r = read(buf + got, n - got);
    if (!r.ok()) return r.status();
    if (r.value() == 0) return false;
    got += r.value();
  }
  return true;
}

// One length-prefixed message of at most `max_bytes` (`what` names it in
// errors).
core::Result<std::string> ReadFrame(const core::ByteReader& read,
                                    uint64_t max_bytes, std::string_view what) {
  char len_bytes[8];
  core::Result<bool> got = ReadExactly(read, len_bytes, sizeof(len_bytes));
  if (!got.ok()) return got.status();
  uint64_t len = 0;
  core::WireReader(std::string_view(len_bytes, sizeof(len_bytes))).GetU64(&len);
  if (!got.value() || len > max_bytes) {
    return Malformed("truncated or oversized " + std::string(what) + " frame");
  }
  std::string body(len, '\0');
  got = ReadExactly(read, body.data(), body.size());
  if (!got.ok()) return got.status();
  if (!got.value()) return Malformed("truncated " + std::string(what));
  return body;
}

std::string Framed(const std::string& body) {
  core::WireWriter w;
  w.Reserve(body.size() + 8);
  w.PutBytes(body);
  return std::move(w.str());
}

}  // namespace

std::string EncodeEngineCall(const EngineCall& c) {
  core::WireWriter w;
  w.Reserve(c.state.size() + 4096);
  w.PutRaw(kCallMagic);
  w.PutU64(static_cast<uint64_t>(c.op));
  w.PutBytes(c.device);
  w.PutI64(c.threads);
  w.PutBytes(c.model.id);
  w.PutBytes(c.model.architecture_json);
  w.PutBytes(c.model.recipe_json);
  w.PutBytes(c.model.policy_json);
  w.PutI64s(c.dataset.feature_shape);
  w.PutBytes(c.dataset.feature_type);
  w.PutI64(c.dataset.num_classes);
  w.PutI64(c.model_size);
  w.PutStrings(c.forget_subjects);
  w.PutBool(c.trained_by_lethe);
  w.PutBytes(c.state);
  return std::move(w.str());
}

core::Result<EngineCall> DecodeEngineCall(std::string_view bytes) {
  if (bytes.substr(0, kCallMagic.size()) != kCallMagic) {
    return Malformed("not an engine call");
  }
  core::WireReader r(bytes.substr(kCallMagic.size()));
  EngineCall c;
  uint64_t op = 0;
  int64_t threads = 0;
  int64_t classes = 0;
  if (!r.GetU64(&op) || !r.GetBytes(&c.device) || !r.GetI64(&threads) ||
      !r.GetBytes(&c.model.id) || !r.GetBytes(&c.model.architecture_json) ||
      !r.GetBytes(&c.model.recipe_json) || !r.GetBytes(&c.model.policy_json) ||
      !r.GetI64s(&c.dataset.feature_shape) ||
      !r.GetBytes(&c.dataset.feature_type) || !r.GetI64(&classes) ||
      !r.GetI64(&c.model_size) || !r.GetStrings(&c.forget_subjects) ||
      !r.GetBool(&c.trained_by_lethe) || !r.GetBytes(&c.state) || !r.done()) {
    return Malformed("truncated call");
  }
  if (op < 1 || op > 3) return Malformed("unknown op");
  if (threads < 0 || threads > 4096 || classes < 0 || classes > (1 << 30) ||
      c.model_size < 0 || static_cast<uint64_t>(c.model_size) > kMaxModelSize) {
    return Malformed("threads, class count or model size out of range");
  }
  c.op = static_cast<EngineOp>(op);
  c.threads = static_cast<int>(threads);
  c.dataset.num_classes = static_cast<int32_t>(classes);
  return c;
}

std::string EncodeEngineCallFrame(const EngineCall& call) {
  return Framed(EncodeEngineCall(call));
}

core::Result<EngineCall> ReadEngineCallFrame(const core::ByteReader& read) {
  // A call carries a model's state; more than 64 GiB is no call.
  core::Result<std::string> body = ReadFrame(read, uint64_t{1} << 36, "call");
  if (!body.ok()) return body.status();
  return DecodeEngineCall(body.value());
}

std::string EncodeEngineReply(EngineOp op, const EngineReply& reply) {
  core::WireWriter w;
  w.PutRaw(kReplyMagic);
  w.PutU64(static_cast<uint64_t>(op));
  w.PutU64(static_cast<uint64_t>(reply.status.code()));
  w.PutBytes(reply.status.message());
  if (reply.status.ok()) {
    if (op == EngineOp::kTrain) PutTrained(w, reply.trained);
    if (op == EngineOp::kUnlearn) PutOutcome(w, reply.outcome);
  }
  w.PutI64(reply.model_size);
  w.PutI64(reply.peak_rss_bytes);
  w.PutDouble(reply.cpu_seconds);
  return std::move(w.str());
}

std::string EncodeEngineReplyFrame(EngineOp op, const EngineReply& reply) {
  return Framed(EncodeEngineReply(op, reply));
}

core::Result<EngineReply> ReadEngineReplyFrame(EngineOp op,
                                               const core::ByteReader& read,
                                               uint64_t max_bytes) {
  core::Result<std::string> body = ReadFrame(read, max_bytes, "reply");
  if (!body.ok()) return body.status();
  return DecodeEngineReply(op, body.value());
}

core::Result<EngineReply> DecodeEngineReply(EngineOp op,
                                            std::string_view bytes) {
  if (bytes.substr(0, kReplyMagic.size()) != kReplyMagic) {
    return Malformed("not an engine reply");
  }
  core::WireReader r(bytes.substr(kReplyMagic.size()));
  uint64_t got_op = 0;
  uint64_t code = 0;
  std::string message;
  if (!r.GetU64(&got_op) || !r.GetU64(&code) || !r.GetBytes(&message)) {
    return Malformed("truncated reply");
  }
  if (got_op != static_cast<uint64_t>(op))
    return Malformed("reply to another op");
  if (!KnownCode(code)) return Malformed("unknown status code");
  EngineReply reply;
  reply.status = core::Status(static_cast<core::Code>(code), message);
  if (reply.status.ok()) {
    if (op == EngineOp::kTrain && !GetTrained(r, &reply.trained)) {
      return Malformed("truncated trained model");
    }
    if (op == EngineOp::kUnlearn) {
      core::Status st = GetOutcome(r, &reply.outcome);
      if (!st.ok()) return st;
    }
  }
  if (!r.GetI64(&reply.model_size) || !r.GetI64(&reply.peak_rss_bytes) ||
      !r.GetDouble(&reply.cpu_seconds)) {
    return Malformed("truncated usage");
  }
  if (!r.done()) return Malformed("trailing bytes");
  // A model file, never empty, follows a train's reply and an accepted
  // unlearning's, and nothing else's.
  const bool has_model = reply.status.ok() &&
                         (op == EngineOp::kTrain || (op == EngineOp::kUnlearn &&
                                                     reply.outcome.report.ok));
  if (reply.model_size < 0 ||
      static_cast<uint64_t>(reply.model_size) > kMaxModelSize ||
      (has_model != (reply.model_size > 0))) {
    return Malformed("model size out of range");
  }
  return reply;
}

}  // namespace lethe::worker
