// TrainingSet: a model's training records as the engine reads them (core's
// dataset encoding, lethe/core/dataset.h), kept on disk rather than in the
// worker's memory (issue 19).
//
// Load streams the records from storage (WorkQueue::ForEachTrainingRecord,
// the only way records reach a worker, so an erased subject's records never
// reach it) into an unlinked file in the scratch directory, a megabyte at a
// time, checking each as the engine's decoder will. What the worker holds
// is the header: the spec, the distinct subject keys and the count, read
// first. The engine (ModelEngine) reads the set once: the sandboxed engine
// pipes it to its process, which builds the one copy that training uses.
#ifndef LETHE_WORKER_TRAINING_SET_H_
#define LETHE_WORKER_TRAINING_SET_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/model_store.h"
#include "storage/spool.h"
#include "storage/types.h"
#include "storage/work_queue.h"

namespace lethe::worker {

class TrainingSet final : public storage::ByteStream {
 public:
  // INVALID_ARGUMENT for a record the engine would reject (a wrong feature
  // length, a label out of range), naming it; the scratch file's errors
  // (RESOURCE_EXHAUSTED when its disk is full); storage's errors.
  static absl::StatusOr<std::unique_ptr<TrainingSet>> Load(
      storage::WorkQueue& queue, const storage::ModelRow& model,
      const storage::DatasetRow& dataset, const std::string& scratch_dir);

  TrainingSet(const TrainingSet&) = delete;
  TrainingSet& operator=(const TrainingSet&) = delete;

  int64_t records() const { return train_records_ + test_records_; }
  int64_t train_records() const { return train_records_; }
  int64_t test_records() const { return test_records_; }

  absl::StatusOr<size_t> Read(char* buf, size_t max) override {
    return stream_.Read(buf, max);
  }
  absl::Status Rewind() override { return stream_.Rewind(); }
  int64_t size() const override { return stream_.size(); }

 private:
  TrainingSet(std::unique_ptr<storage::SpoolFile> file, std::string header,
              int64_t train_records, int64_t test_records)
      : file_(std::move(file)),
        stream_(std::move(header), file_.get()),
        train_records_(train_records),
        test_records_(test_records) {}

  std::unique_ptr<storage::SpoolFile> file_;
  storage::PrefixedStream stream_;
  int64_t train_records_;
  int64_t test_records_;
};

// A model file from storage (WorkQueue::OpenArtifact), copied a chunk at a
// time into an unlinked file in `scratch_dir` and checked against its
// digest (DATA_LOSS when the stored bytes do not match it): the worker
// never holds a whole model file (issue 19). The file is at its start.
absl::StatusOr<std::unique_ptr<storage::SpoolFile>> SpoolArtifact(
    storage::WorkQueue& queue, const std::string& sha256,
    const std::string& scratch_dir);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_TRAINING_SET_H_
