#include "worker/worker.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <pqxx/notification>
#include <set>

#include "absl/strings/str_cat.h"
#include "lethe/core/report.h"
#include "lethe/core/runtime.h"
#include "observability/log.h"
#include "worker/certify.h"
#include "worker/model_spec.h"

namespace lethe::worker {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status FromCore(const core::Status& st) {
  if (st.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(st.code()), st.message());
}

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

// Records a finished engine run in the worker's metrics.
void RecordRun(observability::WorkerMetrics& m, const std::string& model_id,
               const core::Report& r, double fetch_s, double publish_s,
               double total_s, int64_t records_removed) {
  using observability::EscalationReason;
  using observability::TaskPhase;
  // Load: fetching the version and dataset from PostgreSQL, then the
  // engine's deserialisation of the model.
  m.ObservePhase(r.method, TaskPhase::kLoad, fetch_s + r.timings.load_s);
  m.ObservePhase(r.method, TaskPhase::kUnlearn, r.timings.unlearn_s);
  m.ObservePhase(r.method, TaskPhase::kVerify, r.timings.verify_s);
  m.ObservePhase(r.method, TaskPhase::kPublish, publish_s);
  m.ObserveTask(r.method, total_s);
  m.AddRecordsRemoved(r.method, records_removed);
  for (const core::Attempt& a : r.attempts) {
    if (a.outcome == "accepted") continue;
    EscalationReason why = EscalationReason::kError;
    if (a.outcome == "skipped") {
      // core's reasons: "time budget spent", "estimated cost ...".
      why = a.reason.find("cost") != std::string::npos
                ? EscalationReason::kCost
                : EscalationReason::kTimeBudget;
    } else if (a.outcome == "failed_gate") {
      // core's GateFailure reasons: "MIA AUC ...", "test accuracy dropped
      // ...", "forget accuracy exceeds test accuracy ...".
      if (a.reason.find("MIA") != std::string::npos) {
        why = EscalationReason::kMiaAuc;
      } else if (a.reason.find("forget accuracy") != std::string::npos) {
        why = EscalationReason::kForgetAccuracy;
      } else {
        why = EscalationReason::kTestAccuracy;
      }
    }
    m.RecordEscalation(a.method, why);
  }
  m.ObserveOutcome(model_id, r.after.mia_auc, r.after.ta - r.before.ta);
}

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel)
      : pqxx::notification_receiver(conn, channel) {}
  void operator()(const std::string&, int) override {}
};

}  // namespace

absl::StatusOr<core::Dataset> LoadDataset(storage::WorkQueue& queue,
                                          const storage::ModelRow& model,
                                          const storage::DatasetRow& dataset) {
  core::FeatureSpec spec;
  spec.shape = dataset.feature_shape;
  spec.type = dataset.feature_type == "uint8" ? core::FeatureType::kUint8
                                              : core::FeatureType::kFloat32;
  spec.num_classes = dataset.num_classes;
  core::DatasetBuilder builder(spec);
  auto st = queue.ForEachTrainingRecord(model.id, [&](storage::RecordData& r) {
    return FromCore(builder.Add(r.id, r.subject_key, r.label,
                                r.test ? core::Split::kTest : core::Split::kTrain,
                                r.features));
  });
  if (!st.ok()) return st;
  auto built = std::move(builder).Build();
  if (!built.ok()) return FromCore(built.status());
  return std::move(built).value();
}

Worker::Worker(WorkerOptions options)
    : options_(std::move(options)),
      log_(options_.logger ? *options_.logger
                           : observability::Logger::Stderr(
                                 observability::LogLevel::kInfo, "worker")) {
  if (options_.owner_prefix.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    options_.owner_prefix = absl::StrCat(host, ":", getpid());
  }
  db_ = std::make_unique<storage::Database>(storage::DatabaseOptions{
      options_.database_url, options_.concurrency * 2 + 2, 30});
  artifacts_ = options_.artifact_dir.empty()
                   ? storage::NewPostgresArtifactStore()
                   : storage::NewFilesystemArtifactStore(options_.artifact_dir);
}

Worker::~Worker() = default;

