#include "storage/postgres/erasure_store.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <pqxx/result>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/mutex.h"
#include "storage/hash.h"
#include "storage/postgres/sql_util.h"
#include "storage/queries_sql.h"

namespace lethe::storage {
namespace {

using internal::Bytea;
using internal::ReadBytea;
using internal::ReadInt64;

// A row of queries/get_erasure_request.sql or list_erasure_requests.sql (or
// a request row of insert_erasure_round.sql, less its first two columns).
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
  e.client_key_id = r[11].c_str();
  return e;
}

// A task row of the insert statement (queries/insert_erasure_round.sql):
// erasure id, model id, state, -, attempts, last error, result version, -,
// updated.
TaskRow ReadNewTask(const pqxx::row& r) {
  TaskRow t;
  t.model_id = r[1].c_str();
  t.state = r[2].c_str();
  t.attempts = r[4].as<int32_t>();
  t.last_error = r[5].c_str();
  t.result_version = ReadInt64(r[6]);
  t.updated_us = ReadInt64(r[8]);
  return t;
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
  auto res =
      txn.exec_params(sql::kErasureTasksOfRequests, internal::UuidArray(ids));
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
  auto res = txn.exec_params(sql::kGetErasureRequest, id);
  if (res.empty()) {
    return absl::NotFoundError(absl::StrCat("no erasure request ", id));
  }
  std::vector<ErasureRow> rows = {ReadErasure(res[0])};
  LoadTasks(txn, rows);
  return std::move(rows[0]);
}

// A PostgreSQL text[] literal: every element quoted, `"` and `\` escaped.
std::string TextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

// The scoped models of `batch` that exist, lower-case, with their datasets.
std::map<std::string, std::string> ScopedModels(
    pqxx::transaction_base& txn,
    const std::vector<const SubmitParams*>& batch) {
  std::set<std::string> scoped;
  for (const SubmitParams* p : batch) {
    for (const auto& id : p->scope_model_ids) {
      scoped.insert(absl::AsciiStrToLower(id));
    }
  }
  std::map<std::string, std::string> found;
  if (scoped.empty()) return found;
  auto res = txn.exec_params(
      sql::kModelDatasets, internal::UuidArray({scoped.begin(), scoped.end()}));
  for (const auto& r : res) found.emplace(r[0].c_str(), r[1].c_str());
  return found;
}

// NOT_FOUND naming the scoped models of `p` that do not exist or, for a key
// scoped to datasets, belong to another dataset: the same answer, so that a
// key cannot tell another tenant's model ids from made-up ones.
absl::Status ScopeStatus(const SubmitParams& p,
                         const std::map<std::string, std::string>& models) {
  std::vector<std::string> missing;
  for (const auto& id : p.scope_model_ids) {
    std::string lower = absl::AsciiStrToLower(id);
    auto it = models.find(lower);
    if (it == models.end() ||
        (!p.scope_dataset_ids.empty() &&
         !std::binary_search(p.scope_dataset_ids.begin(),
                             p.scope_dataset_ids.end(), it->second))) {
      missing.push_back(std::move(lower));
    }
  }
  if (missing.empty()) return absl::OkStatus();
  std::sort(missing.begin(), missing.end());
  return absl::NotFoundError(absl::StrCat(
      "model_ids: no such model",
      p.scope_dataset_ids.empty() ? "" : " in the datasets of this API key",
      ": ", absl::StrJoin(missing, ", ")));
}

constexpr char kInsertRound[] = "lethe_erasure_insert_round";

// The outcome for a request whose key was taken: a replay of the original
// when the bodies match, ALREADY_EXISTS otherwise.
absl::StatusOr<SubmitResult> Replay(pqxx::transaction_base& txn,
                                    const SubmitParams& p) {
  auto prior = txn.exec_params(sql::kGetErasureByIdempotencyKey,
                               p.client_key_id, p.idempotency_key);
  if (prior.empty()) return absl::AbortedError("idempotency race; retry");
  const std::string stored = ReadBytea(prior[0][1]);
  if (stored != p.body_sha256 &&
      (p.legacy_body_sha256.empty() || stored != p.legacy_body_sha256)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "idempotency_key '", p.idempotency_key,
        "' was already used for a different request (", prior[0][0].c_str(),
        "); use a new key for a new request"));
  }
  auto row = GetIn(txn, prior[0][0].c_str());
  if (!row.ok()) return row.status();
  return SubmitResult{std::move(row).value(), true};
}

