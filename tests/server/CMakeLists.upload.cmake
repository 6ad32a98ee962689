# upload_parser_test: unit tests of lethe::upload (CSV, IDX, gzip), among
# them a parse of the real Fashion-MNIST files (package
# dataset-fashion-mnist). Included from tests/server/CMakeLists.txt.
include(GoogleTest)
find_package(absl CONFIG REQUIRED)
find_package(ZLIB REQUIRED)
set(LETHE_FASHION_MNIST_DIR /usr/share/datasets/fashion-mnist CACHE PATH
    "Folder with Fashion-MNIST's *-idx?-ubyte.gz files")
add_executable(upload_parser_test ${CMAKE_CURRENT_LIST_DIR}/upload_parser_test.cc)
target_link_libraries(upload_parser_test PRIVATE
  lethe::upload absl::strings ZLIB::ZLIB GTest::gtest_main)
target_compile_definitions(upload_parser_test PRIVATE
  LETHE_FASHION_MNIST_DIR="${LETHE_FASHION_MNIST_DIR}")
lethe_warnings(upload_parser_test)
gtest_discover_tests(upload_parser_test PROPERTIES LABELS unit)
