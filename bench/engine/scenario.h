// Benchmark scenarios on Fashion-MNIST (issue 3): data sets in which
// forgetting is measurable, with their subjects, forget requests and the
// benchmark policy's per-method hyperparameters.
#ifndef LETHE_BENCH_ENGINE_SCENARIO_H_
#define LETHE_BENCH_ENGINE_SCENARIO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/dataset_io.h"
#include "lethe/core/policy.h"
#include "lethe/core/recipe.h"
#include "lethe/core/status.h"

namespace lethe::bench {

struct FashionMnist {
  core::IdxArray train_images, train_labels, test_images, test_labels;
};
core::Result<FashionMnist> LoadFashionMnist(const std::string& dir);

// libgomp reads OMP_WAIT_POLICY when it is loaded, before main: the
// setenv in InitRuntime comes too late to stop its threads spinning against
// OpenBLAS's (measured here: 20 epochs on 2,000 images took 1.4-3.2 s instead
// of 0.43 s). So the variable must be in the environment at exec time; if it
// is not, this re-executes the binary with it (engine_bench, gate_bench).
void EnsurePassiveWaitPolicy(char** argv);

// One forget request: the union of these subjects.
struct Request {
  std::string name;  // e.g. "forget-20"
  std::vector<std::string> subjects;
};

// An approximate method with the hyperparameters of one table row.
struct Variant {
  std::string label;  // e.g. "finetune" or "finetune e1 lr0.05 (tuned)"
  core::Method method;
  core::MethodParams params;
};

struct Scenario {
  std::string name;
  core::Dataset data;                // the only copy of the features
  std::vector<int64_t> true_labels;  // per record; differs where poisoned
  bool poisoned = false;
  core::Recipe recipe;
  core::Architecture arch;
  std::vector<Request> requests;
  std::vector<Variant> variants;  // defaults first, then tuned rows
  // `certified`: only certified removal on rf_logreg (certified.cc);
  // `sequential` are the subjects it removes one at a time.
  bool certified = false;
  std::vector<std::string> sequential;
  // `sisa`: SISA at scale (sisa.cc): 60,000 images in subjects of 20, K = 8
  // shards, S = 8 slices, against the monolithic model, over seeds.
  bool sisa_scale = false;
};

// name: memorised-random, memorised-cluster, poison, class, certified, sisa.
// quick: a smaller, shorter version for smoke tests (not comparable with the
// reference). A method row from
// "METHOD,EPOCHS,LR,X,HEAD_EPOCHS,HEAD_LR,HEAD_BATCH[,CLIP]": METHOD finetune,
// neggrad_plus, random_label or salun, X its warmup, beta, 0 or salient; the
// HEAD_ fields set MethodParams::head_refit; CLIP is finetune's max_grad_norm.
// Trailing fields may be left out (core's defaults). Labelled like the tuned
// rows, e.g. "finetune e5 lr0.2 w0.2 h20 lr0.3 b256 (tuned)".
core::Result<Variant> RowVariant(const std::string& spec);

core::Result<Scenario> MakeScenario(const std::string& name, bool quick,
                                    const FashionMnist& raw);

// The scenario's data without the given records (same record ids, subject
// keys and labels): what exact methods must be equal to training on.
core::Result<core::Dataset> WithoutRecords(const core::Dataset& data,
                                           const std::vector<int64_t>& rows);

}  // namespace lethe::bench

#endif  // LETHE_BENCH_ENGINE_SCENARIO_H_