// Writes the requests `round` (indexes into `batch`, distinct keys) and
// fills the results of those it created. Returns the others: their key was
// taken already, and the caller replays them (Replay).
std::vector<size_t> WriteRound(
    pqxx::transaction_base& txn, const std::vector<const SubmitParams*>& batch,
    const std::vector<size_t>& round,
    std::vector<absl::StatusOr<SubmitResult>>& results) {
  std::vector<std::string> cols[9];
  for (size_t i : round) {
    const SubmitParams& p = *batch[i];
    cols[0].push_back(p.client_key_id);
    cols[1].push_back(p.idempotency_key);
    cols[2].push_back(ToHex(p.body_sha256));
    cols[3].push_back(ToHex(p.subject_key));
    cols[4].push_back(ToHex(p.subject_commitment));
    cols[5].push_back(p.legal_ground);
    cols[6].push_back(p.legal_reference);
    cols[7].push_back(internal::UuidArray(p.scope_model_ids));
    cols[8].push_back(internal::UuidArray(p.scope_dataset_ids));
  }
  // Prepared once per connection: parsing and planning this statement
  // would otherwise cost more than executing it for a small batch.
  txn.conn().prepare(kInsertRound, sql::kInsertErasureRound);
  auto res = txn.exec_prepared(
      kInsertRound, TextArray(cols[0]), TextArray(cols[1]), TextArray(cols[2]),
      TextArray(cols[3]), TextArray(cols[4]), TextArray(cols[5]),
      TextArray(cols[6]), TextArray(cols[7]), TextArray(cols[8]));
  std::vector<std::optional<ErasureRow>> created(round.size());
  std::map<std::string, std::vector<TaskRow>> tasks;  // by erasure id
  for (const auto& r : res) {
    const std::string_view kind = r[0].c_str();
    if (kind == "r") {
      const size_t k = r[1].as<size_t>() - 1;  // ORDINALITY is 1-based
      created[k] = ReadErasure(r.slice(2, r.size()));
    } else if (kind == "t") {
      tasks[r[2].c_str()].push_back(ReadNewTask(r.slice(2, r.size())));
    }
  }
  std::vector<size_t> taken;
  for (size_t k = 0; k < round.size(); ++k) {
    if (!created[k]) {
      taken.push_back(round[k]);
      continue;
    }
    auto& t = tasks[created[k]->id];
    std::sort(t.begin(), t.end(), [](const TaskRow& a, const TaskRow& b) {
      return a.model_id < b.model_id;
    });
    created[k]->tasks = std::move(t);
    results[round[k]] = SubmitResult{*std::move(created[k]), false};
  }
  return taken;
}

// Writes `batch` into `txn`: requests with an unknown scoped model fail with
// NOT_FOUND, the others go in rounds of distinct keys (the n-th use of a key
// in the batch goes in round n, after the round that created it).
void WriteBatch(pqxx::transaction_base& txn,
                const std::vector<const SubmitParams*>& batch,
                std::vector<absl::StatusOr<SubmitResult>>& results) {
  const auto models = ScopedModels(txn, batch);
  std::vector<std::vector<size_t>> rounds;
  std::map<std::pair<std::string_view, std::string_view>, size_t> uses;
  for (size_t i = 0; i < batch.size(); ++i) {
    const SubmitParams& p = *batch[i];
    if (absl::Status st = ScopeStatus(p, models); !st.ok()) {
      results[i] = st;
      continue;
    }
    const size_t n = uses[{p.client_key_id, p.idempotency_key}]++;
    if (rounds.size() <= n) rounds.resize(n + 1);
    rounds[n].push_back(i);
  }
  for (const auto& round : rounds) {
    for (size_t i : WriteRound(txn, batch, round, results)) {
      results[i] = Replay(txn, *batch[i]);
    }
  }
}

