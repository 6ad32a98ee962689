#include "storage/work_queue.h"

#include <cmath>
#include <random>

#include <pqxx/result>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/dataset_store.h"
#include "storage/hash.h"
#include "storage/model_store.h"
#include "storage/sql_util.h"

namespace lethe::storage {
namespace {

using internal::Bytea;
using internal::ReadBytea;

// Postgres array literals of the batch's ids and tokens.
std::string TaskIds(const TaskBatch& b) {
  std::vector<std::string> v;
  for (const auto& t : b.tasks) v.push_back(absl::StrCat(t.task_id));
  return absl::StrCat("{", absl::StrJoin(v, ","), "}");
}
std::string Tokens(const TaskBatch& b) {
  std::vector<std::string> v;
  for (const auto& t : b.tasks) v.push_back(absl::StrCat(t.token));
  return absl::StrCat("{", absl::StrJoin(v, ","), "}");
}
std::string ErasureIds(const TaskBatch& b) {
  std::vector<std::string> v;
  for (const auto& t : b.tasks) v.push_back(t.erasure_id);
  return internal::UuidArray(v);
}

// The rows of the batch that this owner still holds, locked.
constexpr char kHeldTasks[] =
    "SELECT t.id FROM erasure_tasks t "
    "JOIN unnest($1::bigint[], $2::int[]) AS h(id, token) "
    "  ON h.id = t.id AND h.token = t.attempts "
    "WHERE t.state = 'LEASED' AND t.lease_owner = $3 FOR UPDATE OF t";

// SQL for a model's policy value with a default (protobuf JSON names).
std::string PolicyInt(const std::string& model, const std::string& field,
                      const std::string& fallback) {
  return absl::StrCat("coalesce(nullif((", model, ".policy->>'", field,
                      "')::int, 0), ", fallback, ")");
}

// SQL condition: the model `alias` may run on a worker of `device_kind`
// ("cpu", "cuda" or empty for any). Reads UnlearningPolicy.device from the
// policy's JSON (absent = DEVICE_REQUIREMENT_ANY).
std::string DeviceFilter(const std::string& alias,
                         const std::string& device_kind) {
  if (device_kind.empty()) return "TRUE";
  const char* own = device_kind == "cuda" ? "'DEVICE_REQUIREMENT_CUDA'"
                                          : "'DEVICE_REQUIREMENT_CPU'";
  return absl::StrCat("coalesce(", alias, ".policy->>'device', ",
                      "'DEVICE_REQUIREMENT_ANY') IN ('DEVICE_REQUIREMENT_ANY', ",
                      own, ")");
}

// Fails requests whose task just went DEAD, and clears subject keys of
// terminal requests with no work left.
void SettleFailedRequests(pqxx::transaction_base& txn,
                          const std::string& erasure_ids) {
  txn.exec_params(
      "UPDATE erasure_requests e SET state = 'FAILED', updated_at = now(), "
      "completed_at = now(), state_reason = coalesce((SELECT 'task on model '"
      " || t.model_id || ' failed: ' || t.last_error FROM erasure_tasks t "
      " WHERE t.erasure_id = e.id AND t.state = 'DEAD' LIMIT 1), 'failed') "
      "WHERE e.id = ANY($1::uuid[]) AND e.state IN ('QUEUED', 'RUNNING') "
      "AND EXISTS (SELECT 1 FROM erasure_tasks t WHERE t.erasure_id = e.id "
      "            AND t.state = 'DEAD')",
      erasure_ids);
  txn.exec_params(
      "UPDATE erasure_requests e SET subject_key = NULL "
      "WHERE e.id = ANY($1::uuid[]) AND e.state = 'FAILED' "
      "AND e.subject_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
      "erasure_tasks t WHERE t.erasure_id = e.id AND t.state IN "
      "('QUEUED', 'LEASED'))",
      erasure_ids);
}

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
                       const std::string& dataset_id) {
  txn.exec_params(
      "SELECT 1 FROM erasure_requests WHERE id = ANY($1::uuid[]) "
      "ORDER BY id FOR UPDATE",
      erasure_ids);
  Settled out;
  out.removed_in_dataset = txn.exec_params1(
      "WITH settled AS MATERIALIZED (SELECT e.id AS erasure_id, "
      " e.subject_key, m.dataset_id FROM erasure_requests e JOIN "
      " erasure_tasks t ON t.erasure_id = e.id JOIN models m ON m.id = "
      " t.model_id WHERE e.id = ANY($1::uuid[]) AND e.subject_key IS NOT "
      " NULL AND e.state IN ('QUEUED', 'RUNNING') GROUP BY e.id, "
      " e.subject_key, m.dataset_id "
      " HAVING bool_and(t.state IN ('DONE', 'SKIPPED'))), "
      "gone AS (DELETE FROM records r USING settled s WHERE r.dataset_id = "
      " s.dataset_id AND r.subject_key = s.subject_key "
      " RETURNING s.erasure_id, s.dataset_id), "
      "unlisted AS (DELETE FROM model_exclusions x USING settled s, models m "
      " WHERE m.id = x.model_id AND m.dataset_id = s.dataset_id AND "
      " x.subject_key = s.subject_key), "
      "per AS (SELECT erasure_id, dataset_id, count(*) AS n FROM gone "
      " GROUP BY erasure_id, dataset_id), "
      "credited AS (UPDATE erasure_tasks t SET records_removed = "
      " t.records_removed + per.n FROM per WHERE t.id = (SELECT c.id FROM "
      " erasure_tasks c JOIN models cm ON cm.id = c.model_id WHERE "
      " c.erasure_id = per.erasure_id AND cm.dataset_id = per.dataset_id "
      " ORDER BY c.model_id::text = $2 DESC, c.state = 'DONE' DESC, c.id "
      " LIMIT 1)) "
      "SELECT coalesce(sum(n) FILTER (WHERE dataset_id::text = $3), 0) "
      "FROM per",
      erasure_ids, model_id, dataset_id)[0]
                               .as<int64_t>();
  auto completed = txn.exec_params(
      "UPDATE erasure_requests e SET state = 'COMPLETED', completed_at = "
      "now(), updated_at = now(), subject_key = NULL, state_reason = "
      "coalesce((SELECT string_agg(t.last_error, '; ' ORDER BY t.model_id) "
      "FROM erasure_tasks t WHERE t.erasure_id = e.id AND t.state = "
      "'SKIPPED'), '') WHERE e.id = ANY($1::uuid[]) AND e.state IN "
      "('QUEUED', 'RUNNING') AND NOT EXISTS (SELECT 1 FROM erasure_tasks t "
      "WHERE t.erasure_id = e.id AND t.state NOT IN ('DONE', 'SKIPPED')) "
      "RETURNING e.id::text",
      erasure_ids);
  for (const auto& r : completed) {
    out.completed.emplace_back(r[0].c_str());
    internal::AppendAudit(txn, actor, "erasure.completed", out.completed.back(),
                          "", "");
  }
  SettleFailedRequests(txn, erasure_ids);
  return out;
}

// Skips the queued tasks of INVALID models (`model_id`, or every INVALID
// model when empty): such a model can never be unlearned, so its versions,
// all trained before the request, are scheduled for deletion instead, and
// its tasks no longer hold up their requests. Returns how many tasks.
int SkipTasksOfInvalidModels(pqxx::transaction_base& txn,
                             const std::string& model_id,
                             const std::string& actor) {
  auto skipped = txn.exec_params(
      "WITH skipped AS (UPDATE erasure_tasks t SET state = 'SKIPPED', "
      " lease_owner = NULL, lease_expires_at = NULL, updated_at = now(), "
      " last_error = 'model ' || m.name || ' is INVALID (' || "
      " m.state_reason || '): its versions were deleted instead of "
      " unlearned' FROM models m WHERE m.id = t.model_id AND m.state = "
      " 'INVALID' AND t.state = 'QUEUED' AND ($1 = '' OR m.id::text = $1) "
      " RETURNING t.erasure_id, t.model_id), "
      "retired AS (UPDATE model_versions v SET delete_after = now() WHERE "
      " v.model_id IN (SELECT model_id FROM skipped) AND v.deleted_at IS "
      " NULL AND (v.delete_after IS NULL OR v.delete_after > now())) "
      "SELECT erasure_id::text, model_id::text FROM skipped",
      model_id);
  if (skipped.empty()) return 0;
  std::vector<std::string> ids;
  for (const auto& r : skipped) {
    ids.emplace_back(r[0].c_str());
    internal::AppendAudit(txn, actor, "task.skipped", ids.back(), r[1].c_str(),
                          "{\"reason\":\"model invalid\"}");
  }
  SettleRequests(txn, internal::UuidArray(ids), actor, "", "");
  txn.exec("NOTIFY lethe_tasks");
  return static_cast<int>(skipped.size());
}

// Puts on `model_id`'s exclusion list every subject whose erasure from the
// model's dataset is under way: one another model of the dataset absorbed
// already, or a request still running there. Called as a training job is
// claimed, so a model created while a request runs never trains on the
// subject (the request may have no task on it: it did not exist when the
// request fanned out). A request that commits later sees the model and
// gives it a task of its own.
void ExcludeSubjectsBeingErased(pqxx::transaction_base& txn,
                                const std::string& model_id) {
  txn.exec_params(
      "INSERT INTO model_exclusions (model_id, subject_key, erasure_id) "
      "SELECT DISTINCT ON (k.subject_key) $1::uuid, k.subject_key, "
      "k.erasure_id FROM (SELECT x.subject_key, x.erasure_id FROM "
      "model_exclusions x JOIN models o ON o.id = x.model_id JOIN models me "
      "ON me.dataset_id = o.dataset_id WHERE me.id = $1::uuid AND x.model_id "
      "<> $1::uuid UNION ALL SELECT e.subject_key, e.id FROM "
      "erasure_requests e JOIN erasure_tasks t ON t.erasure_id = e.id JOIN "
      "models o ON o.id = t.model_id JOIN models me ON me.dataset_id = "
      "o.dataset_id WHERE me.id = $1::uuid AND e.subject_key IS NOT NULL "
      "AND e.state IN ('QUEUED', 'RUNNING')) AS k "
      "ON CONFLICT (model_id, subject_key) DO NOTHING",
      model_id);
}

}  // namespace

