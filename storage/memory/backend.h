// The in-memory Backend: every store and the work queue in one process, for
// fast unit tests of the layers above storage/ (the worker's batch logic,
// the gRPC handlers) without PostgreSQL. The product never runs it.
//
// It keeps the contracts of storage/*.h and mirrors what the PostgreSQL
// backend (storage/postgres/) does where a caller can observe it: request
// and task states, idempotent intake on (client key id, idempotency key)
// with NOTHING_TO_ERASE and the intake deletion in datasets no model uses,
// fencing tokens and lease expiry, backoff and DEAD after max attempts or
// max lost leases, SKIPPED tasks of INVALID models, exclusion lists,
// version retirement with grace, a real Merkle log of DSSE-signed
// certificates and signed checkpoints, and the error codes and messages.
//
// What differs from PostgreSQL:
//   * One mutex over all state: every call is serialised, so nothing is
//     ever "locked by another worker" (ClaimBatch's SKIP LOCKED has nothing
//     to skip). Hooks (CompletionHook, CertifyHook) run under that mutex:
//     they may use the CertificateScope they are given but must not call
//     the Backend or its stores (that would deadlock).
//   * Publish, CertifyMissing and CertificateScope::Isolated undo a failed
//     step by copying the whole state first: O(state) per call, fine for
//     test data, not for millions of records. Other calls check before
//     they write, so a failed call writes nothing either.
//   * ErasureStore::SubmitAsync completes synchronously: `done` runs on the
//     calling thread before SubmitAsync returns. ErasureStoreOptions (group
//     commit) do not apply.
//   * Time is MemoryOptions::now_us (leases, backoff, batch windows, grace
//     periods, timestamps); tests move it with a ManualClock. Change
//     notifications are delivered at once, in real time.
//   * The policy's JSON is read with a minimal parser: batchSize,
//     maxAttempts, batchWindowSeconds, device and sisa.shards are honoured
//     as the SQL reads them (a SISA model's batch takes the other due tasks
//     of the shards it retrains, by core::AssignSubject's rule); a
//     malformed policy reads as empty (defaults) instead of failing.
//   * No audit log, no schema: Prepare only answers OK. Artifacts live in
//     a map by digest (no filesystem store). Certificates are never
//     superseded. Task priority is always 0.
#ifndef LETHE_STORAGE_MEMORY_BACKEND_H_
#define LETHE_STORAGE_MEMORY_BACKEND_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "storage/backend.h"

namespace lethe::storage {

struct MemoryOptions {
  // Microseconds since the Unix epoch. Empty: the system clock.
  std::function<int64_t()> now_us;
};

std::unique_ptr<Backend> NewMemoryBackend(MemoryOptions options = {});

// A clock for tests that moves only when told; copies share one time.
// Thread-safe.
class ManualClock {
 public:
  // 2025-01-01T00:00:00Z by default: certificates need a plausible time.
  explicit ManualClock(int64_t start_us = 1735689600000000)
      : now_(std::make_shared<std::atomic<int64_t>>(start_us)) {}

  int64_t Now() const { return now_->load(); }
  void Advance(std::chrono::microseconds by) { now_->fetch_add(by.count()); }
  // For MemoryOptions::now_us.
  std::function<int64_t()> AsFunction() const {
    return [now = now_] { return now->load(); };
  }

 private:
  std::shared_ptr<std::atomic<int64_t>> now_;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_MEMORY_BACKEND_H_
