// engine_bench: lethe's unlearning benchmark on Fashion-MNIST (issue 3).
//
//   engine_bench --scenario
//   memorised-random|memorised-cluster|poison|class|certified|sisa
//                [--quick] [--sisa-seeds N] [--sisa-epochs E] [--threads 2]
//                [--data DIR] [--out DIR]
//                [--no-sisa] [--no-sisa-check]
//                [--newton-sigma S] [--newton-lambda L] [--newton-features F]
//                [--train-only] [--only TEXT]... [--method-seed N]
//                [--time-repeats N]
//                [--row
//                METHOD,EPOCHS,LR,X,HEAD_EPOCHS,HEAD_LR,HEAD_BATCH[,CLIP]]...
//
// --only keeps the method rows whose label contains TEXT (any of them, when
// repeated); --row adds a method row with those settings (scenario.h,
// RowVariant; for tuning without a rebuild per setting).
//
// One scenario per process, so that VmHWM is that scenario's peak. Writes
// OUT/engine-<scenario>[-quick].json.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "lethe/core/runtime.h"
#include "runner.h"
#include "scenario.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: engine_bench --scenario NAME [--quick] [--threads N] "
               "[--data DIR] [--out DIR] [--no-sisa] [--no-sisa-check] "
               "[--sisa-seeds N] [--sisa-epochs E] [--newton-sigma S] "
               "[--newton-lambda L] "
               "[--newton-features F] "
               "[--train-only] [--only TEXT]... [--method-seed N] "
               "[--time-repeats N] "
               "[--row METHOD,E,LR,X,HE,HLR,HB[,CLIP]]...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  lethe::bench::EnsurePassiveWaitPolicy(argv);
  std::string scenario, data = "/usr/share/datasets/fashion-mnist",
                        out = "bench/results";
  bool quick = false;
  int threads = 2;
  std::vector<std::string> rows;
  lethe::bench::RunOptions opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--scenario")
      scenario = next();
    else if (a == "--quick")
      quick = true;
    else if (a == "--threads")
      threads = std::atoi(next().c_str());
    else if (a == "--data")
      data = next();
    else if (a == "--out")
      out = next();
    else if (a == "--no-sisa")
      opt.sisa = false;
    else if (a == "--no-sisa-check")
      opt.sisa_exact_check = false;
    else if (a == "--train-only")
      opt.train_only = true;
    else if (a == "--only")
      opt.only.push_back(next());
    else if (a == "--row")
      rows.push_back(next());
    else if (a == "--time-repeats")
      opt.time_repeats = std::max(1, std::atoi(next().c_str()));
    else if (a == "--method-seed")
      opt.method_seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--sisa-epochs")
      opt.sisa_epochs = std::max(0, std::atoi(next().c_str()));
    else if (a == "--sisa-seeds")
      opt.sisa_seeds = std::max(1, std::atoi(next().c_str()));
    else if (a == "--newton-sigma")
      opt.newton_sigma = std::atof(next().c_str());
    else if (a == "--newton-lambda")
      opt.newton_lambda = std::atof(next().c_str());
    else if (a == "--newton-features")
      opt.newton_features = std::atoll(next().c_str());
    else
      return Usage();
  }
  if (scenario.empty()) return Usage();
  lethe::core::InitRuntime(threads);
  std::printf(
      "engine_bench: %d threads, OMP_WAIT_POLICY=%s, load %s\n", threads,
      std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "",
      lethe::bench::LoadAverage().c_str());

  int64_t rss_start = lethe::bench::StatusKb("VmRSS");
  lethe::core::Result<lethe::bench::Scenario> s = [&] {
    lethe::core::Result<lethe::bench::FashionMnist> raw =
        lethe::bench::LoadFashionMnist(data);
    if (!raw.ok())
      return lethe::core::Result<lethe::bench::Scenario>(raw.status());
    return lethe::bench::MakeScenario(scenario, quick, *raw);
  }();  // the raw IDX arrays are freed here
  if (!s.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", s.status().ToString().c_str());
    return 1;
  }
  for (const std::string& row : rows) {
    lethe::core::Result<lethe::bench::Variant> v =
        lethe::bench::RowVariant(row);
    if (!v.ok()) {
      std::fprintf(stderr, "engine_bench: %s\n", v.status().ToString().c_str());
      return 2;
    }
    s->variants.push_back(*std::move(v));
  }
  int64_t rss_data = lethe::bench::StatusKb("VmRSS");
  int64_t hwm_data = lethe::bench::StatusKb("VmHWM");
  // Reset VmHWM (Linux: "5" to clear_refs), so the peak below is the
  // methods', not the set-up's (IDX files, k-means distance matrices).
  bool reset = static_cast<bool>(std::ofstream("/proc/self/clear_refs") << "5");
  const double dataset_mb = static_cast<double>(s->data.size()) *
                            s->data.spec().NumFeatures() * 4 / 1e6;

  lethe::core::Result<std::string> json = lethe::bench::RunScenario(*s, opt);
  if (!json.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n",
                 json.status().ToString().c_str());
    return 1;
  }
  int64_t hwm = lethe::bench::StatusKb("VmHWM");
  std::printf(
      "\nmemory: dataset features %.1f MB (float32, held once; methods "
      "read the same tensors); VmRSS %.1f MB before loading, %.1f MB "
      "with the dataset built (set-up peak %.1f MB, then VmHWM %s), "
      "VmHWM at the end %.1f MB; load %s\n",
      dataset_mb, rss_start / 1024.0, rss_data / 1024.0, hwm_data / 1024.0,
      reset ? "reset" : "NOT reset", hwm / 1024.0,
      lethe::bench::LoadAverage().c_str());
  std::string path =
      out + "/engine-" + scenario + (quick ? "-quick" : "") +
      (opt.train_only ? "-train" : "") +
      (opt.sisa_epochs > 0 ? "-e" + std::to_string(opt.sisa_epochs) : "") +
      ".json";
  std::ofstream f(path);
  f << *json << ",\"threads\":" << threads
    << ",\"quick\":" << (quick ? "true" : "false")
    << R"(,"memory_kb":{"dataset_features":)"
    << static_cast<int64_t>(dataset_mb * 1e3 / 1.024)
    << ",\"rss_start\":" << rss_start << ",\"rss_with_dataset\":" << rss_data
    << ",\"hwm_with_dataset\":" << hwm_data
    << ",\"vmhwm_reset_after_setup\":" << (reset ? "true" : "false")
    << ",\"vmhwm_end\":" << hwm << "}}\n";
  if (!f) {
    std::fprintf(stderr, "engine_bench: cannot write %s\n", path.c_str());
    return 1;
  }
  std::printf("wrote %s\n", path.c_str());
  return 0;
}