double WorkQueue::BackoffSeconds(int attempts) const {
  thread_local std::mt19937_64 rng(std::random_device{}());
  const double base = options_.retry_base_seconds *
                      std::pow(2.0, std::max(0, attempts - 1));
  const double capped = std::min(base, options_.retry_max_seconds);
  // "Equal jitter": half fixed, half random, so retries of a burst spread.
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return capped * jitter(rng);
}

absl::StatusOr<int> WorkQueue::RescueExpired() {
  return db_->TransactValue<int>([&](Txn& txn) -> absl::StatusOr<int> {
    // A lost lease is not a failure of the work (the worker was killed or
    // cut off from the database): it counts against max_lost_leases only,
    // and backs off briefly in case the model itself kills its workers.
    auto res = txn.exec_params(
        "UPDATE erasure_tasks t SET lost_leases = t.lost_leases + 1, "
        "state = CASE WHEN t.lost_leases + 1 >= $1 THEN 'DEAD' ELSE "
        "'QUEUED' END, lease_owner = NULL, lease_expires_at = NULL, "
        "updated_at = now(), last_error = CASE WHEN t.lost_leases + 1 >= $1 "
        "THEN 'lease lost ' || (t.lost_leases + 1) || ' times (the workers "
        "running it died or lost the database); last: ' || t.lease_owner "
        "ELSE 'lease of ' || t.lease_owner || ' expired (worker lost)' END, "
        "not_before = now() + make_interval(secs => least($3, $2 * (0.5 + "
        "random() / 2) * power(2, least(t.lost_leases, 10)))) "
        "WHERE t.state = 'LEASED' AND t.lease_expires_at < now() "
        "RETURNING t.erasure_id::text",
        options_.max_lost_leases, options_.retry_base_seconds,
        options_.retry_max_seconds);
    std::vector<std::string> ids;
    for (const auto& r : res) ids.emplace_back(r[0].c_str());
    if (!ids.empty()) {
      SettleFailedRequests(txn, internal::UuidArray(ids));
      txn.exec("NOTIFY lethe_tasks");
    }
    // Model jobs likewise; a model whose jobs keep losing their workers
    // becomes INVALID (and its queued tasks SKIPPED) after the bound.
    auto jobs = txn.exec_params(
        "UPDATE models SET job_lost_leases = job_lost_leases + 1, state = "
        "CASE WHEN job_lost_leases + 1 >= $1 THEN 'INVALID' ELSE state END, "
        "state_reason = CASE WHEN job_lost_leases + 1 >= $1 THEN 'job lease "
        "lost ' || (job_lost_leases + 1) || ' times (the workers running it "
        "died or lost the database)' ELSE 'lease of ' || lease_owner || "
        "' expired (worker lost)' END, lease_owner = NULL, lease_expires_at "
        "= NULL, updated_at = now() WHERE state IN ('PENDING_VALIDATION', "
        "'TRAINING') AND lease_expires_at < now() "
        "RETURNING id::text, state = 'INVALID'",
        options_.max_lost_leases);
    for (const auto& r : jobs) {
      if (r[1].as<bool>()) SkipTasksOfInvalidModels(txn, r[0].c_str(), options_.owner);
    }
    return static_cast<int>(ids.size() + jobs.size());
  });
}

