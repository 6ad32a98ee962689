// The storage seam's contract as a parameterised GoogleTest suite: what
// every Backend (storage/backend.h) must do, exercised through the
// interfaces only. memory_backend_test.cc instantiates it for the
// in-memory backend, tests/storage/postgres_backend_test.cc for PostgreSQL
// (a fresh, migrated database per test).
//
// To instantiate:
//   INSTANTIATE_TEST_SUITE_P(Postgres, BackendContractTest,
//       ::testing::Values(BackendFactory{"postgres", make, advance}),
//       BackendFactoryName);
// and compile backend_contract.cc into the same test binary (its TEST_Ps
// register themselves at start-up, so it must not sit in a static library
// that the linker may drop).
#ifndef LETHE_TESTS_MEMORY_BACKEND_CONTRACT_H_
#define LETHE_TESTS_MEMORY_BACKEND_CONTRACT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "storage/backend.h"

namespace lethe::storage::testing {

struct BackendFactory {
  std::string name;  // the instantiation's name, [A-Za-z0-9_]
  // A backend over empty storage. Called once per test.
  std::function<std::unique_ptr<Backend>()> make;
  // Moves the clock of the backends `make` returns (a real database moves
  // its stored deadlines and creation times back instead). Required: the
  // lease tests fail without it.
  std::function<void(std::chrono::microseconds)> advance;
};

inline std::string BackendFactoryName(
    const ::testing::TestParamInfo<BackendFactory>& info) {
  return info.param.name;
}

inline void PrintTo(const BackendFactory& f, std::ostream* os) {
  *os << f.name;
}

// Each test gets a fresh backend and a work queue (owner "worker-1",
// 60 s leases, retries due at once) and builds its data through the
// stores: datasets of subjects with two training and one test record
// each, and models made READY by a validation job.
class BackendContractTest : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override;

  bool CanAdvance() const { return static_cast<bool>(GetParam().advance); }
  void Advance(std::chrono::microseconds by) { GetParam().advance(by); }
  QueueOptions Options(const std::string& owner) const;

  // A 32-byte subject key.
  static std::string Subject(int n);
  // A dataset holding `subjects`; returns its id.
  std::string MakeDataset(const std::string& name,
                          const std::vector<int>& subjects);
  // A model on `dataset_id`, validated by a job of queue_; returns its id.
  std::string MakeReadyModel(const std::string& name,
                             const std::string& dataset_id,
                             const std::string& policy_json = "{}");
  // An unscoped request (`scope` empty) for `subject` under `key`.
  static SubmitParams Params(int subject, const std::string& key,
                             const std::vector<std::string>& scope = {});
  // The subject keys of the records `model_id` may train on.
  std::set<std::string> TrainingSubjects(const std::string& model_id);

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<WorkQueue> queue_;
};

}  // namespace lethe::storage::testing

#endif  // LETHE_TESTS_MEMORY_BACKEND_CONTRACT_H_
