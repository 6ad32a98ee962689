#include "worker/certify.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "lethe/core/policy.h"
#include "storage/certificate_store.h"

namespace lethe::worker {
namespace {

using google::protobuf::Struct;

double Number(const Struct& s, const std::string& key, double fallback = 0) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? fallback : it->second.number_value();
}

std::string Text(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? "" : it->second.string_value();
}

const Struct* Child(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? nullptr : &it->second.struct_value();
}

absl::StatusOr<Struct> ParseJson(const std::string& json) {
  Struct out;
  if (json.empty()) return out;
  auto st = google::protobuf::util::JsonStringToMessage(json, &out);
  if (!st.ok()) {
    return absl::InternalError(absl::StrCat("stored JSON: ", st.ToString()));
  }
  return out;
}

cert::Guarantee GuaranteeOf(const std::string& name) {
  if (name == "exact") return cert::Guarantee::kExact;
  if (name == "certified") return cert::Guarantee::kCertified;
  if (name == "retrained") return cert::Guarantee::kRetrained;
  if (name == "parameters_retrained") {
    return cert::Guarantee::kParametersRetrained;
  }
  return cert::Guarantee::kApproximate;
}

// The calibrated gate (core/calibration.h) as checks a reader can re-check:
// the validation-accuracy drop against its maximum, and each calibrated
// statistic against both ends of its interval; the fixed thresholds where
// the policy set them.
void AddCalibratedGate(const Struct& before, const Struct& after,
                       const Struct& gate, const Struct& calibration,
                       cert::ModelOutcome& m) {
  using Bound = cert::MetricCheck::Bound;
  const auto available = calibration.fields().find("available");
  if (available == calibration.fields().end() ||
      !available->second.bool_value()) {
    // Too little validation data: only a certified result gets here, and
    // the engine checked its utility against the plain limit.
    m.metrics.push_back({"validation_accuracy_drop_points",
                         100.0 * (Number(before, "va") - Number(after, "va")),
                         Bound::kAtMost,
                         Number(gate, "max_test_acc_drop_points")});
  } else {
    // The drop may exceed the policy's maximum by the validation records'
    // chance (core::CheckUtility): the engine's allowance is the bound.
    m.metrics.push_back({"validation_accuracy_drop_points",
                         Number(calibration, "accuracy_drop_points"),
                         Bound::kAtMost,
                         Number(calibration, "allowed_drop_points")});
    for (const char* name : {"accuracy", "confidence"}) {
      const Struct* stat = Child(calibration, name);
      if (stat == nullptr) continue;
      const std::string metric = std::string("forget_") + name;
      m.metrics.push_back({metric, Number(*stat, "value"), Bound::kAtLeast,
                           Number(*stat, "lower")});
      m.metrics.push_back({metric, Number(*stat, "value"), Bound::kAtMost,
                           Number(*stat, "upper")});
    }
  }
  if (Number(gate, "max_mia_auc", 1) < 1) {
    m.metrics.push_back({"mia_auc", Number(after, "mia_auc"), Bound::kAtMost,
                         Number(gate, "max_mia_auc")});
  }
  if (Number(gate, "max_forget_acc_excess_points", 100) < 100) {
    m.metrics.push_back(
        {"forget_accuracy_excess_points",
         100.0 * ((1.0 - Number(after, "ua")) - Number(after, "ta")),
         Bound::kAtMost, Number(gate, "max_forget_acc_excess_points")});
  }
}

// The policy gate a non-exact result passed, as the certificate states it:
// the thresholds the engine applied (report.gate); reports written before
// the engine recorded its gate fall back to the policy's two thresholds,
// and reports of the calibrated gate give its checks (AddCalibratedGate).
void AddGate(const Struct& report, const Struct& policy,
             cert::ModelOutcome& m) {
  const Struct* before = Child(report, "before");
  const Struct* after = Child(report, "after");
  if (before == nullptr || after == nullptr) return;
  const Struct* gate = Child(report, "gate");
  const Struct* calibrated = Child(report, "calibration_after");
  if (gate != nullptr && calibrated != nullptr && Number(*gate, "alpha") > 0) {
    AddCalibratedGate(*before, *after, *gate, *calibrated, m);
    return;
  }
  const core::Policy defaults;
  const double max_auc = gate != nullptr ? Number(*gate, "max_mia_auc")
                         : Number(policy, "maxMiaAuc", 0) == 0
                             ? defaults.max_mia_auc
                             : Number(policy, "maxMiaAuc");
  const double max_drop = gate != nullptr
                              ? Number(*gate, "max_test_acc_drop_points")
                          : Number(policy, "maxTestAccuracyDrop", 0) == 0
                              ? defaults.max_test_acc_drop
                              : Number(policy, "maxTestAccuracyDrop");
  m.metrics.push_back({"mia_auc", Number(*after, "mia_auc"),
                       cert::MetricCheck::Bound::kAtMost, max_auc});
  m.metrics.push_back({"test_accuracy_drop_points",
                       100.0 * (Number(*before, "ta") - Number(*after, "ta")),
                       cert::MetricCheck::Bound::kAtMost, max_drop});
  if (gate != nullptr && gate->fields().count("max_forget_acc_excess_points") &&
      Number(report, "forget_records") > 0) {
    // ua = 1 - accuracy on the forgotten records.
    m.metrics.push_back(
        {"forget_accuracy_excess_points",
         100.0 * ((1.0 - Number(*after, "ua")) - Number(*after, "ta")),
         cert::MetricCheck::Bound::kAtMost,
         Number(*gate, "max_forget_acc_excess_points")});
  }
}

}  // namespace