absl::StatusOr<int> WorkQueue::SkipInvalidModels() {
  return db_->TransactValue<int>([&](Txn& txn) -> absl::StatusOr<int> {
    return SkipTasksOfInvalidModels(txn, "", options_.owner);
  });
}

absl::StatusOr<std::optional<TaskBatch>> WorkQueue::ClaimBatch() {
  std::string model_id;
  auto claimed = db_->TransactValue<std::optional<TaskBatch>>(
      [&](Txn& txn) -> absl::StatusOr<std::optional<TaskBatch>> {
        // 1. Lock one READY model with due work and no batch in flight.
        auto model = txn.exec_params(
            absl::StrCat(
                "SELECT m.id::text, ", PolicyInt("m", "batchSize", "$1"),
                ", coalesce((m.policy->'sisa'->>'shards')::int, 0)"
                " FROM models m WHERE m.state = 'READY' AND ",
                DeviceFilter("m", options_.device_kind),
                " AND EXISTS (SELECT 1 "
                "FROM erasure_tasks q WHERE q.model_id = m.id AND q.state = "
                "'QUEUED' AND q.not_before <= now()) AND NOT EXISTS (SELECT 1 "
                "FROM erasure_tasks l WHERE l.model_id = m.id AND l.state = "
                "'LEASED') AND ((SELECT count(*) FROM erasure_tasks q WHERE "
                "q.model_id = m.id AND q.state = 'QUEUED' AND q.not_before <= "
                "now()) >= ", PolicyInt("m", "batchSize", "$1"),
                " OR (SELECT min(q.created_at) FROM erasure_tasks q WHERE "
                "q.model_id = m.id AND q.state = 'QUEUED') <= now() - "
                "make_interval(secs => ", PolicyInt("m", "batchWindowSeconds", "0"),
                ")) ORDER BY (SELECT max(q.priority) FROM erasure_tasks q "
                "WHERE q.model_id = m.id AND q.state = 'QUEUED') DESC, "
                "(SELECT min(q.created_at) FROM erasure_tasks q WHERE "
                "q.model_id = m.id AND q.state = 'QUEUED') LIMIT 1 "
                "FOR UPDATE OF m SKIP LOCKED"),
            options_.default_batch);
        if (model.empty()) return std::optional<TaskBatch>();
        model_id = model[0][0].c_str();
        const int batch_size = model[0][1].as<int>();
        const int sisa_shards = model[0][2].as<int>();
        // 2. A fresh snapshot, taken with the model locked, sees any batch
        //    another worker committed meanwhile. The oldest tasks up to the
        //    batch size are `first`. A SISA model is batched per shard: its
        //    cost is the shards it retrains, so every other due task whose
        //    subject lives in a shard `first` retrains anyway joins the run
        //    (up to the worker's --max-batch-size in all). The shard is
        //    core::ShardOfSubject: the first 8 bytes of SHA-256(subject key),
        //    big-endian, modulo the shard count.
        const std::string shard_of =
            "(((('x' || substr(encode(sha256(e.subject_key), 'hex'), 1, 16))"
            "::bit(64)::bigint)::numeric + 18446744073709551616) % "
            "18446744073709551616 % $5)";
        auto tasks = txn.exec_params(
            absl::StrCat(
                "WITH first AS MATERIALIZED ("
                " SELECT t.id, t.erasure_id FROM erasure_tasks t WHERE "
                " t.model_id = $1::uuid AND t.state = 'QUEUED' AND "
                " t.not_before <= now() AND NOT EXISTS (SELECT 1 FROM "
                " erasure_tasks l WHERE l.model_id = $1::uuid AND l.state = "
                " 'LEASED') ORDER BY t.priority DESC, t.created_at "
                " LIMIT $2 FOR UPDATE OF t SKIP LOCKED), "
                "shards AS MATERIALIZED (SELECT DISTINCT ", shard_of,
                " AS shard FROM first f JOIN erasure_requests e ON e.id = "
                " f.erasure_id WHERE $5 > 0), "
                "extra AS MATERIALIZED (SELECT t.id FROM erasure_tasks t JOIN "
                " erasure_requests e ON e.id = t.erasure_id WHERE $5 > 0 AND "
                " t.model_id = $1::uuid AND t.state = 'QUEUED' AND "
                " t.not_before <= now() AND t.id NOT IN (SELECT id FROM first) "
                " AND ", shard_of, " IN (SELECT shard FROM shards) "
                " ORDER BY t.priority DESC, t.created_at LIMIT $6 "
                " FOR UPDATE OF t SKIP LOCKED), "
                "picked AS (SELECT id FROM first UNION ALL SELECT id FROM extra) "
                "UPDATE erasure_tasks t SET state = 'LEASED', attempts = "
                "t.attempts + 1, lease_owner = $3, lease_expires_at = now() + "
                "make_interval(secs => $4), updated_at = now() FROM picked "
                "WHERE t.id = picked.id "
                "RETURNING t.id, t.attempts, t.erasure_id::text"),
            model_id, batch_size, options_.owner,
            static_cast<double>(options_.lease.count()), sisa_shards,
            std::max(0, options_.max_batch - batch_size));
        if (tasks.empty()) return std::optional<TaskBatch>();
        TaskBatch batch;
        std::vector<std::string> erasures;
        for (const auto& r : tasks) {
          batch.tasks.push_back(LeasedTask{r[0].as<int64_t>(), r[1].as<int32_t>(),
                                           r[2].c_str(), ""});
          erasures.emplace_back(r[2].c_str());
        }
        auto keys = txn.exec_params(
            "UPDATE erasure_requests SET state = CASE WHEN state = 'QUEUED' "
            "THEN 'RUNNING' ELSE state END, updated_at = now() "
            "WHERE id = ANY($1::uuid[]) RETURNING id::text, subject_key",
            internal::UuidArray(erasures));
        for (const auto& r : keys) {
          for (auto& t : batch.tasks) {
            if (t.erasure_id == r[0].c_str()) t.subject_key = ReadBytea(r[1]);
          }
        }
        internal::AppendAudit(
            txn, options_.owner, "tasks.claimed", "", model_id,
            absl::StrCat("{\"tasks\":", batch.tasks.size(), "}"));
        return std::optional<TaskBatch>(std::move(batch));
      });
  if (!claimed.ok() || !claimed->has_value()) return claimed;
  ModelStore models(db_, artifacts_);
  auto model = models.Get(model_id);
  if (!model.ok()) return model.status();
  DatasetStore datasets(db_);
  auto dataset = datasets.Get(model->dataset_id);
  if (!dataset.ok()) return dataset.status();
  (*claimed)->model = std::move(*model);
  (*claimed)->dataset = std::move(*dataset);
  return claimed;
}

