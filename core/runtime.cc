#include "lethe/core/runtime.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <dlfcn.h>

#include <charconv>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace lethe::core {

void InitRuntime(int threads) {
  // Must precede the first parallel region, which starts the OpenMP pool.
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  if (threads <= 0) {
    threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
  }
  at::set_num_threads(threads);
  // Debian's LibTorch reaches OpenBLAS through the generic libblas.so.3, so
  // at::set_num_threads leaves OpenBLAS's own pool at one thread a core,
  // spinning in sched_yield between calls: at --threads 1 a process still
  // ran two BLAS threads (perf: a fifth of its samples in sched_yield). Size
  // that pool too where the loaded BLAS is OpenBLAS.
  using SetThreads = void (*)(int);
  if (auto* set = reinterpret_cast<SetThreads>(
          dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(threads);
  }
  static std::once_flag interop_once;
  std::call_once(interop_once, [] {
    try {
      // Throws once inter-op work has started; then the pool stays as is.
      at::set_num_interop_threads(1);
    } catch (const std::exception&) {
    }
  });
}

int BlasThreads() {
  using GetThreads = int (*)();
  auto* get = reinterpret_cast<GetThreads>(
      dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get != nullptr ? get() : -1;
}

void WarmUpRuntime() {
  at::parallel_for(0, at::get_num_threads(), 1, [](int64_t, int64_t) {});
  const at::Tensor a = at::ones({256, 256});
  (void)at::mm(a, a).sum().item<float>();
  const at::Tensor x = at::ones({64, 1, 8, 8});
  (void)at::conv2d(x, at::ones({4, 1, 3, 3})).sum().item<float>();
}

std::string Device::ToString() const {
  return is_cuda() ? "cuda:" + std::to_string(index) : "cpu";
}

Result<Device> ParseDevice(std::string_view name) {
  if (name == "cpu") return Device{};
  bool cuda = false;
  try {
    cuda = torch::cuda::is_available();
  } catch (const std::exception&) {
    cuda = false;
  }
  if (name == "auto") {
    return cuda ? Device{Device::Kind::kCuda, 0} : Device{};
  }
  int index = 0;
  if (name == "cuda") {
    index = 0;
  } else if (name.rfind("cuda:", 0) == 0) {
    std::string_view digits = name.substr(5);
    auto [ptr, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec != std::errc() || ptr != digits.data() + digits.size() ||
        digits.empty() || index < 0) {
      return InvalidArgumentError("bad device '" + std::string(name) +
                                  "': use cpu, cuda, cuda:N or auto");
    }
  } else {
    return InvalidArgumentError("unknown device '" + std::string(name) +
                                "': use cpu, cuda, cuda:N or auto");
  }
  if (!cuda) {
    return FailedPreconditionError("device '" + std::string(name) +
                                   "' requested but LibTorch sees no CUDA "
                                   "device; use cpu or auto");
  }
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    return InvalidArgumentError("no CUDA device " + std::to_string(index));
  }
  return Device{Device::Kind::kCuda, index};
}

}  // namespace lethe::core