absl::StatusOr<cert::CompletionRecord> CompletionRecordOf(
    const storage::CompletedRequest& req) {
  cert::CompletionRecord record;
  record.request_id = req.erasure_id;
  record.legal_ground = req.legal_ground;
  record.legal_reference = req.legal_reference;
  record.subject_commitment = req.subject_commitment;
  record.submitted_us = req.submitted_us;
  record.completed_us = req.completed_us;
  for (const storage::CompletedTask& t : req.tasks) {
    cert::ModelOutcome m;
    m.model_id = t.model_id;
    m.model_name = t.model_name;
    m.method = t.method;
    m.records_removed = t.records_removed;
    m.version_after = t.result_version;
    m.digest_after = t.digest_after;
    if (m.method == cert::kMethodNone) {
      m.version_before = m.version_after;
      m.digest_before = m.digest_after;
      m.guarantee = cert::Guarantee::kExact;
    } else {
      m.version_before = t.parent_version;
      m.digest_before = t.digest_before;
      auto report = ParseJson(t.report_json);
      if (!report.ok()) return report.status();
      auto policy = ParseJson(t.policy_json);
      if (!policy.ok()) return policy.status();
      m.guarantee = GuaranteeOf(Text(*report, "guarantee"));
      if (m.guarantee == cert::Guarantee::kCertified) {
        const Struct* newton = Child(*policy, "newton");
        m.epsilon = newton ? Number(*newton, "epsilon") : 0;
        m.delta = newton ? Number(*newton, "delta") : 0;
      }
      // Retrains are not gated (the engine checks approximate and
      // certified results only).
      if (m.guarantee == cert::Guarantee::kCertified ||
          m.guarantee == cert::Guarantee::kApproximate) {
        AddGate(*report, *policy, m);
      }
    }
    record.models.push_back(std::move(m));
  }
  return record;
}

absl::StatusOr<int> IssueCertificates(
    storage::CertificateScope& scope,
    const std::vector<std::string>& erasure_ids, const cert::KeyRing& keys) {
  int issued = 0;
  for (const auto& id : erasure_ids) {
    auto completed = scope.ReadCompleted(id);
    if (!completed.ok()) return completed.status();
    auto record = CompletionRecordOf(*completed);
    if (!record.ok()) return record.status();
    auto cert = scope.Issue(*record, keys);
    if (!cert.ok()) return cert.status();
    if (!cert->replayed) ++issued;
  }
  return issued;
}

absl::StatusOr<int> IssueMissingCertificates(
    storage::CertificateStore& certificates, const cert::KeyRing& keys,
    int limit) {
  int issued = 0;
  auto visited = certificates.CertifyMissing(
      limit,
      [&](storage::CertificateScope& scope,
          const std::vector<std::string>& ids) -> absl::Status {
        auto n = IssueCertificates(scope, ids, keys);
        if (!n.ok()) return n.status();
        issued += *n;
        return absl::OkStatus();
      });
  if (!visited.ok()) return visited.status();
  return issued;
}

}  // namespace lethe::worker