absl::Status WorkQueue::Renew(const TaskBatch& batch) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto res = txn.exec_params(
        "UPDATE erasure_tasks t SET lease_expires_at = now() + "
        "make_interval(secs => $4) FROM unnest($1::bigint[], $2::int[]) AS "
        "h(id, token) WHERE h.id = t.id AND h.token = t.attempts AND "
        "t.state = 'LEASED' AND t.lease_owner = $3 RETURNING t.id",
        TaskIds(batch), Tokens(batch), options_.owner,
        static_cast<double>(options_.lease.count()));
    if (res.size() != batch.tasks.size()) {
      return absl::FailedPreconditionError(
          "lease lost: another worker took over part of this batch");
    }
    return absl::OkStatus();
  });
}

absl::Status WorkQueue::Release(const TaskBatch& batch) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    txn.exec_params(
        "UPDATE erasure_tasks t SET state = 'QUEUED', lease_owner = NULL, "
        "lease_expires_at = NULL, not_before = now(), updated_at = now() "
        "FROM unnest($1::bigint[], $2::int[]) AS "
        "h(id, token) WHERE h.id = t.id AND h.token = t.attempts AND "
        "t.state = 'LEASED' AND t.lease_owner = $3",
        TaskIds(batch), Tokens(batch), options_.owner);
    internal::AppendAudit(txn, options_.owner, "tasks.released", "",
                          batch.model.id, "");
    txn.exec("NOTIFY lethe_tasks");
    return absl::OkStatus();
  });
}

