#include "storage/erasure_store.h"

#include <map>

#include <pqxx/result>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/sql_util.h"

namespace lethe::storage {
namespace {

using internal::Bytea;
using internal::Micros;
using internal::ReadBytea;
using internal::ReadInt64;

const std::string& ErasureColumns() {
  static const std::string* cols = new std::string(absl::StrCat(
      "id::text, state, state_reason, subject_commitment, legal_ground, "
      "legal_reference, scope_model_ids::text, idempotency_key, ",
      Micros("created_at"), ", ", Micros("updated_at"), ", ",
      Micros("completed_at")));
  return *cols;
}

ErasureRow ReadErasure(const pqxx::row& r) {
  ErasureRow e;
  e.id = r[0].c_str();
  e.state = r[1].c_str();
  e.state_reason = r[2].c_str();
  e.subject_commitment = ReadBytea(r[3]);
  e.legal_ground = r[4].c_str();
  e.legal_reference = r[5].c_str();
  e.scope_model_ids = internal::ParseArray(r[6]);
  e.idempotency_key = r[7].c_str();
  e.created_us = ReadInt64(r[8]);
  e.updated_us = ReadInt64(r[9]);
  e.completed_us = ReadInt64(r[10]);
  return e;
}

// Fills `tasks` of each row with one query.
void LoadTasks(pqxx::transaction_base& txn, std::vector<ErasureRow>& rows) {
  if (rows.empty()) return;
  std::vector<std::string> ids;
  std::map<std::string, ErasureRow*> by_id;
  for (auto& r : rows) {
    ids.push_back(r.id);
    by_id[r.id] = &r;
  }
  auto res = txn.exec_params(
      absl::StrCat("SELECT erasure_id::text, model_id::text, state, attempts, "
                   "last_error, result_version, ",
                   Micros("updated_at"),
                   " FROM erasure_tasks WHERE erasure_id = ANY($1::uuid[]) "
                   "ORDER BY erasure_id, model_id"),
      internal::UuidArray(ids));
  for (const auto& r : res) {
    TaskRow t;
    t.model_id = r[1].c_str();
    t.state = r[2].c_str();
    t.attempts = r[3].as<int32_t>();
    t.last_error = r[4].c_str();
    t.result_version = ReadInt64(r[5]);
    t.updated_us = ReadInt64(r[6]);
    by_id[r[0].c_str()]->tasks.push_back(std::move(t));
  }
}

absl::StatusOr<ErasureRow> GetIn(pqxx::transaction_base& txn,
                                 const std::string& id) {
  auto res = txn.exec_params(
      absl::StrCat("SELECT ", ErasureColumns(),
                   " FROM erasure_requests WHERE id = $1::uuid"),
      id);
  if (res.empty()) {
    return absl::NotFoundError(absl::StrCat("no erasure request ", id));
  }
  std::vector<ErasureRow> rows = {ReadErasure(res[0])};
  LoadTasks(txn, rows);
  return std::move(rows[0]);
}

absl::Status CheckScopeExists(pqxx::transaction_base& txn,
                              const std::vector<std::string>& scope) {
  if (scope.empty()) return absl::OkStatus();
  auto res = txn.exec_params(
      "SELECT s::text FROM unnest($1::uuid[]) AS s "
      "WHERE NOT EXISTS (SELECT 1 FROM models m WHERE m.id = s) ORDER BY 1",
      internal::UuidArray(scope));
  if (res.empty()) return absl::OkStatus();
  std::vector<std::string> missing;
  for (const auto& r : res) missing.emplace_back(r[0].c_str());
  return absl::NotFoundError(absl::StrCat(
      "model_ids: no such model: ", absl::StrJoin(missing, ", ")));
}

}  // namespace

bool IsTerminalErasureState(std::string_view state) {
  return state == "COMPLETED" || state == "NOTHING_TO_ERASE" ||
         state == "FAILED" || state == "CANCELLED";
}

absl::StatusOr<SubmitResult> ErasureStore::Submit(const SubmitParams& p) {
  return db_->TransactValue<SubmitResult>(
      [&](Txn& txn) -> absl::StatusOr<SubmitResult> {
        if (auto st = CheckScopeExists(txn, p.scope_model_ids); !st.ok()) {
          return st;
        }
        auto inserted = txn.exec_params(
            "INSERT INTO erasure_requests (client_key_id, idempotency_key, "
            "body_sha256, subject_key, subject_commitment, legal_ground, "
            "legal_reference, scope_model_ids, state) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::uuid[], 'QUEUED') "
            "ON CONFLICT (client_key_id, idempotency_key) DO NOTHING "
            "RETURNING id::text",
            p.client_key_id, p.idempotency_key, Bytea(p.body_sha256),
            Bytea(p.subject_key), Bytea(p.subject_commitment),
            p.legal_ground, p.legal_reference,
            internal::UuidArray(p.scope_model_ids));
        if (inserted.empty()) {
          auto prior = txn.exec_params(
              "SELECT id::text, body_sha256 FROM erasure_requests "
              "WHERE client_key_id = $1 AND idempotency_key = $2",
              p.client_key_id, p.idempotency_key);
          if (prior.empty()) {
            return absl::AbortedError("idempotency race; retry");
          }
          if (ReadBytea(prior[0][1]) != p.body_sha256) {
            return absl::AlreadyExistsError(absl::StrCat(
                "idempotency_key '", p.idempotency_key,
                "' was already used for a different request (",
                prior[0][0].c_str(),
                "); use a new key for a new request"));
          }
          auto row = GetIn(txn, prior[0][0].c_str());
          if (!row.ok()) return row.status();
          return SubmitResult{std::move(row).value(), true};
        }
        const std::string id = inserted[0][0].c_str();
        auto tasks = txn.exec_params(
            "INSERT INTO erasure_tasks (erasure_id, model_id, state) "
            "SELECT $1::uuid, m.id, 'QUEUED' FROM models m "
            "WHERE (cardinality($3::uuid[]) = 0 OR m.id = ANY($3::uuid[])) "
            "AND EXISTS (SELECT 1 FROM records r WHERE r.subject_key = $2 "
            "            AND r.dataset_id = m.dataset_id) "
            "RETURNING model_id",
            id, Bytea(p.subject_key),
            internal::UuidArray(p.scope_model_ids));
        if (tasks.empty()) {
          txn.exec_params(
              "UPDATE erasure_requests SET state = 'NOTHING_TO_ERASE', "
              "state_reason = 'no model in scope was trained on records of "
              "this subject', subject_key = NULL, completed_at = now(), "
              "updated_at = now() WHERE id = $1::uuid",
              id);
        } else {
          txn.exec("NOTIFY lethe_tasks");
        }
        internal::AppendAudit(
            txn, p.client_key_id, "erasure.submitted", id, "",
            absl::StrCat("{\"tasks\":", tasks.size(), "}"));
        auto row = GetIn(txn, id);
        if (!row.ok()) return row.status();
        return SubmitResult{std::move(row).value(), false};
      });
}

absl::StatusOr<ErasureRow> ErasureStore::Get(const std::string& id) {
  return db_->TransactValue<ErasureRow>(
      [&](Txn& txn) { return GetIn(txn, id); });
}

absl::StatusOr<ErasurePage> ErasureStore::List(const ErasureFilter& f,
                                               const Page& page) {
  return db_->TransactValue<ErasurePage>(
      [&](Txn& txn) -> absl::StatusOr<ErasurePage> {
        const bool has_cursor = page.after.has_value();
        auto res = txn.exec_params(
            absl::StrCat(
                "SELECT ", ErasureColumns(),
                " FROM erasure_requests e WHERE ($1 = '' OR e.state = $1) "
                "AND ($2 = '' OR EXISTS (SELECT 1 FROM erasure_tasks t "
                "     WHERE t.erasure_id = e.id AND t.model_id::text = $2)) "
                "AND ($3 = 0 OR e.created_at >= to_timestamp($3 / 1e6)) "
                "AND ($4 = 0 OR e.created_at < to_timestamp($4 / 1e6)) "
                "AND (NOT $5 OR (e.created_at, e.id) < "
                "     (to_timestamp($6 / 1e6), $7::uuid)) "
                "ORDER BY e.created_at DESC, e.id DESC LIMIT $8"),
            f.state, f.model_id, f.created_after_us, f.created_before_us,
            has_cursor, has_cursor ? page.after->created_us : 0,
            has_cursor ? page.after->id
                       : std::string("00000000-0000-0000-0000-000000000000"),
            page.size + 1);
        ErasurePage out;
        for (const auto& r : res) {
          if (static_cast<int>(out.rows.size()) == page.size) {
            const auto& last = out.rows.back();
            out.next = PageCursor{last.created_us, last.id};
            break;
          }
          out.rows.push_back(ReadErasure(r));
        }
        LoadTasks(txn, out.rows);
        return out;
      });
}

absl::StatusOr<ErasureRow> ErasureStore::Cancel(const std::string& id,
                                                const std::string& actor) {
  return db_->TransactValue<ErasureRow>(
      [&](Txn& txn) -> absl::StatusOr<ErasureRow> {
        auto req = txn.exec_params(
            "SELECT state FROM erasure_requests WHERE id = $1::uuid "
            "FOR UPDATE",
            id);
        if (req.empty()) {
          return absl::NotFoundError(absl::StrCat("no erasure request ", id));
        }
        const std::string state = req[0][0].c_str();
        if (state == "CANCELLED") return GetIn(txn, id);
        if (IsTerminalErasureState(state)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "erasure request ", id, " is already ", state,
              "; only a QUEUED request can be cancelled"));
        }
        // Locking the tasks makes a concurrent claim either finish first
        // (and be seen here) or wait until the cancellation committed.
        auto tasks = txn.exec_params(
            "SELECT state, attempts FROM erasure_tasks "
            "WHERE erasure_id = $1::uuid FOR UPDATE",
            id);
        bool started = false;
        for (const auto& t : tasks) {
          started |= std::string_view(t[0].c_str()) != "QUEUED" ||
                     t[1].as<int>() > 0;
        }
        if (started) {
          return absl::FailedPreconditionError(absl::StrCat(
              "erasure request ", id,
              " can no longer be cancelled: a worker has started on it"));
        }
        txn.exec_params(
            "UPDATE erasure_tasks SET state = 'CANCELLED', updated_at = now() "
            "WHERE erasure_id = $1::uuid",
            id);
        txn.exec_params(
            "UPDATE erasure_requests SET state = 'CANCELLED', state_reason = "
            "'cancelled by client', subject_key = NULL, completed_at = now(), "
            "updated_at = now() WHERE id = $1::uuid",
            id);
        internal::AppendAudit(txn, actor, "erasure.cancelled", id, "", "");
        return GetIn(txn, id);
      });
}

}  // namespace lethe::storage
