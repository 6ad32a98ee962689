#include "worker/training_set.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "lethe/core/dataset.h"
#include "worker/engine/model_spec.h"

namespace lethe::worker {
namespace {

// Records are written to the scratch file in pieces of about this size.
constexpr size_t kFlushBytes = size_t{1} << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<TrainingSet>> TrainingSet::Load(
    storage::WorkQueue& queue, const storage::ModelRow& model,
    const storage::DatasetRow& dataset, const std::string& scratch_dir) {
  auto file = storage::SpoolFile::Create(scratch_dir, /*hashed=*/false);
  if (!file.ok()) return file.status();
  core::DatasetEncoder encoder(FeaturesOf(dataset));
  std::string pending;
  int64_t test = 0;
  pending.reserve(kFlushBytes + encoder.RecordBytes());
  absl::Status st = queue.ForEachTrainingRecord(
      model.id, [&](storage::RecordData& r) -> absl::Status {
        core::Status added =
            encoder.AddRecord(r.id, r.subject_key, r.label,
                              r.test ? core::Split::kTest : core::Split::kTrain,
                              r.features, pending);
        test += r.test ? 1 : 0;
        if (!added.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("dataset ", dataset.id, ": ", added.message()));
        }
        if (pending.size() < kFlushBytes) return absl::OkStatus();
        absl::Status written = (*file)->Append(pending);
        pending.clear();
        return written;
      });
  if (st.ok() && !pending.empty()) st = (*file)->Append(pending);
  if (st.ok()) st = (*file)->Rewind();
  if (!st.ok()) return st;
  return std::unique_ptr<TrainingSet>(new TrainingSet(
      std::move(file).value(), encoder.Header(), encoder.size() - test, test));
}

absl::StatusOr<std::unique_ptr<storage::SpoolFile>> SpoolArtifact(
    storage::WorkQueue& queue, const std::string& sha256,
    const std::string& scratch_dir) {
  auto reader = queue.OpenArtifact(sha256);
  if (!reader.ok()) return reader.status();
  auto file = storage::SpoolFile::Create(scratch_dir, /*hashed=*/false);
  if (!file.ok()) return file.status();
  std::string chunk;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next(&chunk);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (absl::Status st = (*file)->Append(chunk); !st.ok()) return st;
  }
  if (absl::Status st = (*file)->Rewind(); !st.ok()) return st;
  return std::move(*file);
}

}  // namespace lethe::worker