absl::Status WorkQueue::Fail(const TaskBatch& batch,
                             const std::string& error) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto failed = txn.exec_params(
        absl::StrCat(
            "UPDATE erasure_tasks t SET failures = t.failures + 1, state = "
            "CASE WHEN t.failures + 1 >= ", PolicyInt("m", "maxAttempts", "$4"),
            " THEN 'DEAD' ELSE 'QUEUED' END, lease_owner = NULL, "
            "lease_expires_at = NULL, last_error = $5, updated_at = now(), "
            "not_before = now() + make_interval(secs => least($7, $6 * (0.5 "
            "+ random() / 2) * power(2, least(t.failures, 10)))) FROM models "
            "m, unnest($1::bigint[], $2::int[]) AS h(id, token) WHERE m.id = "
            "t.model_id AND h.id = t.id AND h.token = t.attempts AND t.state "
            "= 'LEASED' AND t.lease_owner = $3 "
            "RETURNING t.erasure_id::text, t.state = 'DEAD', t.failures"),
        TaskIds(batch), Tokens(batch), options_.owner,
        options_.default_max_attempts, error, options_.retry_base_seconds,
        options_.retry_max_seconds);
    if (failed.empty()) return absl::OkStatus();  // lease lost: not ours
    for (const auto& r : failed) {
      internal::AppendAudit(
          txn, options_.owner, r[1].as<bool>() ? "task.dead" : "task.retry",
          r[0].c_str(), batch.model.id,
          absl::StrCat("{\"failures\":", r[2].as<int>(), "}"));
    }
    SettleFailedRequests(txn, ErasureIds(batch));
    txn.exec("NOTIFY lethe_tasks");
    return absl::OkStatus();
  });
}

absl::StatusOr<LatestVersion> WorkQueue::Latest(const std::string& model_id) {
  return db_->TransactValue<LatestVersion>(
      [&](Txn& txn) -> absl::StatusOr<LatestVersion> {
        auto res = txn.exec_params(
            "SELECT version, artifact_sha256, state_sha256 FROM "
            "model_versions WHERE model_id = $1::uuid AND deleted_at IS NULL "
            "ORDER BY version DESC LIMIT 1",
            model_id);
        if (res.empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("model ", model_id, " has no live version"));
        }
        LatestVersion v;
        v.version = res[0][0].as<int64_t>();
        v.artifact_sha256 = ReadBytea(res[0][1]);
        auto bytes = artifacts_->Get(txn, v.artifact_sha256);
        if (!bytes.ok()) return bytes.status();
        v.artifact = std::move(*bytes);
        if (!res[0][2].is_null()) {
          auto state = artifacts_->Get(txn, ReadBytea(res[0][2]));
          if (!state.ok()) return state.status();
          v.state = std::move(*state);
        }
        return v;
      });
}

