// The backend contract (backend_contract.h) on the in-memory backend, whose
// clock a ManualClock moves.
#include <gtest/gtest.h>

#include "storage/memory/backend.h"
#include "tests/memory/backend_contract.h"

namespace lethe::storage::testing {
namespace {

BackendFactory MemoryFactory() {
  ManualClock clock;
  return BackendFactory{
      "memory",
      [clock] { return NewMemoryBackend(MemoryOptions{clock.AsFunction()}); },
      [clock](std::chrono::microseconds by) mutable { clock.Advance(by); }};
}

INSTANTIATE_TEST_SUITE_P(Memory, BackendContractTest,
                         ::testing::Values(MemoryFactory()),
                         BackendFactoryName);

}  // namespace
}  // namespace lethe::storage::testing
