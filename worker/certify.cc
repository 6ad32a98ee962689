#include "worker/certify.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "storage/certificate_store.h"
#include "storage/sql_util.h"

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
  return cert::Guarantee::kApproximate;
}

// The policy gate a non-exact result passed, as the certificate states it:
// the thresholds the engine applied (report.gate); reports written before
// the engine recorded its gate fall back to the policy's two thresholds.
void AddGate(const Struct& report, const Struct& policy,
             cert::ModelOutcome& m) {
  const Struct* before = Child(report, "before");
  const Struct* after = Child(report, "after");
  if (before == nullptr || after == nullptr) return;
  const Struct* gate = Child(report, "gate");
  const double max_auc =
      gate != nullptr ? Number(*gate, "max_mia_auc")
      : Number(policy, "maxMiaAuc") == 0 ? 0.55
                                         : Number(policy, "maxMiaAuc");
  const double max_drop =
      gate != nullptr ? Number(*gate, "max_test_acc_drop_points")
      : Number(policy, "maxTestAccuracyDrop") == 0
          ? 1.5
          : Number(policy, "maxTestAccuracyDrop");
  m.metrics.push_back({"mia_auc", Number(*after, "mia_auc"),
                       cert::MetricCheck::Bound::kAtMost, max_auc});
  m.metrics.push_back(
      {"test_accuracy_drop_points",
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
    storage::Txn& txn, const std::string& erasure_id) {
  using storage::internal::Micros;
  using storage::internal::ReadBytea;
  auto req = txn.exec_params(
      absl::StrCat("SELECT legal_ground, legal_reference, subject_commitment, ",
                   Micros("created_at"), ", ", Micros("completed_at"),
                   " FROM erasure_requests WHERE id = $1::uuid AND state = "
                   "'COMPLETED'"),
      erasure_id);
  if (req.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("erasure request ", erasure_id, " is not COMPLETED"));
  }
  cert::CompletionRecord record;
  record.request_id = erasure_id;
  record.legal_ground = req[0][0].c_str();
  record.legal_reference = req[0][1].c_str();
  record.subject_commitment = ReadBytea(req[0][2]);
  record.submitted_us = req[0][3].as<int64_t>();
  record.completed_us = req[0][4].as<int64_t>();
  auto tasks = txn.exec_params(
      "SELECT t.model_id::text, m.name, t.result_version, "
      "coalesce(t.method, v.produced_by), v.artifact_sha256, v.parent_version, "
      "pv.artifact_sha256, t.records_removed, coalesce(v.report::text, ''), "
      "m.policy::text FROM erasure_tasks t JOIN models m ON m.id = t.model_id "
      "JOIN model_versions v ON v.model_id = t.model_id AND v.version = "
      "t.result_version LEFT JOIN model_versions pv ON pv.model_id = "
      "t.model_id AND pv.version = v.parent_version WHERE t.erasure_id = "
      "$1::uuid AND t.state = 'DONE' ORDER BY t.model_id",
      erasure_id);
  for (const auto& t : tasks) {
    cert::ModelOutcome m;
    m.model_id = t[0].c_str();
    m.model_name = t[1].c_str();
    m.method = t[3].c_str();
    m.records_removed = t[7].as<int64_t>();
    m.version_after = t[2].as<int64_t>();
    m.digest_after = ReadBytea(t[4]);
    if (m.method == cert::kMethodNone) {
      m.version_before = m.version_after;
      m.digest_before = m.digest_after;
      m.guarantee = cert::Guarantee::kExact;
    } else {
      m.version_before = t[5].as<int64_t>();
      m.digest_before = ReadBytea(t[6]);
      auto report = ParseJson(t[8].c_str());
      if (!report.ok()) return report.status();
      auto policy = ParseJson(t[9].c_str());
      if (!policy.ok()) return policy.status();
      m.guarantee = GuaranteeOf(Text(*report, "guarantee"));
      if (m.guarantee == cert::Guarantee::kCertified) {
        const Struct* newton = Child(*policy, "newton");
        m.epsilon = newton ? Number(*newton, "epsilon") : 0;
        m.delta = newton ? Number(*newton, "delta") : 0;
      }
      if (m.guarantee != cert::Guarantee::kExact) AddGate(*report, *policy, m);
    }
    record.models.push_back(std::move(m));
  }
  return record;
}

absl::StatusOr<int> IssueCertificates(
    storage::Txn& txn, const std::vector<std::string>& erasure_ids,
    const cert::KeyRing& keys) {
  int issued = 0;
  for (const auto& id : erasure_ids) {
    auto record = CompletionRecordOf(txn, id);
    if (!record.ok()) return record.status();
    auto cert = storage::CertificateStore::IssueInTxn(txn, *record, keys);
    if (!cert.ok()) return cert.status();
    if (!cert->replayed) ++issued;
  }
  return issued;
}

absl::StatusOr<int> IssueMissingCertificates(storage::Database& db,
                                             const cert::KeyRing& keys,
                                             int limit) {
  auto ids = db.TransactValue<std::vector<std::string>>(
      [&](storage::Txn& txn) -> absl::StatusOr<std::vector<std::string>> {
        auto res = txn.exec_params(
            "SELECT e.id::text FROM erasure_requests e WHERE e.state = "
            "'COMPLETED' AND NOT EXISTS (SELECT 1 FROM certificates c WHERE "
            "c.request_id = e.id) AND EXISTS (SELECT 1 FROM erasure_tasks t "
            "WHERE t.erasure_id = e.id AND t.state = 'DONE') "
            "ORDER BY e.completed_at LIMIT $1",
            limit);
        std::vector<std::string> out;
        for (const auto& r : res) out.emplace_back(r[0].c_str());
        return out;
      });
  if (!ids.ok()) return ids.status();
  int issued = 0;
  for (const auto& id : *ids) {
    auto n = db.TransactValue<int>([&](storage::Txn& txn) {
      return IssueCertificates(txn, {id}, keys);
    });
    if (!n.ok()) return n.status();
    issued += *n;
  }
  return issued;
}

}  // namespace lethe::worker