absl::Status WorkQueue::ForEachTrainingRecord(
    const std::string& model_id,
    const std::function<absl::Status(RecordData&)>& fn) {
  // Pages of 5,000 keep memory flat on large datasets.
  int64_t after = 0;
  for (;;) {
    std::vector<RecordData> page;
    auto st = db_->Transact([&](Txn& txn) -> absl::Status {
      auto res = txn.exec_params(
          "SELECT r.id, r.subject_key, r.label, r.split = 'test', r.features "
          "FROM models m JOIN records r ON r.dataset_id = m.dataset_id "
          "WHERE m.id = $1::uuid AND r.id > $2 AND NOT EXISTS (SELECT 1 "
          "FROM model_exclusions x WHERE x.model_id = m.id AND "
          "x.subject_key = r.subject_key) ORDER BY r.id LIMIT 5000",
          model_id, after);
      for (const auto& r : res) {
        page.push_back(RecordData{r[0].as<int64_t>(), ReadBytea(r[1]),
                                  r[2].as<int32_t>(), r[3].as<bool>(),
                                  ReadBytea(r[4])});
      }
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    if (page.empty()) return absl::OkStatus();
    after = page.back().id;
    for (auto& r : page) {
      if (auto s = fn(r); !s.ok()) return s;
    }
  }
}

absl::StatusOr<PublishResult> WorkQueue::Publish(const TaskBatch& batch,
                                                 const PublishRequest& req,
                                                 const CompletionHook& hook) {
  return db_->TransactValue<PublishResult>(
      [&](Txn& txn) -> absl::StatusOr<PublishResult> {
        auto held = txn.exec_params(kHeldTasks, TaskIds(batch), Tokens(batch),
                                    options_.owner);
        if (held.size() != batch.tasks.size()) {
          return absl::FailedPreconditionError(
              "lease lost before publishing; the next attempt will redo it");
        }
        txn.exec_params("SELECT 1 FROM models WHERE id = $1::uuid FOR UPDATE",
                        batch.model.id);
        const int64_t latest =
            txn.exec_params1("SELECT coalesce(max(version), 0) FROM "
                             "model_versions WHERE model_id = $1::uuid",
                             batch.model.id)[0]
                .as<int64_t>();
        if (latest != req.parent_version) {
          return absl::AbortedError(absl::StrCat(
              "model ", batch.model.id, " moved from version ",
              req.parent_version, " to ", latest, " during the run"));
        }
        PublishResult out;
        out.version = latest;
        if (!req.artifact.empty()) {
          const std::string sha = Sha256(req.artifact);
          if (auto st = artifacts_->Put(txn, sha, req.artifact); !st.ok()) {
            return st;
          }
          std::string state_sha;
          if (!req.state.empty()) {
            state_sha = Sha256(req.state);
            if (auto st = artifacts_->Put(txn, state_sha, req.state); !st.ok()) {
              return st;
            }
          }
          out.version = latest + 1;
          txn.exec_params(
              "INSERT INTO model_versions (model_id, version, artifact_sha256, "
              "size_bytes, parent_version, produced_by, report, state_sha256) "
              "VALUES ($1::uuid, $2, $3, $4, $5, $6, nullif($7, '')::jsonb, "
              "nullif($8, '\\x'::bytea))",
              batch.model.id, out.version, Bytea(sha),
              static_cast<int64_t>(req.artifact.size()), latest,
              req.produced_by, req.report_json, Bytea(state_sha));
        }
        txn.exec_params(
            "UPDATE erasure_tasks t SET state = 'DONE', result_version = $3, "
            "method = $4, lease_owner = NULL, lease_expires_at = NULL, "
            "updated_at = now() FROM unnest($1::bigint[], $2::int[]) AS "
            "h(id, token) WHERE h.id = t.id AND h.token = t.attempts",
            TaskIds(batch), Tokens(batch), out.version, req.produced_by);
        // From this commit on, no run of this model reads these subjects
        // (before the settling below, which drops the exclusions of
        // subjects whose records it deletes).
        const std::string erasures = ErasureIds(batch);
        txn.exec_params(
            "INSERT INTO model_exclusions (model_id, subject_key, erasure_id, "
            "version) SELECT $1::uuid, e.subject_key, e.id, $3 FROM "
            "erasure_requests e WHERE e.id = ANY($2::uuid[]) AND "
            "e.subject_key IS NOT NULL ON CONFLICT (model_id, subject_key) "
            "DO NOTHING",
            batch.model.id, erasures, out.version);
        Settled settled = SettleRequests(txn, erasures, options_.owner,
                                         batch.model.id,
                                         batch.model.dataset_id);
        out.records_removed = settled.removed_in_dataset;
        out.completed_erasures = std::move(settled.completed);
        if (out.version != latest) {
          txn.exec_params(
              "UPDATE model_versions SET records_removed = $3 WHERE "
              "model_id = $1::uuid AND version = $2",
              batch.model.id, out.version, out.records_removed);
          // Every older version was trained with the erased subjects.
          txn.exec_params(
              "UPDATE model_versions SET delete_after = now() + "
              "make_interval(secs => $3) WHERE model_id = $1::uuid AND "
              "version < $2 AND deleted_at IS NULL AND delete_after IS NULL",
              batch.model.id, out.version,
              static_cast<double>(req.grace_seconds));
        }
        if (hook) {
          if (auto st = hook(txn, out.completed_erasures); !st.ok()) return st;
        }
        for (const auto& t : batch.tasks) {
          internal::AppendAudit(
              txn, options_.owner, "task.done", t.erasure_id, batch.model.id,
              absl::StrCat("{\"version\":", out.version, "}"));
        }
        if (out.version != latest) {
          internal::AppendAudit(
              txn, options_.owner, "model.version_published", "",
              batch.model.id,
              absl::StrCat("{\"version\":", out.version, ",\"produced_by\":\"",
                           req.produced_by, "\",\"records_removed\":",
                           out.records_removed, "}"));
        }
        txn.exec_params(
            "UPDATE models SET updated_at = now() WHERE id = $1::uuid",
            batch.model.id);
        if (req.grace_seconds == 0) {
          // Deleted in the same commit: no moment where both exist.
          auto due = txn.exec_params(
              "UPDATE model_versions SET deleted_at = now() WHERE model_id = "
              "$1::uuid AND delete_after <= now() AND deleted_at IS NULL "
              "RETURNING version, artifact_sha256, state_sha256",
              batch.model.id);
          for (const auto& r : due) {
            for (int col : {1, 2}) {
              if (r[col].is_null()) continue;
              const std::string digest = ReadBytea(r[col]);
              auto refs = txn.exec_params1(
                  "SELECT count(*) FROM model_versions WHERE deleted_at IS "
                  "NULL AND (artifact_sha256 = $1 OR state_sha256 = $1)",
                  Bytea(digest));
              if (refs[0].as<int64_t>() == 0) {
                if (auto st = artifacts_->Delete(txn, digest); !st.ok()) {
                  return st;
                }
              }
            }
            internal::AppendAudit(
                txn, options_.owner, "model.version_deleted", "",
                batch.model.id,
                absl::StrCat("{\"version\":", r[0].as<int64_t>(), "}"));
          }
        }
        txn.exec("NOTIFY lethe_tasks");
        return out;
      });
}

absl::StatusOr<int> WorkQueue::DeleteDueVersions() {
  return db_->TransactValue<int>([&](Txn& txn) -> absl::StatusOr<int> {
    auto due = txn.exec(
        "UPDATE model_versions SET deleted_at = now() WHERE delete_after <= "
        "now() AND deleted_at IS NULL RETURNING model_id::text, version, "
        "artifact_sha256, state_sha256");
    for (const auto& r : due) {
      for (int col : {2, 3}) {
        if (r[col].is_null()) continue;
        const std::string digest = ReadBytea(r[col]);
        auto refs = txn.exec_params1(
            "SELECT count(*) FROM model_versions WHERE deleted_at IS NULL "
            "AND (artifact_sha256 = $1 OR state_sha256 = $1)",
            Bytea(digest));
        if (refs[0].as<int64_t>() == 0) {
          if (auto st = artifacts_->Delete(txn, digest); !st.ok()) return st;
        }
      }
      internal::AppendAudit(
          txn, options_.owner, "model.version_deleted", "", r[0].c_str(),
          absl::StrCat("{\"version\":", r[1].as<int64_t>(), "}"));
    }
    return static_cast<int>(due.size());
  });
}

absl::StatusOr<bool> WorkQueue::Idle() {
  const std::string mine = DeviceFilter("m", options_.device_kind);
  return db_->TransactValue<bool>([&](Txn& txn) -> absl::StatusOr<bool> {
    auto r = txn.exec1(absl::StrCat(
        "SELECT NOT EXISTS (SELECT 1 FROM erasure_tasks t JOIN models m ON "
        "m.id = t.model_id WHERE (t.state = 'LEASED' OR (t.state = 'QUEUED' "
        "AND m.state IN ('READY', 'PENDING_VALIDATION', 'TRAINING'))) AND ",
        mine, ") AND NOT EXISTS (SELECT 1 FROM models m WHERE m.state IN "
        "('PENDING_VALIDATION', 'TRAINING') AND ", mine, ")"));
    return r[0].as<bool>();
  });
}

absl::StatusOr<std::optional<ModelJob>> WorkQueue::ClaimModelJob() {
  auto claimed = db_->TransactValue<std::optional<ModelJob>>(
      [&](Txn& txn) -> absl::StatusOr<std::optional<ModelJob>> {
        auto res = txn.exec_params(
            absl::StrCat(
            "WITH c AS MATERIALIZED (SELECT id FROM models WHERE state IN "
            "('PENDING_VALIDATION', 'TRAINING') AND job_not_before <= now() "
            "AND (lease_expires_at IS NULL OR lease_expires_at < now()) AND ",
            DeviceFilter("models", options_.device_kind),
            " ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "UPDATE models m SET job_attempts = m.job_attempts + 1, "
            "lease_owner = $1, lease_expires_at = now() + make_interval(secs "
            "=> $2), state_reason = CASE m.state WHEN 'TRAINING' THEN "
            "'training on ' ELSE 'validating on ' END || $1, updated_at = "
            "now() FROM c WHERE m.id = c.id "
            "RETURNING m.id::text, m.job_attempts, m.state = 'TRAINING'"),
            options_.owner, static_cast<double>(options_.lease.count()));
        if (res.empty()) return std::optional<ModelJob>();
        ModelJob job;
        job.model.id = res[0][0].c_str();
        job.token = res[0][1].as<int32_t>();
        job.training = res[0][2].as<bool>();
        if (job.training) ExcludeSubjectsBeingErased(txn, job.model.id);
        return std::optional<ModelJob>(std::move(job));
      });
  if (!claimed.ok() || !claimed->has_value()) return claimed;
  ModelJob& job = **claimed;
  ModelStore models(db_, artifacts_);
  auto model = models.Get(job.model.id);
  if (!model.ok()) return model.status();
  job.model = std::move(*model);
  DatasetStore datasets(db_);
  auto dataset = datasets.Get(job.model.dataset_id);
  if (!dataset.ok()) return dataset.status();
  job.dataset = std::move(*dataset);
  if (!job.training) {
    auto latest = Latest(job.model.id);
    if (!latest.ok()) return latest.status();
    job.artifact = std::move(latest->artifact);
  }
  return claimed;
}

absl::Status WorkQueue::RenewModelJob(const ModelJob& job) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto res = txn.exec_params(
        "UPDATE models SET lease_expires_at = now() + make_interval(secs => "
        "$3) WHERE id = $1::uuid AND job_attempts = $2 AND lease_owner = $4 "
        "RETURNING 1",
        job.model.id, job.token, static_cast<double>(options_.lease.count()),
        options_.owner);
    if (res.empty()) {
      return absl::FailedPreconditionError("model job lease lost");
    }
    return absl::OkStatus();
  });
}

