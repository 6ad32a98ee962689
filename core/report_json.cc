#include <cmath>
#include <cstdio>

#include "lethe/core/report.h"

namespace lethe::core {
namespace {

class JsonObject {
 public:
  explicit JsonObject(std::string& out) : out_(out) { out_ += '{'; }
  ~JsonObject() { out_ += '}'; }

  void Key(const char* key) {
    if (!first_) out_ += ',';
    first_ = false;
    out_ += JsonString(key);
    out_ += ':';
  }
  void Str(const char* key, const std::string& v) {
    Key(key);
    out_ += JsonString(v);
  }
  void Num(const char* key, double v) {
    Key(key);
    if (!std::isfinite(v)) {
      out_ += "null";
      return;
    }
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.10g", v);
    out_ += buf;
  }
  void Int(const char* key, int64_t v) {
    Key(key);
    out_ += std::to_string(v);
  }
  void Bool(const char* key, bool v) {
    Key(key);
    out_ += v ? "true" : "false";
  }

 private:
  std::string& out_;
  bool first_ = true;
};

void PutMetrics(std::string& out, const Metrics& m) {
  JsonObject o(out);
  o.Num("ua", m.ua);
  o.Num("ra", m.ra);
  o.Num("ta", m.ta);
  o.Num("mia_auc", m.mia_auc);
  o.Num("va", m.va);
}

void PutStat(std::string& out, const CalibratedStat& s) {
  JsonObject o(out);
  o.Num("value", s.value);
  o.Num("null_mean", s.null_mean);
  o.Num("null_sd", s.null_sd);
  o.Num("lower", s.lower);
  o.Num("upper", s.upper);
  o.Num("p_value", s.p_value);
  o.Bool("within", s.within());
}

// The calibrated check (calibration.h); null when the gate did not
// calibrate.
void PutCalibration(std::string& out, const Calibration& c) {
  if (c.alpha <= 0) {
    out += "null";
    return;
  }
  JsonObject o(out);
  o.Bool("available", c.available);
  o.Bool("passed", c.passed());
  o.Num("alpha", c.alpha);
  o.Num("margin", c.margin);
  o.Int("forget_records", c.forget_records);
  o.Int("validation_records", c.validation_records);
  o.Int("validation_subjects", c.validation_subjects);
  o.Int("resamples", c.resamples);
  // The null: "subjects" (groups of whole validation people) or
  // "neighbours" (each record against its nearest look-alikes).
  o.Str("null", c.neighbours > 0 ? "neighbours" : "subjects");
  if (c.neighbours > 0) {
    o.Int("neighbours", c.neighbours);
    o.Int("matched_records", c.matched_records);
    // What never-seen records scored against their own neighbours; the
    // null is moved by it (calibration.h).
    o.Num("offset_accuracy", c.offset_accuracy);
    o.Num("offset_confidence", c.offset_confidence);
    o.Int("offset_records", c.offset_records);
  }
  o.Num("accuracy_drop_points", c.accuracy_drop_points);
  o.Num("allowed_drop_points", c.allowed_drop_points);
  o.Key("accuracy");
  PutStat(out, c.accuracy);
  o.Key("confidence");
  PutStat(out, c.confidence);
}

}  // namespace

const char* AttemptFailureName(AttemptFailure failure) {
  switch (failure) {
    case AttemptFailure::kNone:
      return "none";
    case AttemptFailure::kError:
      return "error";
    case AttemptFailure::kTimeBudget:
      return "time_budget";
    case AttemptFailure::kCost:
      return "cost";
    case AttemptFailure::kMiaAuc:
      return "mia_auc";
    case AttemptFailure::kTestAccuracy:
      return "test_accuracy";
    case AttemptFailure::kForgetAccuracy:
      return "forget_accuracy";
    case AttemptFailure::kForgetConfidence:
      return "forget_confidence";
    case AttemptFailure::kCalibration:
      return "calibration";
  }
  return "unknown";
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

namespace {

void PutAttempts(std::string& out, const std::vector<Attempt>& attempts) {
  out += '[';
  for (size_t i = 0; i < attempts.size(); ++i) {
    if (i) out += ',';
    const Attempt& a = attempts[i];
    JsonObject e(out);
    e.Str("method", a.method);
    if (a.round > 0) e.Int("round", a.round);
    e.Str("outcome", a.outcome);
    e.Str("failure", AttemptFailureName(a.failure));
    e.Str("reason", a.reason);
    e.Num("seconds", a.seconds);
    e.Key("metrics");
    if (a.has_metrics)
      PutMetrics(out, a.metrics);
    else
      out += "null";
    e.Key("calibration");
    if (a.has_metrics)
      PutCalibration(out, a.calibration);
    else
      out += "null";
  }
  out += ']';
}

// Newton's bounds and SISA's shards, when those methods ran.
void PutMethodDetails(JsonObject& o, std::string& out, const Report& r) {
  if (r.newton_budget > 0) {
    o.Num("newton_bound", r.newton_bound);
    o.Num("newton_cumulative_bound", r.newton_cumulative_bound);
    o.Num("newton_budget", r.newton_budget);
  }
  if (!r.sisa_retrained_shards.empty()) {
    o.Key("sisa_retrained_shards");
    out += '[';
    for (size_t i = 0; i < r.sisa_retrained_shards.size(); ++i) {
      out += (i ? "," : "") + std::to_string(r.sisa_retrained_shards[i]);
    }
    out += ']';
    o.Int("sisa_added_records", r.sisa_added_records);
    o.Bool("sisa_rebuilt", r.sisa_rebuilt);
  }
}

}  // namespace

std::string ReportToJson(const Report& r) {
  std::string out;
  {
    JsonObject o(out);
    o.Bool("ok", r.ok);
    o.Str("method", r.method);
    o.Str("guarantee", r.guarantee);
    if (!r.undeclared_buffers.empty()) {
      o.Key("undeclared_buffers");
      out += '[';
      for (size_t i = 0; i < r.undeclared_buffers.size(); ++i) {
        out += (i ? "," : "") + JsonString(r.undeclared_buffers[i]);
      }
      out += ']';
    }
    o.Str("failure", r.failure);
    o.Str("device", r.device);
    o.Str("model_sha256", r.model_sha256);
    o.Int("subjects_requested", r.subjects_requested);
    o.Int("forget_records", r.forget_records);
    o.Int("retain_records", r.retain_records);
    o.Int("test_records", r.test_records);
    o.Int("validation_records", r.validation_records);
    o.Key("before");
    PutMetrics(out, r.before);
    o.Key("after");
    if (r.ok)
      PutMetrics(out, r.after);
    else
      out += "null";
    o.Key("reference");
    if (r.has_reference)
      PutMetrics(out, r.reference);
    else
      out += "null";
    if (r.has_reference) {
      o.Num("gap_points", r.gap_points);
      o.Num("gap_before_points", r.gap_before_points);
    }
    o.Key("gate");
    {
      JsonObject g(out);
      g.Num("max_mia_auc", r.gate.max_mia_auc);
      g.Num("max_test_acc_drop_points", r.gate.max_test_acc_drop);
      g.Num("max_forget_acc_excess_points", r.gate.max_forget_acc_excess);
      g.Num("alpha", r.gate.alpha);
      g.Num("adaptive_budget", r.gate.adaptive_budget);
    }
    o.Key("calibration_before");
    PutCalibration(out, r.calibration_before);
    o.Key("calibration_after");
    if (r.ok)
      PutCalibration(out, r.calibration_after);
    else
      out += "null";
    o.Key("attempts");
    PutAttempts(out, r.attempts);
    o.Key("timings");
    {
      JsonObject t(out);
      t.Num("load_s", r.timings.load_s);
      t.Num("unlearn_s", r.timings.unlearn_s);
      t.Num("verify_s", r.timings.verify_s);
      t.Num("reference_s", r.timings.reference_s);
    }
    PutMethodDetails(o, out, r);
    o.Key("reproducibility");
    {
      JsonObject x(out);
      x.Str("libtorch", r.reproducibility.libtorch);
      x.Int("intra_op_threads", r.reproducibility.intra_op_threads);
      x.Str("device", r.reproducibility.device);
      x.Bool("bit_exact", r.reproducibility.bit_exact);
    }
  }
  return out;
}

}  // namespace lethe::core
