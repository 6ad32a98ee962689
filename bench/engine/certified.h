// The `certified` scenario of engine_bench: Newton removal on rf_logreg.
#ifndef LETHE_BENCH_ENGINE_CERTIFIED_H_
#define LETHE_BENCH_ENGINE_CERTIFIED_H_

#include <string>

#include "runner.h"
#include "scenario.h"

namespace lethe::bench {

// Prints the tables; returns the scenario's results as JSON (no closing
// brace, like RunScenario).
core::Result<std::string> RunCertified(const Scenario& s, const RunOptions& o);

}  // namespace lethe::bench

#endif  // LETHE_BENCH_ENGINE_CERTIFIED_H_
