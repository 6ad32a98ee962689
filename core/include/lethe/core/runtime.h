// Process-wide runtime set-up: thread pools and the compute device.
//
// On a small machine OpenBLAS's pool and LibTorch's OpenMP pool fight for the
// cores (an epoch of Fashion-MNIST went from ~1.1 s to 3.5-6 s on 2 cores);
// InitRuntime makes waiting threads passive and sizes LibTorch's pools.
#ifndef LETHE_CORE_RUNTIME_H_
#define LETHE_CORE_RUNTIME_H_

#include <string>
#include <string_view>

#include "lethe/core/status.h"

namespace lethe::core {

// Call once, early, before any other core call starts LibTorch's pools.
// threads <= 0 uses std::thread::hardware_concurrency(). Sets
// OMP_WAIT_POLICY=PASSIVE unless the environment already sets it (effective
// only for processes started later: libgomp reads it at load, so callers
// set it before exec, as lethe-worker does), the intra-op
// thread count (LibTorch's and, where the BLAS is OpenBLAS, OpenBLAS's own
// pool), and (once per process) the inter-op count to 1. Safe to call
// again: later calls only change the intra-op and BLAS counts.
void InitRuntime(int threads);

// OpenBLAS's thread count; -1 where the loaded BLAS is not OpenBLAS.
int BlasThreads();

// Starts what LibTorch starts lazily: the intra-op thread pool and the BLAS
// threads (a parallel loop and a matrix product). The engine sandbox calls
// it before its seccomp filter, which forbids the file opens some of these
// do at their first use.
void WarmUpRuntime();

struct Device {
  enum class Kind { kCpu, kCuda };
  Kind kind = Kind::kCpu;
  int index = 0;

  bool is_cuda() const { return kind == Kind::kCuda; }
  std::string ToString() const;  // "cpu" or "cuda:N"
};

// "cpu", "cuda", "cuda:N", or "auto" (the first CUDA device if LibTorch sees
// one, else the CPU). Asking for CUDA where none is available is
// FAILED_PRECONDITION; an unknown name INVALID_ARGUMENT.
Result<Device> ParseDevice(std::string_view name);

}  // namespace lethe::core

#endif  // LETHE_CORE_RUNTIME_H_
