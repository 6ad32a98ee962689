// The certificate's content: an in-toto Statement v1
// (github.com/in-toto/attestation, spec/v1/statement.md) whose subjects are
// the model versions an erasure produced and whose predicate, of type
// kCompletionPredicateType, says what was done (docs/compliance.md documents
// every field).
//
// No personal data: the data subject appears only as the intake commitment
// SHA-256("lethe-subject/v1" || salt || subject_id).
#ifndef LETHE_CERT_STATEMENT_H_
#define LETHE_CERT_STATEMENT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::cert {

inline constexpr std::string_view kStatementType =
    "https://in-toto.io/Statement/v1";
inline constexpr std::string_view kCompletionPredicateType =
    "https://lethe.dev/unlearning-completion/v1";

// What the unlearning method guarantees about the new model.
enum class Guarantee {
  kExact,        // as if retrained without the data (retraining, SISA)
  kCertified,    // (epsilon, delta)-indistinguishable from retraining
  kApproximate,  // empirical: only the verification metrics vouch for it
  // Retrained without the data by lethe's recipe, every buffer reset or
  // declared data-free, but the registered weights were trained elsewhere.
  kRetrained,
  // As kRetrained, but undeclared buffers were kept: they may hold the data.
  kParametersRetrained,
};
// "exact" | "certified" | "approximate" | "retrained" |
// "parameters_retrained"
const char* GuaranteeName(Guarantee g);

// A verification metric and the policy threshold it met.
struct MetricCheck {
  enum class Bound { kAtMost, kAtLeast };
  std::string name;  // e.g. "forget_accuracy"
  double value = 0;
  Bound bound = Bound::kAtMost;
  double threshold = 0;

  bool Met() const {
    return bound == Bound::kAtMost ? value <= threshold : value >= threshold;
  }
};

// The method of a model that held none of the subject's training records
// (only test or other records were deleted): its version is unchanged.
inline constexpr char kMethodNone[] = "none";

// One model the erasure touched.
struct ModelOutcome {
  std::string model_id;
  std::string model_name;  // optional
  int64_t version_before = 0;
  std::string digest_before;  // SHA-256 of the artifact, raw 32 bytes
  int64_t version_after = 0;
  std::string digest_after;  // raw 32 bytes
  int64_t records_removed = 0;
  std::string method;  // e.g. "retrain", "sisa", "newton"
  Guarantee guarantee = Guarantee::kApproximate;
  double epsilon = 0;  // kCertified only: > 0
  double delta = 0;    // kCertified only: in [0, 1)
  std::vector<MetricCheck> metrics;
};

// Everything a completion certificate states. The worker fills it inside
// the transaction that completes the request.
struct CompletionRecord {
  std::string request_id;            // the erasure request's UUID
  std::string legal_ground;          // e.g. "GDPR_ART17_1B_CONSENT_WITHDRAWN"
  std::string legal_reference;       // free text, may be empty
  std::string subject_commitment;    // raw 32 bytes, from intake
  std::vector<ModelOutcome> models;  // at least one
  int64_t submitted_us = 0;          // microseconds since the epoch
  int64_t completed_us = 0;
};

// INVALID_ARGUMENT naming the field when the record is incomplete or
// inconsistent: missing ids, digests not 32 bytes, version_after not after
// version_before, epsilon missing for a certified method, a metric that did
// not meet its threshold, completion before submission, no models.
absl::Status Validate(const CompletionRecord& record);

// The statement as deterministic JSON (json.h). Validates first.
absl::StatusOr<std::string> MakeStatement(const CompletionRecord& record);

// Reads a statement back. INVALID_ARGUMENT unless it is a Statement v1
// with the completion predicate, valid as above, whose subjects are exactly
// the models' new versions and digests.
absl::StatusOr<CompletionRecord> ParseStatement(std::string_view json);

// The record in plain words, one fact per line, for people.
std::string Describe(const CompletionRecord& record);

}  // namespace lethe::cert

#endif  // LETHE_CERT_STATEMENT_H_
