// Runs one scenario: trains the original, then for each forget request every
// method (and retrains with other seeds for the noise floor, the default
// policy chain, SISA and Newton), prints the table and returns the JSON.
#ifndef LETHE_BENCH_ENGINE_RUNNER_H_
#define LETHE_BENCH_ENGINE_RUNNER_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "lethe/core/metrics.h"
#include "scenario.h"

namespace lethe::bench {

struct RunOptions {
  bool sisa = true;
  bool sisa_exact_check = true;  // retrain SISA without the records, compare
  // The certified scenario's rf_logreg and NewtonParams.
  double newton_sigma = 10.0;
  double newton_lambda = 1e-3;
  int64_t newton_features = 256;
  bool train_only = false;  // time the original's training and stop
  // Method rows whose label contains one of these (all when empty).
  std::vector<std::string> only;
  // MethodContext::seed of the method rows (batch order, random labels): run
  // a setting under several to see how much of a result is the draw.
  uint64_t method_seed = 0;
  // Each method row is run this many times and timed by the median (the
  // retrains' time is the median of three retrains; one call of a 0.3 s
  // method varied by up to 2x on the shared machine).
  int time_repeats = 3;
  // The sisa scenario: seeds 0..sisa_seeds-1, each drawing its own requests.
  int sisa_seeds = 4;
  // The epochs SISA's shards train for (0: the recipe's, as the monolithic
  // model): what closing the accuracy gap costs.
  int sisa_epochs = 0;
};

// Prints the tables to stdout; returns the scenario's results as JSON.
core::Result<std::string> RunScenario(const Scenario& s, const RunOptions& o);

// Seconds since t; a number for the JSON ("null" when not finite); a
// Metrics object as JSON.
double Since(std::chrono::steady_clock::time_point t);
std::string Num(double v, const char* fmt = "%.4g");
std::string MetricsJson(const core::Metrics& m);

// "1-min load average" from /proc/loadavg; kB values from /proc/self/status.
std::string LoadAverage();
int64_t StatusKb(const char* field);  // "VmHWM", "VmRSS"

}  // namespace lethe::bench

#endif  // LETHE_BENCH_ENGINE_RUNNER_H_
