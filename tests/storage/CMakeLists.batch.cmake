# erasure_batch_test: integration tests of ErasureStore's group commit
# (batched Submit) against a real PostgreSQL. Included from
# tests/storage/CMakeLists.txt.
include(GoogleTest)
find_package(absl CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)
add_executable(erasure_batch_test
  ${CMAKE_CURRENT_LIST_DIR}/erasure_batch_test.cc)
target_link_libraries(erasure_batch_test PRIVATE
  lethe::storage lethe::test_support PkgConfig::PQXX absl::strings
  GTest::gtest_main)
lethe_warnings(erasure_batch_test)
gtest_discover_tests(erasure_batch_test PROPERTIES LABELS integration)
