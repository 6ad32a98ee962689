// Completion certificates for the requests a publication completes: builds
// each request's cert::CompletionRecord from what the same transaction
// wrote (versions, digests, records removed, the engine's report, the
// policy's gate) and appends it to the transparency log
// (storage::CertificateScope::Issue, idempotent per request).
#ifndef LETHE_WORKER_CERTIFY_H_
#define LETHE_WORKER_CERTIFY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cert/keys.h"
#include "cert/statement.h"
#include "storage/certificate_store.h"

namespace lethe::worker {

// The certificate's record of a COMPLETED request, from the facts storage
// read: per model, the versions and digests, records removed, and for a
// non-exact method the guarantee and the gate the engine's report says it
// passed (INTERNAL if a stored report or policy is not JSON).
absl::StatusOr<cert::CompletionRecord> CompletionRecordOf(
    const storage::CompletedRequest& request);

// Issues one certificate per request in `erasure_ids`, inside the
// transaction of `scope`; returns how many were newly issued.
absl::StatusOr<int> IssueCertificates(
    storage::CertificateScope& scope,
    const std::vector<std::string>& erasure_ids, const cert::KeyRing& keys);

// Requests COMPLETED without a certificate (completed while no worker had
// signing keys, say): issued one transaction each, oldest first, at most
// `limit` (storage::CertificateStore::CertifyMissing). The step that makes
// "exactly one certificate per completed request" hold whatever happened
// at completion. Returns how many were newly issued.
absl::StatusOr<int> IssueMissingCertificates(
    storage::CertificateStore& certificates, const cert::KeyRing& keys,
    int limit);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_CERTIFY_H_