// A batch that is one statement: no request names models (so no lookup of
// unknown ones) and no key comes twice (so one round).
bool IsOneStatement(const std::vector<const SubmitParams*>& batch) {
  std::set<std::pair<std::string_view, std::string_view>> keys;
  for (const SubmitParams* p : batch) {
    if (!p->scope_model_ids.empty()) return false;
    if (!keys.emplace(p->client_key_id, p->idempotency_key).second) {
      return false;
    }
  }
  return true;
}

}  // namespace

struct PgErasureStore::Waiter {
  Waiter(SubmitParams p, SubmitCallback d)
      : params(std::move(p)), done(std::move(d)) {}
  SubmitParams params;
  SubmitCallback done;
  absl::StatusOr<SubmitResult> result = absl::InternalError("not run");
};

PgErasureStore::PgErasureStore(Database* db, ErasureStoreOptions options)
    : db_(db), options_(std::move(options)) {
  for (int i = 0; i < std::max(1, options_.max_concurrent_batches); ++i) {
    writers_.emplace_back([this] { WriterLoop(); });
  }
  for (int i = 0; i < std::max(1, options_.finisher_threads); ++i) {
    finishers_.emplace_back([this] { FinisherLoop(); });
  }
}

PgErasureStore::~PgErasureStore() {
  {
    base::MutexLock lock(&mu_);
    stopping_ = true;
  }
  queued_.SignalAll();
  for (auto& t : writers_) t.join();  // after the queue drained
  {
    base::MutexLock lock(&mu_);
    writers_done_ = true;
  }
  finished_.SignalAll();
  for (auto& t : finishers_) t.join();  // after every callback ran
}

void PgErasureStore::SubmitAsync(SubmitParams params, SubmitCallback done) {
  {
    base::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(new Waiter(std::move(params), std::move(done)));
      done = nullptr;
    }
  }
  if (done) {
    done(absl::UnavailableError("the server is shutting down"));
    return;
  }
  queued_.Signal();
}

absl::StatusOr<SubmitResult> PgErasureStore::Submit(const SubmitParams& p) {
  absl::StatusOr<SubmitResult> out = absl::InternalError("not answered");
  base::Notification answered;  // Notify() publishes `out` to the waiter
  SubmitAsync(p, [&](absl::StatusOr<SubmitResult> r) {
    out = std::move(r);
    answered.Notify();
  });
  answered.WaitForNotification();
  return out;
}

// A writer takes everything queued (up to max_batch) as one batch, writes
// it, hands it to the finishers and goes straight on: the database's
// pipeline never waits for a thread to wake up or for callbacks to run.
void PgErasureStore::WriterLoop() {
  const size_t max_batch = std::max(1, options_.max_batch);
  for (;;) {
    std::vector<Waiter*> batch;
    {
      base::MutexLock lock(&mu_);
      while (!stopping_ && queue_.empty()) queued_.Wait(&mu_);
      if (queue_.empty()) return;  // stopping, and nothing left to write
      const size_t n = std::min(queue_.size(), max_batch);
      batch.assign(queue_.begin(), queue_.begin() + n);
      queue_.erase(queue_.begin(), queue_.begin() + n);
    }
    const auto start = std::chrono::steady_clock::now();
    RunBatch(batch);
    if (options_.on_batch) {
      options_.on_batch(batch.size(),
                        std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - start)
                            .count());
    }
    {
      base::MutexLock lock(&mu_);
      written_.push_back(std::move(batch));
    }
    finished_.Signal();
  }
}

void PgErasureStore::FinisherLoop() {
  for (;;) {
    std::vector<Waiter*> batch;
    {
      base::MutexLock lock(&mu_);
      while (!writers_done_ && written_.empty()) finished_.Wait(&mu_);
      if (written_.empty()) return;  // the writers are gone: nothing will come
      batch = std::move(written_.front());
      written_.pop_front();
    }
    for (Waiter* w : batch) {
      std::unique_ptr<Waiter> owned(w);
      std::move(owned->done)(std::move(owned->result));
    }
  }
}

