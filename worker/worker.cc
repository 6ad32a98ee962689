#include "worker/worker.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <set>

#include "absl/strings/str_cat.h"
#include "lethe/core/report.h"
#include "observability/log.h"
#include "storage/postgres/backend.h"
#include "storage/reachability.h"
#include "worker/certify.h"
#include "worker/engine/model_spec.h"
#include "worker/training_set.h"

namespace lethe::worker {
namespace {

using Clock = std::chrono::steady_clock;

// Renews a lease every third of its length until stopped.
class Heartbeat {
 public:
  Heartbeat(std::chrono::seconds lease, std::function<absl::Status()> renew)
      : thread_([this, lease, renew = std::move(renew)] {
          std::unique_lock lock(mu_);
          while (!cv_.wait_for(lock, lease / 3, [this] { return done_; })) {
            lock.unlock();
            absl::Status st = renew();
            lock.lock();
            if (absl::IsFailedPrecondition(st)) {
              lost_ = true;
              return;
            }
          }
        }) {}
  ~Heartbeat() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool lost() {
    std::lock_guard lock(mu_);
    return lost_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool lost_ = false;
  std::thread thread_;
};

// Why an attempt escalated, as the metrics name it.
observability::EscalationReason EscalationOf(core::AttemptFailure failure) {
  using observability::EscalationReason;
  switch (failure) {
    case core::AttemptFailure::kTimeBudget:
      return EscalationReason::kTimeBudget;
    case core::AttemptFailure::kCost:
      return EscalationReason::kCost;
    case core::AttemptFailure::kMiaAuc:
      return EscalationReason::kMiaAuc;
    case core::AttemptFailure::kTestAccuracy:
      return EscalationReason::kTestAccuracy;
    case core::AttemptFailure::kForgetAccuracy:
      return EscalationReason::kForgetAccuracy;
    case core::AttemptFailure::kForgetConfidence:
      return EscalationReason::kForgetConfidence;
    case core::AttemptFailure::kCalibration:
      return EscalationReason::kCalibration;
    case core::AttemptFailure::kNone:
    case core::AttemptFailure::kError:
      break;
  }
  return EscalationReason::kError;
}

// Records a finished engine run in the worker's metrics.
void RecordRun(observability::WorkerMetrics& m, const std::string& model_id,
               const core::Report& r, double fetch_s, double publish_s,
               double total_s, int64_t records_removed) {
  using observability::TaskPhase;
  // Load: fetching the version and dataset from PostgreSQL, then the
  // engine's deserialisation of the model.
  m.ObservePhase(r.method, TaskPhase::kLoad, fetch_s + r.timings.load_s);
  m.ObservePhase(r.method, TaskPhase::kUnlearn, r.timings.unlearn_s);
  m.ObservePhase(r.method, TaskPhase::kVerify, r.timings.verify_s);
  m.ObservePhase(r.method, TaskPhase::kPublish, publish_s);
  m.ObserveTask(r.method, total_s);
  m.AddRecordsRemoved(r.method, records_removed);
  for (size_t i = 0; i < r.attempts.size(); ++i) {
    const core::Attempt& a = r.attempts[i];
    if (a.failure == core::AttemptFailure::kNone) continue;
    // An adaptive method's round that another round followed did not
    // escalate: the method went on.
    if (i + 1 < r.attempts.size() && a.round > 0 &&
        r.attempts[i + 1].method == a.method &&
        r.attempts[i + 1].round == a.round + 1) {
      continue;
    }
    m.RecordEscalation(a.method, EscalationOf(a.failure));
  }
  m.ObserveOutcome(model_id, r.after.mia_auc, r.after.ta - r.before.ta);
}

}  // namespace

Worker::Worker(WorkerOptions options)
    : Worker(std::move(options), nullptr, nullptr) {}

Worker::Worker(WorkerOptions options, std::shared_ptr<storage::Backend> backend,
               std::shared_ptr<ModelEngine> engine)
    : options_(std::move(options)),
      log_(options_.logger ? *options_.logger
                           : observability::Logger::Stderr(
                                 observability::LogLevel::kInfo, "worker")),
      backend_(std::move(backend)),
      engine_(std::move(engine)) {
  if (options_.owner_prefix.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    options_.owner_prefix = absl::StrCat(host, ":", getpid());
  }
  if (!backend_) {
    storage::PostgresOptions pg;
    pg.url = options_.database_url;
    pg.pool_size = options_.concurrency * 2 + 2;
    pg.artifact_dir = options_.artifact_dir;
    backend_ = storage::OpenPostgres(pg);
  }
}

Worker::~Worker() = default;

absl::Status Worker::Run() {
  if (!engine_) {
    absl::StatusOr<std::unique_ptr<ModelEngine>> engine;
    if (options_.engine == "in-process") {
      engine = NewInProcessEngine(options_.device, options_.threads);
    } else if (options_.engine == "sandbox") {
      SandboxOptions sandbox = options_.sandbox;
      if (sandbox.engine_binary.empty()) {
        sandbox.engine_binary = DefaultEngineBinary();
      }
      if (sandbox.spool_dir.empty()) sandbox.spool_dir = options_.scratch_dir;
      engine = NewSandboxedEngine(
          std::move(sandbox), options_.device, options_.threads,
          [this](std::string_view op, const RunUsage& usage) {
            if (options_.metrics != nullptr) {
              options_.metrics->ObserveEngineRun(op, usage.peak_rss_bytes);
            }
            log_.Info({}, "engine run",
                      {{"op", std::string(op)},
                       {"peak_rss_mb", usage.peak_rss_bytes >> 20},
                       {"cpu_s", usage.cpu_seconds},
                       {"wall_s", usage.wall_seconds}});
          });
    } else {
      engine = absl::InvalidArgumentError(
          absl::StrCat("--engine must be 'sandbox' or 'in-process', got '",
                       options_.engine, "'"));
    }
    if (!engine.ok()) return engine.status();
    engine_ = std::move(*engine);
  }
  device_kind_ = engine_->device_kind();
  log_.Info({}, "worker started",
            {{"device", engine_->device_name()},
             {"owner", options_.owner_prefix},
             {"concurrency", options_.concurrency}});
  std::vector<std::thread> loops;
  loops.reserve(options_.concurrency);
  for (int i = 0; i < options_.concurrency; ++i) {
    loops.emplace_back([this, i] { Loop(i); });
  }
  for (auto& t : loops) t.join();
  log_.Info({}, "worker stopped");
  return absl::OkStatus();
}

void Worker::Stop() { stop_ = true; }

void Worker::ReleaseInFlight() {
  std::lock_guard lock(mu_);
  for (auto& [queue, batch] : running_) {
    auto st = queue->Release(batch);
    if (st.ok()) {
      log_.Warn({.model_id = batch.model.id},
                "drain deadline passed: batch released to the queue");
    } else {
      log_.Error({.model_id = batch.model.id}, "could not release batch",
                 {{"error", storage::ErrorDetail(st)}});
    }
  }
}

void Worker::Fault(const std::string& point) const {
  if (options_.fault_point != point) return;
  log_.Warn({}, absl::StrCat("fault injection: SIGKILL at ", point));
  raise(SIGKILL);
}

void Worker::Loop(int index) {
  storage::QueueOptions qo;
  qo.owner = absl::StrCat(options_.owner_prefix, ":", index);
  qo.lease = options_.lease;
  qo.default_batch = std::min(options_.default_batch, options_.max_batch);
  qo.max_batch = options_.max_batch;
  qo.retry_base_seconds = options_.retry_base_seconds;
  qo.retry_max_seconds = options_.retry_max_seconds;
  qo.max_lost_leases = options_.max_lost_leases;
  // Claim only models this device may run (UnlearningPolicy.device).
  qo.device_kind = device_kind_;
  std::unique_ptr<storage::WorkQueue> queue = backend_->NewWorkQueue(qo);
  std::unique_ptr<storage::ChangeListener> listener;
  auto housekeeping = Clock::time_point();
  while (!stop_) {
    if (index == 0 && Clock::now() - housekeeping > options_.lease / 4) {
      housekeeping = Clock::now();
      Housekeeping(*queue);
    }
    if (RunOnce(*queue)) continue;
    if (options_.exit_when_idle) {
      auto idle = queue->Idle();
      if (idle.ok() && *idle) {
        stop_ = true;
        break;
      }
    }
    WaitForWork(listener);
  }
}

void Worker::Housekeeping(storage::WorkQueue& queue) {
  if (auto n = queue.RescueExpired(); n.ok() && *n > 0) {
    log_.Warn({}, absl::StrCat("rescued ", *n, " tasks with expired leases"));
  }
  if (auto n = queue.SkipInvalidModels(); n.ok() && *n > 0) {
    log_.Warn({}, absl::StrCat("skipped ", *n, " tasks of INVALID models"));
  }
  if (auto n = queue.DeleteDueVersions(); n.ok() && *n > 0) {
    log_.Info({}, absl::StrCat("deleted ", *n, " superseded model versions"));
  }
  if (!options_.signing_keys || options_.signing_keys->empty()) return;
  auto n = IssueMissingCertificates(backend_->certificates(),
                                    *options_.signing_keys, 100);
  if (!n.ok()) {
    log_.Error({}, absl::StrCat("issuing missing certificates: ",
                                storage::ErrorDetail(n.status())));
  } else if (*n > 0) {
    log_.Info({}, absl::StrCat("issued ", *n, " missing certificates"));
    if (options_.metrics) {
      for (int i = 0; i < *n; ++i) options_.metrics->RecordCertificateIssued();
    }
  }
  // Also covers certificates whose issuer died before signing.
  SignCheckpoint();
}

void Worker::SignCheckpoint() {
  if (!options_.signing_keys || options_.signing_keys->empty()) return;
  auto cp = backend_->certificates().SignCheckpoint(*options_.signing_keys,
                                                    options_.log_origin);
  if (!cp.ok()) {
    log_.Error({}, absl::StrCat("signing a log checkpoint: ",
                                storage::ErrorDetail(cp.status())));
  }
}

void Worker::WaitForWork(std::unique_ptr<storage::ChangeListener>& listener) {
  // Sleep until notified or the poll interval passes.
  if (!listener) {
    auto opened =
        backend_->Listen({storage::kTasksChannel, storage::kModelsChannel});
    if (!opened.ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      return;
    }
    listener = std::move(*opened);
  }
  const auto wait =
      options_.exit_when_idle
          ? std::min(options_.poll, std::chrono::milliseconds(500))
          : options_.poll;
  auto woke = listener->Wait(wait);
  if (!woke.ok()) {
    listener.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    return;
  }
  // Throttle: a burst of notifications wakes us once.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!listener->Wait(std::chrono::milliseconds(0)).ok()) listener.reset();
}

bool Worker::RunOnce(storage::WorkQueue& queue) {
  auto job = queue.ClaimModelJob();
  if (!job.ok()) {
    log_.Error({}, absl::StrCat("claiming a model job: ",
                                storage::ErrorDetail(job.status())));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return false;
  }
  if (job->has_value()) {
    RunModelJob(queue, std::move(**job));
    return true;
  }
  auto batch = queue.ClaimBatch();
  if (!batch.ok()) {
    log_.Error({}, absl::StrCat("claiming tasks: ",
                                storage::ErrorDetail(batch.status())));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return false;
  }
  if (!batch->has_value()) return false;
  RunBatch(queue, std::move(**batch));
  return true;
}

// What the steps of one batch share.
struct Worker::BatchRun {
  storage::WorkQueue& queue;
  const storage::TaskBatch& batch;
  std::function<bool()> lease_lost;
  Clock::time_point started;
  double fetch_s = 0;
  double publish_s = 0;
  core::Result<EngineUnlearned> outcome =
      core::Status(core::Code::kInternal, "not run");
  std::unique_ptr<storage::SpoolFile> model;  // the version unlearned from
  storage::PublishRequest pub;
  int certificates = 0;
};

void Worker::RunBatch(storage::WorkQueue& queue, storage::TaskBatch batch) {
  ++in_flight_;
  {
    std::lock_guard lock(mu_);
    running_.emplace_back(&queue, batch);
  }
  if (options_.metrics) {
    options_.metrics->SetBusy(true);
    options_.metrics->ObserveBatchSize(
        static_cast<int64_t>(batch.tasks.size()));
  }
  log_.Info(
      {.model_id = batch.model.id}, "batch claimed",
      {{"tasks", batch.tasks.size()}, {"attempt", batch.tasks.front().token}});
  {
    Heartbeat heartbeat(options_.lease, [&] { return queue.Renew(batch); });
    BatchRun run{queue, batch, [&heartbeat] { return heartbeat.lost(); },
                 Clock::now()};
    if (auto st = UnlearnBatch(run); !st.ok()) {
      FailBatch(queue, batch, st);
    } else if (auto published = PublishBatch(run); published) {
      if (run.certificates > 0) SignCheckpoint();
      RecordBatch(run, *published);
    }
  }
  {
    std::lock_guard lock(mu_);
    std::erase_if(running_, [&](const auto& r) {
      return r.first == &queue &&
             r.second.tasks.front().task_id == batch.tasks.front().task_id;
    });
  }
  if (options_.metrics) options_.metrics->SetBusy(false);
  --in_flight_;
}

void Worker::FailBatch(storage::WorkQueue& queue,
                       const storage::TaskBatch& batch,
                       const absl::Status& why) {
  const std::string& model_id = batch.model.id;
  if (absl::IsUnavailable(why)) {
    // The database, not the work, failed: give the batch back uncounted (if
    // the database is still gone, its lease expires and is rescued).
    log_.Warn({.model_id = model_id},
              absl::StrCat("database lost; batch released: ",
                           storage::ErrorDetail(why)));
    (void)queue.Release(batch);
    return;
  }
  if (options_.metrics) {
    options_.metrics->RecordTaskOutcome(observability::TaskOutcome::kRetried);
  }
  log_.Warn({.model_id = model_id},
            absl::StrCat("batch failed: ", storage::ErrorDetail(why)));
  if (auto st = queue.Fail(batch, std::string(why.message())); !st.ok()) {
    log_.Error({.model_id = model_id}, absl::StrCat("recording the failure: ",
                                                    storage::ErrorDetail(st)));
  }
}

absl::Status Worker::UnlearnBatch(BatchRun& run) {
  const storage::TaskBatch& batch = run.batch;
  // A failure of the work itself; UNAVAILABLE is kept for the database.
  auto work_failed = [](absl::string_view why) {
    return absl::InternalError(why);
  };
  auto spec = ParseModelSpec(batch.model, batch.dataset);
  if (!spec.ok()) return work_failed(std::string(spec.status().message()));
  // The load phase: the newest version and the dataset from storage here,
  // the model's deserialisation in the engine (report.timings).
  const auto fetch_start = Clock::now();
  auto latest = run.queue.Latest(batch.model.id);
  if (!latest.ok()) return latest.status();
  auto model =
      SpoolArtifact(run.queue, latest->artifact_sha256, options_.scratch_dir);
  if (!model.ok()) return model.status();
  run.model = std::move(*model);
  auto data = TrainingSet::Load(run.queue, batch.model, batch.dataset,
                                options_.scratch_dir);
  if (!data.ok()) return data.status();
  run.fetch_s =
      std::chrono::duration<double>(Clock::now() - fetch_start).count();
  core::UnlearnRequest req;
  std::set<std::string> keys;
  for (const auto& t : batch.tasks) {
    if (!t.subject_key.empty()) keys.insert(t.subject_key);
  }
  req.forget_subjects.assign(keys.begin(), keys.end());
  req.recipe = spec->recipe;
  req.trained_by_lethe = latest->trained_by_lethe;
  req.policy = spec->policy;
  if (spec->state_kind == StateKind::kSisa) req.sisa_state = latest->state;
  if (spec->state_kind == StateKind::kNewton) req.newton_state = latest->state;
  if (options_.fault_point == "training") {
    std::thread([this] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      Fault("training");
    }).detach();
  }
  run.outcome = engine_->Unlearn(*spec, req, *run.model, **data);
  run.pub.parent_version = latest->version;
  run.pub.grace_seconds = spec->grace_seconds;
  if (!run.outcome.ok()) {
    if (run.outcome.status().code() != core::Code::kNotFound) {
      return work_failed(run.outcome.status().ToString());
    }
    // No training record of these subjects: nothing to unlearn, but their
    // other records still go and the requests complete.
    run.pub.produced_by = "none";
    return absl::OkStatus();
  }
  core::UnlearnOutcome& out = run.outcome.value().outcome;
  if (!out.report.ok) {
    return work_failed(absl::StrCat("every method of the policy failed: ",
                                    out.report.failure));
  }
  run.pub.artifact = run.outcome.value().model.bytes.get();
  run.pub.artifact_sha256 = run.outcome.value().model.sha256;
  run.pub.state =
      spec->state_kind == StateKind::kSisa ? out.sisa_state : out.newton_state;
  run.pub.produced_by = out.report.method;
  run.pub.report_json = core::ReportToJson(out.report);
  return absl::OkStatus();
}

std::optional<storage::PublishResult> Worker::PublishBatch(BatchRun& run) {
  const std::string& model_id = run.batch.model.id;
  if (run.lease_lost()) {
    log_.Warn({.model_id = model_id},
              "lease lost during the run; result discarded");
    return std::nullopt;
  }
  const auto publish_start = Clock::now();
  auto hook = [&](storage::CertificateScope& scope,
                  const std::vector<std::string>& done) {
    Fault("after_artifact");
    if (options_.signing_keys && !options_.signing_keys->empty()) {
      // A certificate that cannot be issued (an expired key, say) must not
      // undo the erasure: it is rolled back alone, logged, and issued later
      // by the housekeeping sweep.
      absl::Status st = scope.Isolated([&]() -> absl::Status {
        auto issued = IssueCertificates(scope, done, *options_.signing_keys);
        if (!issued.ok()) return issued.status();
        run.certificates = *issued;
        return absl::OkStatus();
      });
      if (!st.ok()) {
        run.certificates = 0;
        log_.Error(
            {.model_id = model_id},
            absl::StrCat("certificate deferred: ", storage::ErrorDetail(st)));
      }
    }
    Fault("before_commit");
    return absl::OkStatus();
  };
  auto published = run.queue.Publish(run.batch, run.pub, hook);
  run.publish_s =
      std::chrono::duration<double>(Clock::now() - publish_start).count();
  if (absl::IsFailedPrecondition(published.status())) {
    log_.Warn({.model_id = model_id}, storage::ErrorDetail(published.status()));
    return std::nullopt;
  }
  if (absl::IsAborted(published.status())) {
    log_.Warn({.model_id = model_id}, storage::ErrorDetail(published.status()));
    (void)run.queue.Release(run.batch);
    return std::nullopt;
  }
  if (!published.ok()) {
    FailBatch(run.queue, run.batch, published.status());
    return std::nullopt;
  }
  Fault("after_commit");
  return *std::move(published);
}

void Worker::RecordBatch(const BatchRun& run,
                         const storage::PublishResult& published) {
  const std::string& model_id = run.batch.model.id;
  const double total_s =
      std::chrono::duration<double>(Clock::now() - run.started).count();
  const bool ran = run.outcome.ok() && run.outcome.value().outcome.report.ok;
  if (options_.metrics) {
    for (size_t i = 0; i < run.batch.tasks.size(); ++i) {
      options_.metrics->RecordTaskOutcome(observability::TaskOutcome::kDone);
    }
    for (int i = 0; i < run.certificates; ++i) {
      options_.metrics->RecordCertificateIssued();
    }
    if (ran) {
      RecordRun(*options_.metrics, model_id, run.outcome.value().outcome.report,
                run.fetch_s, run.publish_s, total_s, published.records_removed);
    }
  }
  const core::Report* report =
      ran ? &run.outcome.value().outcome.report : nullptr;
  log_.Info(
      {.model_id = model_id}, "batch published",
      {{"version", published.version},
       {"method", run.pub.produced_by},
       {"records_removed", published.records_removed},
       {"completed", published.completed_erasures.size()},
       {"requests", run.batch.tasks.size()},
       {"load_seconds", run.fetch_s + (report ? report->timings.load_s : 0.0)},
       {"unlearn_seconds", report ? report->timings.unlearn_s : 0.0},
       {"verify_seconds", report ? report->timings.verify_s : 0.0},
       {"publish_seconds", run.publish_s},
       {"seconds", total_s}});
}

void Worker::RunModelJob(storage::WorkQueue& queue, storage::ModelJob job) {
  ++in_flight_;
  const std::string model_id = job.model.id;
  log_.Info({.model_id = model_id},
            job.training ? "training model" : "validating model");
  Heartbeat heartbeat(options_.lease, [&] { return queue.RenewModelJob(job); });
  auto finish = [&](const absl::Status& st) {
    if (!st.ok()) {
      log_.Error({.model_id = model_id},
                 absl::StrCat("model job: ", storage::ErrorDetail(st)));
    }
  };
  [&] {
    auto spec = ParseModelSpec(job.model, job.dataset);
    if (!spec.ok()) {
      return finish(
          queue.FailModelJob(job, std::string(spec.status().message()), true));
    }
    if (!job.training) {
      auto model =
          SpoolArtifact(queue, job.artifact_sha256, options_.scratch_dir);
      if (!model.ok()) {
        return finish(queue.FailModelJob(
            job, std::string(model.status().message()), false));
      }
      core::Status valid = engine_->Validate(**model, spec->features);
      if (!valid.ok()) {
        log_.Warn({.model_id = model_id},
                  absl::StrCat("model invalid: ", valid.message()));
        return finish(queue.FailModelJob(job, valid.message(), true));
      }
      log_.Info({.model_id = model_id}, "model validated");
      return finish(
          queue.FinishModelJob(job, nullptr, "", "", "validated", ""));
    }
    if (spec->torchscript) {
      return finish(queue.FailModelJob(
          job, "a TorchScript model needs its artifact; it cannot be trained",
          true));
    }
    auto data =
        TrainingSet::Load(queue, job.model, job.dataset, options_.scratch_dir);
    if (!data.ok()) {
      return finish(
          queue.FailModelJob(job, std::string(data.status().message()), false));
    }
    core::Result<EngineTrained> trained = engine_->Train(*spec, **data);
    if (!trained.ok()) {
      const bool permanent =
          trained.status().code() == core::Code::kInvalidArgument;
      return finish(
          queue.FailModelJob(job, trained.status().ToString(), permanent));
    }
    if (heartbeat.lost()) return;
    const core::TrainedModel& t = trained.value().trained;
    const ModelFile& file = trained.value().model;
    // The records it trained on: the dataset less its exclusion list.
    const std::string report = absl::StrCat(
        "{\"train_accuracy\":", t.train_accuracy,
        ",\"test_accuracy\":", t.test_accuracy, ",\"seconds\":", t.seconds,
        ",\"train_records\":", (*data)->train_records(),
        ",\"test_records\":", (*data)->test_records(), "}");
    finish(queue.FinishModelJob(
        job, file.bytes.get(), file.sha256,
        spec->state_kind == StateKind::kSisa ? t.sisa_state : t.newton_state,
        "trained", report));
    log_.Info({.model_id = model_id}, "model trained",
              {{"test_accuracy", t.test_accuracy}, {"seconds", t.seconds}});
  }();
  --in_flight_;
}

}  // namespace lethe::worker