absl::Status Worker::Run() {
  core::InitRuntime(options_.threads);
  auto device = core::ParseDevice(options_.device);
  if (!device.ok()) return FromCore(device.status());
  engine_ = std::make_unique<core::Engine>(core::EngineOptions{device.value()});
  device_kind_ = device.value().is_cuda() ? "cuda" : "cpu";
  log_.Info({}, "worker started",
            {{"device", device.value().ToString()},
             {"owner", options_.owner_prefix},
             {"concurrency", options_.concurrency}});
  std::vector<std::thread> loops;
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
                 {{"error", std::string(st.message())}});
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
  storage::WorkQueue queue(db_.get(), artifacts_.get(), qo);
  std::unique_ptr<pqxx::connection> listen;
  std::unique_ptr<Receiver> tasks_rx, models_rx;
  auto housekeeping = Clock::time_point();
  while (!stop_) {
    if (index == 0 && Clock::now() - housekeeping > options_.lease / 4) {
      housekeeping = Clock::now();
      if (auto n = queue.RescueExpired(); n.ok() && *n > 0) {
        log_.Warn({}, absl::StrCat("rescued ", *n, " tasks with expired leases"));
      }
      if (auto n = queue.SkipInvalidModels(); n.ok() && *n > 0) {
        log_.Warn({}, absl::StrCat("skipped ", *n, " tasks of INVALID models"));
      }
      if (auto n = queue.DeleteDueVersions(); n.ok() && *n > 0) {
        log_.Info({}, absl::StrCat("deleted ", *n, " superseded model versions"));
      }
      if (options_.signing_keys && !options_.signing_keys->empty()) {
        auto n = IssueMissingCertificates(*db_, *options_.signing_keys, 100);
        if (!n.ok()) {
          log_.Error({}, absl::StrCat("issuing missing certificates: ",
                                    n.status().message()));
        } else if (*n > 0) {
          log_.Info({}, absl::StrCat("issued ", *n, " missing certificates"));
          if (options_.metrics) {
            for (int i = 0; i < *n; ++i) options_.metrics->RecordCertificateIssued();
          }
        }
      }
    }
    if (RunOnce(queue)) continue;
    if (options_.exit_when_idle) {
      auto idle = queue.Idle();
      if (idle.ok() && *idle) {
        stop_ = true;
        break;
      }
    }
    // Sleep until notified (LISTEN) or the poll interval passes.
    try {
      if (!listen || !listen->is_open()) {
        tasks_rx.reset();
        models_rx.reset();
        auto conn = db_->OpenDedicated();
        if (!conn.ok()) throw std::runtime_error(std::string(conn.status().message()));
        listen = std::move(*conn);
        tasks_rx = std::make_unique<Receiver>(*listen, "lethe_tasks");
        models_rx = std::make_unique<Receiver>(*listen, "lethe_models");
      }
      const auto wait = options_.exit_when_idle
                            ? std::min(options_.poll, std::chrono::milliseconds(500))
                            : options_.poll;
      listen->await_notification(
          wait.count() / 1000, static_cast<long>((wait.count() % 1000) * 1000));
      // Throttle: a burst of notifications wakes us once.
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      listen->get_notifs();
    } catch (const std::exception& e) {
      tasks_rx.reset();
      models_rx.reset();
      listen.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

bool Worker::RunOnce(storage::WorkQueue& queue) {
  auto job = queue.ClaimModelJob();
  if (!job.ok()) {
    log_.Error({}, absl::StrCat("claiming a model job: ", job.status().message()));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return false;
  }
  if (job->has_value()) {
    RunModelJob(queue, std::move(**job));
    return true;
  }
  auto batch = queue.ClaimBatch();
  if (!batch.ok()) {
    log_.Error({}, absl::StrCat("claiming tasks: ", batch.status().message()));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return false;
  }
  if (!batch->has_value()) return false;
  RunBatch(queue, std::move(**batch));
  return true;
}

void Worker::RunBatch(storage::WorkQueue& queue, storage::TaskBatch batch) {
  ++in_flight_;
  {
    std::lock_guard lock(mu_);
    running_.emplace_back(&queue, batch);
  }
  const std::string model_id = batch.model.id;
  const auto started = Clock::now();
  if (options_.metrics) {
    options_.metrics->SetBusy(true);
    options_.metrics->ObserveBatchSize(static_cast<int64_t>(batch.tasks.size()));
  }
  log_.Info({.model_id = model_id}, "batch claimed",
            {{"tasks", batch.tasks.size()},
             {"attempt", batch.tasks.front().token}});
  Heartbeat heartbeat(options_.lease, [&] { return queue.Renew(batch); });
  auto fail = [&](const std::string& why) {
    if (options_.metrics) {
      options_.metrics->RecordTaskOutcome(observability::TaskOutcome::kRetried);
    }
    log_.Warn({.model_id = model_id}, absl::StrCat("batch failed: ", why));
    if (auto st = queue.Fail(batch, why); !st.ok()) {
      log_.Error({.model_id = model_id}, absl::StrCat("recording the failure: ", st.message()));
    }
  };
  // The database, not the work, failed: give the batch back uncounted (if
  // the database is still gone, its lease expires and is rescued).
  auto fail_or_release = [&](const absl::Status& st) {
    if (!absl::IsUnavailable(st)) return fail(std::string(st.message()));
    log_.Warn({.model_id = model_id},
              absl::StrCat("database lost; batch released: ", st.message()));
    (void)queue.Release(batch);
  };
  [&] {
    auto spec = ParseModelSpec(batch.model, batch.dataset);
    if (!spec.ok()) return fail(std::string(spec.status().message()));
    // The load phase: the newest version and the dataset from PostgreSQL
    // here, the model's deserialisation in the engine (report.timings).
    const auto fetch_start = Clock::now();
    auto latest = queue.Latest(model_id);
    if (!latest.ok()) return fail_or_release(latest.status());
    auto data = LoadDataset(queue, batch.model, batch.dataset);
    if (!data.ok()) return fail_or_release(data.status());
    const double fetch_s =
        std::chrono::duration<double>(Clock::now() - fetch_start).count();
    core::UnlearnRequest req;
    req.model_bytes = latest->artifact;
    req.dataset = &*data;
    std::set<std::string> keys;
    for (const auto& t : batch.tasks) {
      if (!t.subject_key.empty()) keys.insert(t.subject_key);
    }
    req.forget_subjects.assign(keys.begin(), keys.end());
    req.recipe = spec->recipe;
    req.policy = spec->policy;
    if (spec->state_kind == StateKind::kSisa) req.sisa_state = latest->state;
    if (spec->state_kind == StateKind::kNewton) req.newton_state = latest->state;
    if (options_.fault_point == "training") {
      std::thread([this] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        Fault("training");
      }).detach();
    }
    auto outcome = engine_->Unlearn(req);
    storage::PublishRequest pub;
    pub.parent_version = latest->version;
    pub.grace_seconds = spec->grace_seconds;
    if (!outcome.ok()) {
      if (outcome.status().code() != core::Code::kNotFound) {
        return fail(outcome.status().ToString());
      }
      // No training record of these subjects: nothing to unlearn, but their
      // other records still go and the requests complete.
      pub.produced_by = "none";
    } else if (!outcome->report.ok) {
      return fail(absl::StrCat("every method of the policy failed: ",
                               outcome->report.failure));
    } else {
      pub.artifact = std::move(outcome->model_bytes);
      pub.state = spec->state_kind == StateKind::kSisa ? outcome->sisa_state
                                                        : outcome->newton_state;
      pub.produced_by = outcome->report.method;
      pub.report_json = core::ReportToJson(outcome->report);
    }
    if (heartbeat.lost()) {
      log_.Warn({.model_id = model_id}, "lease lost during the run; result discarded");
      return;
    }
    int certificates = 0;
    const auto publish_start = Clock::now();
    auto hook = [&](storage::Txn& txn, const std::vector<std::string>& done) {
      Fault("after_artifact");
      if (options_.signing_keys && !options_.signing_keys->empty()) {
        // A certificate that cannot be issued (an expired key, say) must
        // not undo the erasure: it is rolled back alone, logged, and
        // issued later by the housekeeping sweep.
        txn.exec("SAVEPOINT certify");
        absl::Status st;
        try {
          auto issued = IssueCertificates(txn, done, *options_.signing_keys);
          st = issued.status();
          if (issued.ok()) certificates = *issued;
        } catch (const std::exception& e) {
          st = absl::InternalError(e.what());
        }
        if (st.ok()) {
          txn.exec("RELEASE SAVEPOINT certify");
        } else {
          txn.exec("ROLLBACK TO SAVEPOINT certify");
          log_.Error({.model_id = model_id}, absl::StrCat("certificate deferred: ", st.message()));
        }
      }
      Fault("before_commit");
      return absl::OkStatus();
    };
    auto published = queue.Publish(batch, pub, hook);
    if (absl::IsFailedPrecondition(published.status())) {
      log_.Warn({.model_id = model_id}, std::string(published.status().message()));
      return;
    }
    if (absl::IsAborted(published.status())) {
      log_.Warn({.model_id = model_id}, std::string(published.status().message()));
      (void)queue.Release(batch);
      return;
    }
    if (!published.ok()) return fail_or_release(published.status());
    Fault("after_commit");
    if (options_.metrics) {
      for (size_t i = 0; i < batch.tasks.size(); ++i) {
        options_.metrics->RecordTaskOutcome(observability::TaskOutcome::kDone);
      }
      for (int i = 0; i < certificates; ++i) options_.metrics->RecordCertificateIssued();
      if (outcome.ok() && outcome->report.ok) {
        const double total =
            std::chrono::duration<double>(Clock::now() - started).count();
        RecordRun(*options_.metrics, model_id, outcome->report, fetch_s,
                  std::chrono::duration<double>(Clock::now() - publish_start).count(),
                  total, published->records_removed);
      }
    }
    const double publish_s =
        std::chrono::duration<double>(Clock::now() - publish_start).count();
    const double total_s = std::chrono::duration<double>(Clock::now() - started).count();
    const bool ran = outcome.ok() && outcome->report.ok;
    log_.Info({.model_id = model_id}, "batch published",
              {{"version", published->version},
               {"method", pub.produced_by},
               {"records_removed", published->records_removed},
               {"completed", published->completed_erasures.size()},
               {"requests", batch.tasks.size()},
               {"load_seconds", fetch_s + (ran ? outcome->report.timings.load_s : 0.0)},
               {"unlearn_seconds", ran ? outcome->report.timings.unlearn_s : 0.0},
               {"verify_seconds", ran ? outcome->report.timings.verify_s : 0.0},
               {"publish_seconds", publish_s},
               {"seconds", total_s}});
  }();
  {
    std::lock_guard lock(mu_);
    std::erase_if(running_, [&](const auto& r) {
      return r.first == &queue && r.second.tasks.front().task_id ==
                                      batch.tasks.front().task_id;
    });
  }
  if (options_.metrics) options_.metrics->SetBusy(false);
  --in_flight_;
}

void Worker::RunModelJob(storage::WorkQueue& queue, storage::ModelJob job) {
  ++in_flight_;
  const std::string model_id = job.model.id;
  log_.Info({.model_id = model_id}, job.training ? "training model" : "validating model");
  Heartbeat heartbeat(options_.lease, [&] { return queue.RenewModelJob(job); });
  auto finish = [&](absl::Status st) {
    if (!st.ok()) {
      log_.Error({.model_id = model_id}, absl::StrCat("model job: ", st.message()));
    }
  };
  [&] {
    auto spec = ParseModelSpec(job.model, job.dataset);
    if (!spec.ok()) {
      return finish(queue.FailModelJob(job, std::string(spec.status().message()), true));
    }
    if (!job.training) {
      core::Status valid = engine_->Validate(job.artifact, spec->features);
      if (!valid.ok()) {
        log_.Warn({.model_id = model_id}, absl::StrCat("model invalid: ", valid.message()));
        return finish(queue.FailModelJob(job, valid.message(), true));
      }
      log_.Info({.model_id = model_id}, "model validated");
      return finish(queue.FinishModelJob(job, "", "", "validated", ""));
    }
    if (spec->torchscript) {
      return finish(queue.FailModelJob(
          job, "a TorchScript model needs its artifact; it cannot be trained", true));
    }
    auto data = LoadDataset(queue, job.model, job.dataset);
    if (!data.ok()) {
      return finish(queue.FailModelJob(job, std::string(data.status().message()), false));
    }
    core::Result<core::TrainedModel> trained =
        spec->state_kind == StateKind::kSisa
            ? engine_->TrainSisa(spec->architecture, spec->recipe, *spec->sisa, *data)
        : spec->state_kind == StateKind::kNewton
            ? engine_->TrainCertified(spec->architecture,
                                      spec->policy.params.newton,
                                      spec->recipe.seed, *data)
            : engine_->Train(spec->architecture, spec->recipe, *data);
    if (!trained.ok()) {
      const bool permanent = trained.status().code() == core::Code::kInvalidArgument;
      return finish(queue.FailModelJob(job, trained.status().ToString(), permanent));
    }
    if (heartbeat.lost()) return;
    const auto& t = trained.value();
    // The records it trained on: the dataset less its exclusion list.
    const std::string report = absl::StrCat(
        "{\"train_accuracy\":", t.train_accuracy, ",\"test_accuracy\":",
        t.test_accuracy, ",\"seconds\":", t.seconds, ",\"train_records\":",
        core::IndicesOfSplit(*data, core::Split::kTrain).size(),
        ",\"test_records\":",
        core::IndicesOfSplit(*data, core::Split::kTest).size(), "}");
    finish(queue.FinishModelJob(
        job, t.model_bytes,
        spec->state_kind == StateKind::kSisa ? t.sisa_state : t.newton_state,
        "trained", report));
    log_.Info({.model_id = model_id}, "model trained",
              {{"test_accuracy", t.test_accuracy}, {"seconds", t.seconds}});
  }();
  --in_flight_;
}

}  // namespace lethe::worker
