// Shared by the cert/ suites: a plausible completion record and a bundle
// built on an in-memory log.
#ifndef LETHE_TESTS_CERT_CERT_TEST_UTIL_H_
#define LETHE_TESTS_CERT_CERT_TEST_UTIL_H_

#include <cstdint>
#include <string>

#include "cert/bundle.h"
#include "cert/keys.h"
#include "cert/statement.h"

namespace lethe::testing {

// A record for `request_id` with one model (certified, two metrics).
cert::CompletionRecord SampleRecord(
    const std::string& request_id = "0b7e4c9a-1f2d-4e8b-9a6c-3d5e7f901234");

// Signs `record` with `key`, appends it as leaf `index` of a log of `size`
// leaves (the others are hashes of their index), signs a checkpoint with
// origin "lethe.test/log" and returns the bundle.
cert::Bundle MakeBundle(const cert::CompletionRecord& record,
                        const cert::PrivateKey& key, uint64_t index,
                        uint64_t size);

}  // namespace lethe::testing

#endif  // LETHE_TESTS_CERT_CERT_TEST_UTIL_H_