void PgErasureStore::RunBatch(const std::vector<Waiter*>& batch) {
  std::vector<const SubmitParams*> params;
  params.reserve(batch.size());
  for (Waiter* w : batch) params.push_back(&w->params);
  std::vector<absl::StatusOr<SubmitResult>> results;
  absl::Status st;
  if (IsOneStatement(params)) {
    // The common case runs without a transaction block: the statement
    // commits itself, saving the BEGIN and COMMIT round trips. Replays
    // read rows that other transactions committed, so they may come after.
    // Should reading the statement's result fail after it committed (a bug,
    // not a data condition), the per-request retry below replays the rows
    // it wrote: each request is still recorded once, but its submitter
    // sees `replayed` and gets no salt.
    std::vector<size_t> taken;
    std::vector<size_t> all(params.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    st = db_->Autocommit([&](pqxx::nontransaction& tx) {
      results.assign(batch.size(), absl::InternalError("not written"));
      taken = WriteRound(tx, params, all, results);
      return absl::OkStatus();
    });
    if (st.ok()) {
      // The batch is committed: from here on an error reaches only the
      // replay it belongs to (a created request must not be written again).
      for (size_t i : taken) {
        results[i] = db_->TransactValue<SubmitResult>(
            [&](Txn& txn) { return Replay(txn, *params[i]); });
      }
    }
  } else {
    st = db_->Transact([&](Txn& txn) {
      results.assign(batch.size(), absl::InternalError("not written"));
      WriteBatch(txn, params, results);
      return absl::OkStatus();
    });
  }
  if (st.ok()) {
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i]->result = std::move(results[i]);
    }
    return;
  }
  if (batch.size() > 1 && !absl::IsUnavailable(st) &&
      !absl::IsResourceExhausted(st)) {
    for (Waiter* w : batch) RunBatch({w});
    return;
  }
  for (Waiter* w : batch) w->result = st;
}

absl::StatusOr<ErasureRow> PgErasureStore::Get(const std::string& id) {
  return db_->TransactValue<ErasureRow>(
      [&](Txn& txn) { return GetIn(txn, id); });
}

absl::StatusOr<ErasurePage> PgErasureStore::List(const ErasureFilter& f,
                                                 const Page& page) {
  return db_->TransactValue<ErasurePage>(
      [&](Txn& txn) -> absl::StatusOr<ErasurePage> {
        const bool has_cursor = page.after.has_value();
        auto res = txn.exec_params(
            sql::kListErasureRequests, f.state, f.model_id, f.created_after_us,
            f.created_before_us, has_cursor,
            has_cursor ? page.after->created_us : 0,
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

absl::StatusOr<ErasureRow> PgErasureStore::Cancel(const std::string& id,
                                                  const std::string& actor,
                                                  const std::string& only_key) {
  return db_->TransactValue<ErasureRow>(
      [&](Txn& txn) -> absl::StatusOr<ErasureRow> {
        auto req = txn.exec_params(sql::kLockErasureRequest, id);
        if (req.empty()) {
          return absl::NotFoundError(absl::StrCat("no erasure request ", id));
        }
        if (!only_key.empty() && only_key != req[0][1].c_str()) {
          return absl::PermissionDeniedError(absl::StrCat(
              "erasure request ", id, " was submitted with another API key"));
        }
        const std::string state = req[0][0].c_str();
        if (state == "CANCELLED") return GetIn(txn, id);
        if (IsTerminalErasureState(state)) {
          return absl::FailedPreconditionError(
              absl::StrCat("erasure request ", id, " is already ", state,
                           "; only a QUEUED request can be cancelled"));
        }
        // Locking the tasks makes a concurrent claim either finish first
        // (and be seen here) or wait until the cancellation committed.
        auto tasks = txn.exec_params(sql::kLockErasureTasks, id);
        bool started = false;
        for (const auto& t : tasks) {
          started |=
              std::string_view(t[0].c_str()) != "QUEUED" || t[1].as<int>() > 0;
        }
        if (started) {
          return absl::FailedPreconditionError(absl::StrCat(
              "erasure request ", id,
              " can no longer be cancelled: a worker has started on it"));
        }
        txn.exec_params(sql::kCancelErasureTasks, id);
        txn.exec_params(sql::kCancelErasureRequest, id);
        internal::AppendAudit(txn, actor, "erasure.cancelled", id, "", "");
        return GetIn(txn, id);
      });
}

}  // namespace lethe::storage
