#include "cert/statement.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cert/encoding.h"
#include "cert/json.h"

namespace lethe::cert {
namespace {

absl::Status Invalid(std::string_view field, std::string_view what) {
  std::string msg = "completion record: ";
  msg.append(field);
  msg.append(" ");
  msg.append(what);
  return absl::InvalidArgumentError(msg);
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

absl::Status ValidateModel(const ModelOutcome& m, const std::string& where) {
  if (!IsUuid(m.model_id)) {
    return Invalid(where + ".model_id", "must be a lower-case UUID");
  }
  // Method "none": the model held none of the subject's training records
  // (only other records were deleted), so its version stays as it was.
  const bool unchanged = m.method == kMethodNone;
  if (m.version_before < 1 ||
      (unchanged ? m.version_after != m.version_before
                 : m.version_after <= m.version_before)) {
    return Invalid(where + ".version_after",
                   unchanged ? "must equal version_before for method none"
                             : "must be after version_before (>= 1)");
  }
  if (unchanged && m.digest_after != m.digest_before) {
    return Invalid(where + ".digest_after",
                   "must equal digest_before for method none");
  }
  if (m.digest_before.size() != kSha256Bytes ||
      m.digest_after.size() != kSha256Bytes) {
    return Invalid(where + ".digest_before/after", "must be 32-byte SHA-256");
  }
  if (m.records_removed < 0) return Invalid(where + ".records_removed", "< 0");
  if (m.method.empty()) return Invalid(where + ".method", "is required");
  if (m.guarantee == Guarantee::kCertified &&
      !(std::isfinite(m.epsilon) && m.epsilon > 0 && m.delta >= 0 &&
        m.delta < 1)) {
    return Invalid(where + ".epsilon",
                   "a certified method needs epsilon > 0, 0 <= delta < 1");
  }
  for (const MetricCheck& c : m.metrics) {
    if (c.name.empty() || !std::isfinite(c.value) ||
        !std::isfinite(c.threshold)) {
      return Invalid(where + ".metrics", "need a name and finite numbers");
    }
    if (!c.Met()) {
      return Invalid(where + ".metrics." + c.name,
                     "did not meet its threshold: no certificate for that");
    }
  }
  return absl::OkStatus();
}

const char* BoundName(MetricCheck::Bound b) {
  return b == MetricCheck::Bound::kAtMost ? "at_most" : "at_least";
}

std::string SubjectName(const ModelOutcome& m) {
  return absl::StrCat("model/", m.model_id, "/v", m.version_after);
}

Json ModelJson(const ModelOutcome& m) {
  Json::Array metrics;
  for (const MetricCheck& c : m.metrics) {
    metrics.push_back(Json::Object{{"bound", BoundName(c.bound)},
                                   {"name", c.name},
                                   {"threshold", c.threshold},
                                   {"value", c.value}});
  }
  Json::Object guarantee{{"class", GuaranteeName(m.guarantee)}};
  if (m.guarantee == Guarantee::kCertified) {
    guarantee["epsilon"] = m.epsilon;
    guarantee["delta"] = m.delta;
  }
  Json::Object out{
      {"after", Json::Object{{"sha256", HexEncode(m.digest_after)},
                             {"version", m.version_after}}},
      {"before", Json::Object{{"sha256", HexEncode(m.digest_before)},
                              {"version", m.version_before}}},
      {"guarantee", std::move(guarantee)},
      {"method", m.method},
      {"metrics", std::move(metrics)},
      {"modelId", m.model_id},
      {"recordsRemoved", m.records_removed}};
  if (!m.model_name.empty()) out["modelName"] = m.model_name;
  return out;
}

absl::StatusOr<std::string> Digest(const Json& version,
                                   const std::string& where) {
  JsonReader r(version, where);
  if (auto st = r.CheckKeys({"sha256", "version"}); !st.ok()) return st;
  auto hex = r.String("sha256");
  if (!hex.ok()) return hex.status();
  auto raw = HexDecode(*hex);
  if (!raw || raw->size() != kSha256Bytes) {
    return Invalid(where + ".sha256", "must be 64 lower-case hex digits");
  }
  return *raw;
}

// A {"sha256", "version"} object: the model version before or after.
absl::Status ParseVersion(const Json& j, const std::string& where,
                          int64_t& version, std::string& digest) {
  auto d = Digest(j, where);
  if (!d.ok()) return d.status();
  digest = *d;
  auto v = JsonReader(j, where).Int("version");
  if (!v.ok()) return v.status();
  version = *v;
  return absl::OkStatus();
}

// The {"class", "epsilon", "delta"} object into m's guarantee fields.
absl::Status ParseGuarantee(const Json& j, const std::string& where,
                            ModelOutcome& m) {
  JsonReader g(j, where);
  if (auto st = g.CheckKeys({"class", "delta", "epsilon"}); !st.ok()) return st;
  auto cls = g.String("class");
  if (!cls.ok()) return cls.status();
  if (*cls == "exact") {
    m.guarantee = Guarantee::kExact;
  } else if (*cls == "approximate") {
    m.guarantee = Guarantee::kApproximate;
  } else if (*cls == "retrained") {
    m.guarantee = Guarantee::kRetrained;
  } else if (*cls == "parameters_retrained") {
    m.guarantee = Guarantee::kParametersRetrained;
  } else if (*cls == "certified") {
    m.guarantee = Guarantee::kCertified;
    auto eps = g.Number("epsilon");
    if (!eps.ok()) return eps.status();
    auto delta = g.Number("delta");
    if (!delta.ok()) return delta.status();
    m.epsilon = *eps;
    m.delta = *delta;
  } else {
    return Invalid(where + ".class", "is unknown");
  }
  return absl::OkStatus();
}

// One {"name", "value", "threshold", "bound"} entry of "metrics".
absl::StatusOr<MetricCheck> ParseMetric(const Json& c,
                                        const std::string& where) {
  JsonReader cr(c, where);
  if (auto st = cr.CheckKeys({"bound", "name", "threshold", "value"});
      !st.ok()) {
    return st;
  }
  auto name = cr.String("name");
  auto value = cr.Number("value");
  auto threshold = cr.Number("threshold");
  auto bound = cr.String("bound");
  for (const absl::Status& st :
       {name.status(), value.status(), threshold.status(), bound.status()}) {
    if (!st.ok()) return st;
  }
  MetricCheck check{*name, *value, MetricCheck::Bound::kAtMost, *threshold};
  if (*bound == "at_least") {
    check.bound = MetricCheck::Bound::kAtLeast;
  } else if (*bound != "at_most") {
    return Invalid(where + ".bound", "is unknown");
  }
  return check;
}

absl::StatusOr<ModelOutcome> ParseModel(const Json& j,
                                        const std::string& where) {
  JsonReader r(j, where);
  if (auto st =
          r.CheckKeys({"after", "before", "guarantee", "method", "metrics",
                       "modelId", "modelName", "recordsRemoved"});
      !st.ok()) {
    return st;
  }
  ModelOutcome m;
  auto id = r.String("modelId");
  auto method = r.String("method");
  auto removed = r.Int("recordsRemoved");
  auto before = r.Get("before");
  auto after = r.Get("after");
  auto guarantee = r.Get("guarantee");
  auto metrics = r.Array("metrics");
  for (const absl::Status& st :
       {id.status(), method.status(), removed.status(), before.status(),
        after.status(), guarantee.status(), metrics.status()}) {
    if (!st.ok()) return st;
  }
  m.model_id = *id;
  m.method = *method;
  m.records_removed = *removed;
  if (r.Has("modelName")) {
    auto name = r.String("modelName");
    if (!name.ok()) return name.status();
    m.model_name = *name;
  }
  for (auto [json, version, digest, name] :
       {std::tuple(*before, &m.version_before, &m.digest_before, ".before"),
        std::tuple(*after, &m.version_after, &m.digest_after, ".after")}) {
    if (auto st = ParseVersion(*json, where + name, *version, *digest);
        !st.ok()) {
      return st;
    }
  }
  if (auto st = ParseGuarantee(**guarantee, where + ".guarantee", m);
      !st.ok()) {
    return st;
  }
  for (const Json& c : **metrics) {
    auto check = ParseMetric(c, where + ".metrics[]");
    if (!check.ok()) return check.status();
    m.metrics.push_back(std::move(*check));
  }
  return m;
}

absl::StatusOr<int64_t> Time(const JsonReader& r, std::string_view key) {
  auto text = r.String(key);
  if (!text.ok()) return text.status();
  auto t = ParseTime(*text);
  if (!t) return Invalid(key, "is not an RFC 3339 time");
  return *t;
}

}  // namespace

const char* GuaranteeName(Guarantee g) {
  switch (g) {
    case Guarantee::kExact:
      return "exact";
    case Guarantee::kCertified:
      return "certified";
    case Guarantee::kApproximate:
      return "approximate";
    case Guarantee::kRetrained:
      return "retrained";
    case Guarantee::kParametersRetrained:
      return "parameters_retrained";
  }
  return "approximate";
}

absl::Status Validate(const CompletionRecord& r) {
  if (!IsUuid(r.request_id)) {
    return Invalid("request_id", "must be a lower-case UUID");
  }
  if (r.legal_ground.empty()) return Invalid("legal_ground", "is required");
  if (r.subject_commitment.size() != kSha256Bytes) {
    return Invalid("subject_commitment", "must be 32 bytes");
  }
  if (r.models.empty()) return Invalid("models", "must not be empty");
  for (size_t i = 0; i < r.models.size(); ++i) {
    if (auto st = ValidateModel(r.models[i], absl::StrCat("models[", i, "]"));
        !st.ok()) {
      return st;
    }
  }
  if (r.submitted_us <= 0 || r.completed_us < r.submitted_us) {
    return Invalid("completed_us", "must be set and not before submitted_us");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MakeStatement(const CompletionRecord& r) {
  if (auto st = Validate(r); !st.ok()) return st;
  Json::Array subjects;
  Json::Array models;
  for (const ModelOutcome& m : r.models) {
    subjects.push_back(Json::Object{
        {"digest", Json::Object{{"sha256", HexEncode(m.digest_after)}}},
        {"name", SubjectName(m)}});
    models.push_back(ModelJson(m));
  }
  Json::Object predicate{{"completedAt", FormatTime(r.completed_us)},
                         {"legalGround", r.legal_ground},
                         {"legalReference", r.legal_reference},
                         {"models", std::move(models)},
                         {"requestId", r.request_id},
                         {"subjectCommitment", HexEncode(r.subject_commitment)},
                         {"submittedAt", FormatTime(r.submitted_us)}};
  return Json(Json::Object{
                  {"_type", std::string(kStatementType)},
                  {"predicate", std::move(predicate)},
                  {"predicateType", std::string(kCompletionPredicateType)},
                  {"subject", std::move(subjects)}})
      .Dump();
}

absl::StatusOr<CompletionRecord> ParseStatement(std::string_view text) {
  auto json = Json::Parse(text);
  if (!json.ok()) return json.status();
  JsonReader s(*json, "statement");
  if (auto st = s.CheckKeys({"_type", "predicate", "predicateType", "subject"});
      !st.ok()) {
    return st;
  }
  auto type = s.String("_type");
  auto ptype = s.String("predicateType");
  if (!type.ok() || *type != kStatementType || !ptype.ok() ||
      *ptype != kCompletionPredicateType) {
    return absl::InvalidArgumentError(
        "not an in-toto Statement v1 with the lethe completion predicate");
  }
  auto pred_json = s.Get("predicate");
  if (!pred_json.ok()) return pred_json.status();
  JsonReader p(**pred_json, "predicate");
  if (auto st =
          p.CheckKeys({"completedAt", "legalGround", "legalReference", "models",
                       "requestId", "subjectCommitment", "submittedAt"});
      !st.ok()) {
    return st;
  }
  CompletionRecord r;
  auto id = p.String("requestId");
  auto ground = p.String("legalGround");
  auto reference = p.String("legalReference");
  auto commitment = p.String("subjectCommitment");
  auto models = p.Array("models");
  auto submitted = Time(p, "submittedAt");
  auto completed = Time(p, "completedAt");
  for (const absl::Status& st :
       {id.status(), ground.status(), reference.status(), commitment.status(),
        models.status(), submitted.status(), completed.status()}) {
    if (!st.ok()) return st;
  }
  r.request_id = *id;
  r.legal_ground = *ground;
  r.legal_reference = *reference;
  auto raw = HexDecode(*commitment);
  if (!raw) return Invalid("subjectCommitment", "is not lower-case hex");
  r.subject_commitment = *raw;
  r.submitted_us = *submitted;
  r.completed_us = *completed;
  for (size_t i = 0; i < (*models)->size(); ++i) {
    auto m =
        ParseModel((**models)[i], absl::StrCat("predicate.models[", i, "]"));
    if (!m.ok()) return m.status();
    r.models.push_back(*std::move(m));
  }
  if (auto st = Validate(r); !st.ok()) return st;
  // The subjects must name exactly the versions the predicate describes.
  Json::Array expected;
  for (const ModelOutcome& m : r.models) {
    expected.push_back(Json::Object{
        {"digest", Json::Object{{"sha256", HexEncode(m.digest_after)}}},
        {"name", SubjectName(m)}});
  }
  auto subjects = s.Get("subject");
  if (!subjects.ok()) return subjects.status();
  if (!(**subjects == Json(std::move(expected)))) {
    return absl::InvalidArgumentError(
        "statement: subject does not match the predicate's new versions");
  }
  return r;
}

std::string Describe(const CompletionRecord& r) {
  std::string out = absl::StrCat(
      "Erasure request ", r.request_id, " was completed at ",
      FormatTime(r.completed_us), " (submitted ", FormatTime(r.submitted_us),
      ").\n", "Legal ground: ", r.legal_ground,
      r.legal_reference.empty() ? ""
                                : absl::StrCat(" (", r.legal_reference, ")"),
      ".\nData subject commitment: ", HexEncode(r.subject_commitment),
      "\n  (open it with the salt returned at intake: SHA-256(\"lethe-subject/"
      "v1\" || salt || subject id)).\n");
  for (const ModelOutcome& m : r.models) {
    absl::StrAppend(
        &out, "Model ", m.model_name.empty() ? m.model_id : m.model_name,
        m.model_name.empty() ? "" : absl::StrCat(" (", m.model_id, ")"),
        ": version ", m.version_before, " (sha256 ", HexEncode(m.digest_before),
        m.method == kMethodNone
            ? ") is unchanged: it held none of the subject's training records"
            : absl::StrCat(") was replaced by version ", m.version_after,
                           " (sha256 ", HexEncode(m.digest_after), ")"),
        ".\n  ", m.records_removed, " training record(s) removed by method \"",
        m.method, "\"; guarantee: ", GuaranteeName(m.guarantee));
    if (m.guarantee == Guarantee::kCertified) {
      absl::StrAppend(
          &out, absl::StrFormat(" (epsilon %g, delta %g)", m.epsilon, m.delta));
    }
    absl::StrAppend(&out, ".\n");
    for (const MetricCheck& c : m.metrics) {
      absl::StrAppend(
          &out,
          absl::StrFormat(
              "  %s = %g, %s the bound %g.\n", c.name, c.value,
              c.bound == MetricCheck::Bound::kAtMost ? "at most" : "at least",
              c.threshold));
    }
  }
  return out;
}

}  // namespace lethe::cert
