// Shared helpers for the core tests: Fashion-MNIST subsets and small recipes.
#ifndef LETHE_TESTS_CORE_TEST_UTIL_H_
#define LETHE_TESTS_CORE_TEST_UTIL_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/recipe.h"

namespace lethe::core::testing {

std::string FashionDir();

struct SubsetOptions {
  int64_t train = 2000;
  int64_t test = 1000;
  int64_t block = 20;  // records per subject ("train-<b>")
  bool pool2 = false;  // 2x2 average pooling -> float32 [196] features
  // Train subjects whose stored labels become (y + 1) mod 10 (poisoned data).
  std::set<std::string> poisoned;
  // Train subjects left out entirely.
  std::set<std::string> excluded;
};

// The first `train` / `test` Fashion-MNIST images. Aborts the test binary if
// the files are missing.
Dataset FashionSubset(const SubsetOptions& options);

// "train-<first>", ..., "train-<first + count - 1>".
std::vector<std::string> TrainSubjects(int first, int count);

Architecture SmallMlp(std::vector<int64_t> input_shape = {1, 28, 28},
                      std::vector<int64_t> hidden = {64});
Recipe QuickRecipe(int epochs, uint64_t seed = 1);

// A scratch directory, removed at exit.
std::string TempDir();

}  // namespace lethe::core::testing

#endif  // LETHE_TESTS_CORE_TEST_UTIL_H_
