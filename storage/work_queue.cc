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
    auto res = txn.exec_params(
        absl::StrCat(
            "UPDATE erasure_tasks t SET state = CASE WHEN t.attempts >= ",
            PolicyInt("m", "maxAttempts", "$1"),
            " THEN 'DEAD' ELSE 'QUEUED' END, lease_owner = NULL, "
            "lease_expires_at = NULL, updated_at = now(), "
            "last_error = 'lease of ' || t.lease_owner || ' expired (worker "
            "lost)', not_before = now() + make_interval(secs => $2 * "
            "(0.5 + random() / 2) * power(2, greatest(t.attempts - 1, 0))) "
            "FROM models m WHERE m.id = t.model_id AND t.state = 'LEASED' "
            "AND t.lease_expires_at < now() RETURNING t.erasure_id::text"),
        options_.default_max_attempts, options_.retry_base_seconds);
    std::vector<std::string> ids;
    for (const auto& r : res) ids.emplace_back(r[0].c_str());
    if (!ids.empty()) {
      SettleFailedRequests(txn, internal::UuidArray(ids));
      txn.exec("NOTIFY lethe_tasks");
    }
    return static_cast<int>(ids.size());
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
        "UPDATE erasure_tasks t SET state = 'QUEUED', attempts = t.attempts "
        "- 1, lease_owner = NULL, lease_expires_at = NULL, not_before = "
        "now(), updated_at = now() FROM unnest($1::bigint[], $2::int[]) AS "
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
    auto held = txn.exec_params(kHeldTasks, TaskIds(batch), Tokens(batch),
                                options_.owner);
    if (held.empty()) return absl::OkStatus();  // lease lost: not ours
    const int max_attempts = txn.exec_params1(
        absl::StrCat("SELECT ", PolicyInt("m", "maxAttempts", "$2"),
                     " FROM models m WHERE m.id = $1::uuid"),
        batch.model.id, options_.default_max_attempts)[0].as<int>();
    for (const auto& t : batch.tasks) {
      const bool dead = t.token >= max_attempts;
      txn.exec_params(
          "UPDATE erasure_tasks SET state = $3, lease_owner = NULL, "
          "lease_expires_at = NULL, last_error = $4, updated_at = now(), "
          "not_before = now() + make_interval(secs => $5) "
          "WHERE id = $1 AND attempts = $2 AND state = 'LEASED' "
          "AND lease_owner = $6",
          t.task_id, t.token, dead ? "DEAD" : "QUEUED", error,
          dead ? 0.0 : BackoffSeconds(t.token), options_.owner);
      internal::AppendAudit(
          txn, options_.owner, dead ? "task.dead" : "task.retry",
          t.erasure_id, batch.model.id,
          absl::StrCat("{\"attempt\":", t.token, "}"));
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

absl::Status WorkQueue::ForEachRecord(
    const std::string& dataset_id,
    const std::function<absl::Status(RecordData&)>& fn) {
  // Pages of 5,000 keep memory flat on large datasets.
  int64_t after = 0;
  for (;;) {
    std::vector<RecordData> page;
    auto st = db_->Transact([&](Txn& txn) -> absl::Status {
      auto res = txn.exec_params(
          "SELECT id, subject_key, label, split = 'test', features "
          "FROM records WHERE dataset_id = $1::uuid AND id > $2 "
          "ORDER BY id LIMIT 5000",
          dataset_id, after);
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
        // Lock the batch's requests (in id order, so publishers never
        // deadlock): two workers publishing the last two tasks of one
        // request on different models would otherwise each see the other's
        // task unfinished, and nobody would complete the request or delete
        // its records. Statements after the lock see the other's commit.
        const std::string erasures = ErasureIds(batch);
        txn.exec_params(
            "SELECT 1 FROM erasure_requests WHERE id = ANY($1::uuid[]) "
            "ORDER BY id FOR UPDATE",
            erasures);
        // A subject's records go once every task of its request on this
        // dataset is done (another model on the same data may still need
        // them to unlearn).
        auto removed = txn.exec_params(
            "WITH gone AS (DELETE FROM records r USING erasure_requests e "
            "WHERE e.id = ANY($1::uuid[]) AND r.dataset_id = $2::uuid AND "
            "r.subject_key = e.subject_key AND NOT EXISTS (SELECT 1 FROM "
            "erasure_tasks t JOIN models m ON m.id = t.model_id WHERE "
            "t.erasure_id = e.id AND m.dataset_id = $2::uuid AND t.state <> "
            "'DONE') RETURNING e.id AS erasure_id), per AS (SELECT erasure_id, "
            "count(*) AS n FROM gone GROUP BY erasure_id) "
            "UPDATE erasure_tasks t SET records_removed = per.n FROM per "
            "WHERE t.erasure_id = per.erasure_id AND t.model_id = $3::uuid "
            "RETURNING per.n",
            erasures, batch.model.dataset_id, batch.model.id);
        for (const auto& r : removed) out.records_removed += r[0].as<int64_t>();
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
        auto completed = txn.exec_params(
            "UPDATE erasure_requests e SET state = 'COMPLETED', completed_at "
            "= now(), updated_at = now(), subject_key = NULL WHERE e.id = "
            "ANY($1::uuid[]) AND e.state IN ('QUEUED', 'RUNNING') AND NOT "
            "EXISTS (SELECT 1 FROM erasure_tasks t WHERE t.erasure_id = e.id "
            "AND t.state <> 'DONE') RETURNING e.id::text",
            erasures);
        for (const auto& r : completed) {
          out.completed_erasures.emplace_back(r[0].c_str());
        }
        SettleFailedRequests(txn, erasures);
        if (hook) {
          if (auto st = hook(txn, out.completed_erasures); !st.ok()) return st;
        }
        for (const auto& t : batch.tasks) {
          internal::AppendAudit(
              txn, options_.owner, "task.done", t.erasure_id, batch.model.id,
              absl::StrCat("{\"version\":", out.version, "}"));
        }
        for (const auto& id : out.completed_erasures) {
          internal::AppendAudit(txn, options_.owner, "erasure.completed", id,
                                "", "");
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
    const int max_attempts =
        txn.exec_params1(
               absl::StrCat("SELECT ", PolicyInt("m", "maxAttempts", "$2"),
                            " FROM models m WHERE m.id = $1::uuid"),
               job.model.id, options_.default_max_attempts)[0]
            .as<int>();
    const bool invalid = permanent || job.token >= max_attempts;
    auto res = txn.exec_params(
        "UPDATE models SET state = CASE WHEN $4 THEN 'INVALID' ELSE state "
        "END, state_reason = $5, lease_owner = NULL, lease_expires_at = NULL, "
        "job_not_before = now() + make_interval(secs => $6), updated_at = "
        "now() WHERE id = $1::uuid AND job_attempts = $2 AND lease_owner = $3 "
        "RETURNING 1",
        job.model.id, job.token, options_.owner, invalid, reason,
        invalid ? 0.0 : BackoffSeconds(job.token));
    if (res.empty()) return absl::OkStatus();  // lease lost: not ours
    if (invalid) {
      auto dead = txn.exec_params(
          "UPDATE erasure_tasks SET state = 'DEAD', last_error = 'model is "
          "invalid: ' || $2, updated_at = now() WHERE model_id = $1::uuid AND "
          "state = 'QUEUED' RETURNING erasure_id::text",
          job.model.id, reason);
      std::vector<std::string> ids;
      for (const auto& r : dead) ids.emplace_back(r[0].c_str());
      if (!ids.empty()) SettleFailedRequests(txn, internal::UuidArray(ids));
    }
    internal::AppendAudit(txn, options_.owner,
                          invalid ? "model.invalid" : "model.job_retry", "",
                          job.model.id, "");
    return absl::OkStatus();
  });
}

}  // namespace lethe::storage
