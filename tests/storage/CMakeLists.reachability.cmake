# reachability_test: what clients and logs learn when PostgreSQL is
# unreachable, and the backoff of the wait at start (label unit: no server
# needed). Included from tests/storage/CMakeLists.txt.
include(GoogleTest)
find_package(absl CONFIG REQUIRED)
add_executable(reachability_test
  ${CMAKE_CURRENT_LIST_DIR}/reachability_test.cc)
target_link_libraries(reachability_test PRIVATE
  lethe::storage lethe::test_support absl::strings GTest::gtest_main)
lethe_warnings(reachability_test)
gtest_discover_tests(reachability_test PROPERTIES LABELS unit)
