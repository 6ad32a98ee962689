// What the parts of PgWorkQueue share: the batch as SQL arrays, and the
// steps that several operations run inside their transactions (settling
// requests, skipping the tasks of INVALID models, deleting due versions).
// Statements are in queries/*.sql (storage::sql::k...).
#ifndef LETHE_STORAGE_POSTGRES_WORK_QUEUE_INTERNAL_H_
#define LETHE_STORAGE_POSTGRES_WORK_QUEUE_INTERNAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "absl/status/statusor.h"
#include "storage/postgres/artifact_store.h"
#include "storage/postgres/database.h"
#include "storage/work_queue.h"

namespace lethe::storage::internal {

// PostgreSQL array literals of the batch's task ids, tokens, request ids.
std::string TaskIds(const TaskBatch& b);
std::string Tokens(const TaskBatch& b);
std::string ErasureIds(const TaskBatch& b);

// Fails requests of `erasure_ids` (a uuid[] literal) whose task just went
// DEAD, and clears subject keys of FAILED requests with no work left.
void SettleFailedRequests(pqxx::transaction_base& txn,
                          const std::string& erasure_ids);

struct Settled {
  std::vector<std::string> completed;  // requests this call completed
  int64_t removed_in_dataset = 0;      // records removed from `dataset_id`
};

// Settles the requests `erasure_ids` (a uuid[] literal) after some of their
// tasks changed, with the requests locked (in id order, so that settlers
// never deadlock; statements after the lock see every earlier commit):
//   * a subject's records go from every dataset on which each task of its
//     request is DONE or SKIPPED (another model on the same data may still
//     need them as its forget set), and with them the subject's exclusions
//     on that dataset's models; the count is credited to the task of
//     `model_id` when it is on that dataset, else to one of the others;
//   * requests with no task left to run complete (subject key cleared),
//     saying which models were skipped;
//   * requests with a DEAD task fail.
Settled SettleRequests(pqxx::transaction_base& txn,
                       const std::string& erasure_ids, const std::string& actor,
                       const std::string& model_id,
                       const std::string& dataset_id);

// Skips the queued tasks of INVALID models (`model_id`, or every INVALID
// model when empty): such a model can never be unlearned, so its versions,
// all trained before the request, are scheduled for deletion instead, and
// its tasks no longer hold up their requests. Returns how many tasks.
int SkipTasksOfInvalidModels(pqxx::transaction_base& txn,
                             const std::string& model_id,
                             const std::string& actor);

// Puts on `model_id`'s exclusion list every subject whose erasure from the
// model's dataset is under way: one another model of the dataset absorbed
// already, or a request still running there. Called as a training job is
// claimed, so a model created while a request runs never trains on the
// subject (the request may have no task on it: it did not exist when the
// request fanned out). A request that commits later sees the model and
// gives it a task of its own.
void ExcludeSubjectsBeingErased(pqxx::transaction_base& txn,
                                const std::string& model_id);

// Deletes the versions of `model_id` (every model when empty) whose grace
// period ended, and their artifacts once no live version refers to them.
// Returns how many versions.
absl::StatusOr<int> DeleteVersionsDue(Txn& txn, ArtifactStore* artifacts,
                                      const std::string& actor,
                                      const std::string& model_id);

}  // namespace lethe::storage::internal

#endif  // LETHE_STORAGE_POSTGRES_WORK_QUEUE_INTERNAL_H_
