// Completion certificates for the requests a publication completes: builds
// each request's cert::CompletionRecord from what the same transaction
// wrote (versions, digests, records removed, the engine's report, the
// policy's gate) and appends it to the transparency log
// (storage::CertificateStore::IssueInTxn, idempotent per request).
#ifndef LETHE_WORKER_CERTIFY_H_
#define LETHE_WORKER_CERTIFY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cert/keys.h"
#include "cert/statement.h"
#include "storage/database.h"

namespace lethe::worker {

// The record of a COMPLETED request, read inside `txn`.
absl::StatusOr<cert::CompletionRecord> CompletionRecordOf(
    storage::Txn& txn, const std::string& erasure_id);

// Issues one certificate per request in `erasure_ids`; returns how many
// were newly issued.
absl::StatusOr<int> IssueCertificates(storage::Txn& txn,
                                      const std::vector<std::string>& erasure_ids,
                                      const cert::KeyRing& keys);

// Requests COMPLETED without a certificate (completed while no worker had
// signing keys, say): issued one transaction each, oldest first, at most
// `limit`. The step that makes "exactly one certificate per completed
// request" hold whatever happened at completion. A request completed with
// no model unlearned (every task SKIPPED: its models were INVALID and their
// versions deleted) has nothing to certify and gets none.
absl::StatusOr<int> IssueMissingCertificates(storage::Database& db,
                                             const cert::KeyRing& keys,
                                             int limit);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_CERTIFY_H_
