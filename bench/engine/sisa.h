// The `sisa` scenario of engine_bench: SISA (K = 8 shards, S = 8 slices) on
// all 60,000 Fashion-MNIST training images in subjects of 20 records,
// against the monolithic model trained with the same recipe, over seeds.
#ifndef LETHE_BENCH_ENGINE_SISA_H_
#define LETHE_BENCH_ENGINE_SISA_H_

#include <string>

#include "runner.h"
#include "scenario.h"

namespace lethe::bench {

// Prints the tables; returns the scenario's results as JSON (no closing
// brace, like RunScenario).
core::Result<std::string> RunSisaScale(const Scenario& s, const RunOptions& o);

}  // namespace lethe::bench

#endif  // LETHE_BENCH_ENGINE_SISA_H_