absl::Status WorkQueue::FinishModelJob(const ModelJob& job,
                                       const std::string& artifact,
                                       const std::string& state,
                                       const std::string& produced_by,
                                       const std::string& report_json) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto held = txn.exec_params(
        "SELECT 1 FROM models WHERE id = $1::uuid AND job_attempts = $2 AND "
        "lease_owner = $3 AND state IN ('PENDING_VALIDATION', 'TRAINING') "
        "FOR UPDATE",
        job.model.id, job.token, options_.owner);
    if (held.empty()) {
      return absl::FailedPreconditionError("model job lease lost");
    }
    if (!artifact.empty()) {
      const std::string sha = Sha256(artifact);
      if (auto st = artifacts_->Put(txn, sha, artifact); !st.ok()) return st;
      std::string state_sha;
      if (!state.empty()) {
        state_sha = Sha256(state);
        if (auto st = artifacts_->Put(txn, state_sha, state); !st.ok()) return st;
      }
      txn.exec_params(
          "INSERT INTO model_versions (model_id, version, artifact_sha256, "
          "size_bytes, produced_by, report, state_sha256) VALUES ($1::uuid, "
          "(SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE "
          "model_id = $1::uuid), $2, $3, $4, nullif($5, '')::jsonb, "
          "nullif($6, '\\x'::bytea))",
          job.model.id, Bytea(sha), static_cast<int64_t>(artifact.size()),
          produced_by, report_json, Bytea(state_sha));
    }
    txn.exec_params(
        "UPDATE models SET state = 'READY', state_reason = '', lease_owner = "
        "NULL, lease_expires_at = NULL, updated_at = now() WHERE id = $1::uuid",
        job.model.id);
    internal::AppendAudit(txn, options_.owner,
                          job.training ? "model.trained" : "model.validated",
                          "", job.model.id, report_json);
    txn.exec("NOTIFY lethe_tasks");
    return absl::OkStatus();
  });
}

