// The libFuzzer entry point every target in tests/fuzz defines (and
// replay_main.cc calls when libFuzzer is not linked).
#ifndef LETHE_TESTS_FUZZ_FUZZ_TARGET_H_
#define LETHE_TESTS_FUZZ_FUZZ_TARGET_H_

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#endif  // LETHE_TESTS_FUZZ_FUZZ_TARGET_H_
