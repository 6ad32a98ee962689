// Report <-> bytes for the engine sandbox (report.h). Torch-free.
#include <string>
#include <string_view>

#include "lethe/core/report.h"
#include "lethe/core/wire.h"

namespace lethe::core {
namespace {

constexpr std::string_view kReportMagic = "LETHE-REPORT-2";

void PutMetrics(WireWriter& w, const Metrics& m) {
  w.PutDouble(m.ua);
  w.PutDouble(m.ra);
  w.PutDouble(m.ta);
  w.PutDouble(m.mia_auc);
  w.PutDouble(m.va);
}

bool GetMetrics(WireReader& r, Metrics* m) {
  return r.GetDouble(&m->ua) && r.GetDouble(&m->ra) && r.GetDouble(&m->ta) &&
         r.GetDouble(&m->mia_auc) && r.GetDouble(&m->va);
}

void PutStat(WireWriter& w, const CalibratedStat& s) {
  for (double v :
       {s.value, s.null_mean, s.null_sd, s.lower, s.upper, s.p_value}) {
    w.PutDouble(v);
  }
}

bool GetStat(WireReader& r, CalibratedStat* s) {
  return r.GetDouble(&s->value) && r.GetDouble(&s->null_mean) &&
         r.GetDouble(&s->null_sd) && r.GetDouble(&s->lower) &&
         r.GetDouble(&s->upper) && r.GetDouble(&s->p_value);
}

void PutCalibration(WireWriter& w, const Calibration& c) {
  w.PutBool(c.available);
  w.PutI64(c.forget_records);
  w.PutI64(c.validation_records);
  w.PutI64(c.validation_subjects);
  w.PutI64(c.resamples);
  w.PutDouble(c.alpha);
  w.PutDouble(c.margin);
  w.PutDouble(c.accuracy_drop_points);
  w.PutDouble(c.allowed_drop_points);
  w.PutI64(c.neighbours);
  w.PutI64(c.matched_records);
  w.PutDouble(c.offset_accuracy);
  w.PutDouble(c.offset_confidence);
  w.PutI64(c.offset_records);
  PutStat(w, c.accuracy);
  PutStat(w, c.confidence);
}

bool GetCalibration(WireReader& r, Calibration* c) {
  return r.GetBool(&c->available) && r.GetI64(&c->forget_records) &&
         r.GetI64(&c->validation_records) &&
         r.GetI64(&c->validation_subjects) && r.GetI64(&c->resamples) &&
         r.GetDouble(&c->alpha) && r.GetDouble(&c->margin) &&
         r.GetDouble(&c->accuracy_drop_points) &&
         r.GetDouble(&c->allowed_drop_points) && r.GetI64(&c->neighbours) &&
         r.GetI64(&c->matched_records) && r.GetDouble(&c->offset_accuracy) &&
         r.GetDouble(&c->offset_confidence) && r.GetI64(&c->offset_records) &&
         GetStat(r, &c->accuracy) && GetStat(r, &c->confidence);
}

void PutAttempt(WireWriter& w, const Attempt& a) {
  w.PutBytes(a.method);
  w.PutI64(a.round);
  w.PutBytes(a.outcome);
  w.PutU64(static_cast<uint64_t>(a.failure));
  w.PutBytes(a.reason);
  w.PutDouble(a.seconds);
  w.PutBool(a.has_metrics);
  PutMetrics(w, a.metrics);
  PutCalibration(w, a.calibration);
}

bool GetAttempt(WireReader& r, Attempt* a) {
  uint64_t failure = 0;
  int64_t round = 0;
  if (!r.GetBytes(&a->method) || !r.GetI64(&round) ||
      !r.GetBytes(&a->outcome) || !r.GetU64(&failure) ||
      !r.GetBytes(&a->reason) || !r.GetDouble(&a->seconds) ||
      !r.GetBool(&a->has_metrics) || !GetMetrics(r, &a->metrics) ||
      !GetCalibration(r, &a->calibration)) {
    return false;
  }
  if (failure > static_cast<uint64_t>(AttemptFailure::kCalibration) ||
      round < 0 || round > (1 << 20)) {
    return false;
  }
  a->round = static_cast<int>(round);
  a->failure = static_cast<AttemptFailure>(failure);
  return true;
}

void PutSummary(WireWriter& w, const Report& r) {
  w.PutBool(r.ok);
  w.PutBytes(r.method);
  w.PutBytes(r.guarantee);
  w.PutStrings(r.undeclared_buffers);
  w.PutBytes(r.failure);
  w.PutBytes(r.device);
  w.PutI64(r.subjects_requested);
  w.PutI64(r.forget_records);
  w.PutI64(r.retain_records);
  w.PutI64(r.test_records);
  PutMetrics(w, r.before);
  PutMetrics(w, r.after);
  w.PutBool(r.has_reference);
  PutMetrics(w, r.reference);
  w.PutDouble(r.gap_points);
  w.PutDouble(r.gap_before_points);
  w.PutDouble(r.gate.max_mia_auc);
  w.PutDouble(r.gate.max_test_acc_drop);
  w.PutDouble(r.gate.max_forget_acc_excess);
  w.PutDouble(r.gate.alpha);
  w.PutDouble(r.gate.adaptive_budget);
  w.PutI64(r.validation_records);
  PutCalibration(w, r.calibration_before);
  PutCalibration(w, r.calibration_after);
}

bool GetSummary(WireReader& in, Report* r) {
  return in.GetBool(&r->ok) && in.GetBytes(&r->method) &&
         in.GetBytes(&r->guarantee) && in.GetStrings(&r->undeclared_buffers) &&
         in.GetBytes(&r->failure) && in.GetBytes(&r->device) &&
         in.GetI64(&r->subjects_requested) && in.GetI64(&r->forget_records) &&
         in.GetI64(&r->retain_records) && in.GetI64(&r->test_records) &&
         GetMetrics(in, &r->before) && GetMetrics(in, &r->after) &&
         in.GetBool(&r->has_reference) && GetMetrics(in, &r->reference) &&
         in.GetDouble(&r->gap_points) && in.GetDouble(&r->gap_before_points) &&
         in.GetDouble(&r->gate.max_mia_auc) &&
         in.GetDouble(&r->gate.max_test_acc_drop) &&
         in.GetDouble(&r->gate.max_forget_acc_excess) &&
         in.GetDouble(&r->gate.alpha) &&
         in.GetDouble(&r->gate.adaptive_budget) &&
         in.GetI64(&r->validation_records) &&
         GetCalibration(in, &r->calibration_before) &&
         GetCalibration(in, &r->calibration_after);
}

void PutDetails(WireWriter& w, const Report& r) {
  w.PutDouble(r.timings.load_s);
  w.PutDouble(r.timings.unlearn_s);
  w.PutDouble(r.timings.verify_s);
  w.PutDouble(r.timings.reference_s);
  w.PutBytes(r.model_sha256);
  w.PutDouble(r.newton_bound);
  w.PutDouble(r.newton_cumulative_bound);
  w.PutDouble(r.newton_budget);
  w.PutU64(r.sisa_retrained_shards.size());
  for (int s : r.sisa_retrained_shards) w.PutI64(s);
  w.PutI64(r.sisa_added_records);
  w.PutBool(r.sisa_rebuilt);
  w.PutBytes(r.reproducibility.libtorch);
  w.PutI64(r.reproducibility.intra_op_threads);
  w.PutBytes(r.reproducibility.device);
  w.PutBool(r.reproducibility.bit_exact);
}

bool GetDetails(WireReader& in, Report* r) {
  uint64_t shards = 0;
  if (!in.GetDouble(&r->timings.load_s) ||
      !in.GetDouble(&r->timings.unlearn_s) ||
      !in.GetDouble(&r->timings.verify_s) ||
      !in.GetDouble(&r->timings.reference_s) ||
      !in.GetBytes(&r->model_sha256) || !in.GetDouble(&r->newton_bound) ||
      !in.GetDouble(&r->newton_cumulative_bound) ||
      !in.GetDouble(&r->newton_budget) || !in.GetCount(&shards, 8)) {
    return false;
  }
  r->sisa_retrained_shards.assign(shards, 0);
  for (int& s : r->sisa_retrained_shards) {
    int64_t v = 0;
    if (!in.GetI64(&v) || v < 0 || v > (1 << 20)) return false;
    s = static_cast<int>(v);
  }
  int64_t threads = 0;
  if (!in.GetI64(&r->sisa_added_records) || !in.GetBool(&r->sisa_rebuilt) ||
      !in.GetBytes(&r->reproducibility.libtorch) || !in.GetI64(&threads) ||
      !in.GetBytes(&r->reproducibility.device) ||
      !in.GetBool(&r->reproducibility.bit_exact)) {
    return false;
  }
  if (threads < 0 || threads > (1 << 20)) return false;
  r->reproducibility.intra_op_threads = static_cast<int>(threads);
  return true;
}

}  // namespace

std::string EncodeReport(const Report& report) {
  WireWriter w;
  w.PutRaw(kReportMagic);
  PutSummary(w, report);
  w.PutU64(report.attempts.size());
  for (const Attempt& a : report.attempts) PutAttempt(w, a);
  PutDetails(w, report);
  return std::move(w.str());
}

Result<Report> DecodeReport(std::string_view bytes) {
  if (bytes.substr(0, kReportMagic.size()) != kReportMagic) {
    return InvalidArgumentError("report encoding: wrong magic");
  }
  WireReader in(bytes.substr(kReportMagic.size()));
  Report r;
  uint64_t attempts = 0;
  bool good = GetSummary(in, &r) && in.GetCount(&attempts, 64);
  if (good) {
    r.attempts.resize(attempts);
    for (Attempt& a : r.attempts) {
      if (!(good = GetAttempt(in, &a))) break;
    }
  }
  good = good && GetDetails(in, &r) && in.done();
  if (!good) return InvalidArgumentError("report encoding: malformed");
  return r;
}

}  // namespace lethe::core