absl::Status WorkQueue::FailModelJob(const ModelJob& job,
                                     const std::string& reason,
                                     bool permanent) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto res = txn.exec_params(
        absl::StrCat(
            "UPDATE models m SET job_failures = m.job_failures + 1, state = "
            "CASE WHEN $4 OR m.job_failures + 1 >= ",
            PolicyInt("m", "maxAttempts", "$7"),
            " THEN 'INVALID' ELSE m.state END, state_reason = $5, lease_owner "
            "= NULL, lease_expires_at = NULL, job_not_before = now() + "
            "make_interval(secs => least($8, $6 * power(2, least(m.job_failures, "
            "10)))), "
            "updated_at = now() WHERE m.id = $1::uuid AND m.job_attempts = $2 "
            "AND m.lease_owner = $3 RETURNING m.state = 'INVALID'"),
        job.model.id, job.token, options_.owner, permanent, reason,
        BackoffSeconds(1), options_.default_max_attempts,
        options_.retry_max_seconds);
    if (res.empty()) return absl::OkStatus();  // lease lost: not ours
    const bool invalid = res[0][0].as<bool>();
    if (invalid) SkipTasksOfInvalidModels(txn, job.model.id, options_.owner);
    internal::AppendAudit(txn, options_.owner,
                          invalid ? "model.invalid" : "model.job_retry", "",
                          job.model.id, "");
    return absl::OkStatus();
  });
}

}  // namespace lethe::storage
