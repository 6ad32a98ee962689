# LETHE_SANITIZE: instrument every target of the tree with clang's
# sanitizers, e.g. -DLETHE_SANITIZE=address,undefined or =thread (with
# -DCMAKE_CXX_COMPILER=clang++-14). scripts/sanitize.sh configures it with
# LETHE_BUILD_ENGINE=OFF: LibTorch is not instrumented, and the suites that
# need it are left out. Any report aborts the process (no recovery), so a
# finding fails its test.
set(LETHE_SANITIZE "" CACHE STRING
  "Sanitizers for every target (clang): address,undefined or thread")
if(LETHE_SANITIZE)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "LETHE_SANITIZE needs clang (-DCMAKE_CXX_COMPILER=clang++-14)")
  endif()
  add_compile_options(-fsanitize=${LETHE_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${LETHE_SANITIZE})
endif()

# LETHE_FUZZ: tests/fuzz's targets link libFuzzer, and every target is
# compiled with its coverage instrumentation (clang; scripts/sanitize.sh
# turns it on with AddressSanitizer). Off: the targets replay their corpus.
option(LETHE_FUZZ "Build tests/fuzz with libFuzzer (clang)" OFF)
if(LETHE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "LETHE_FUZZ needs clang (-DCMAKE_CXX_COMPILER=clang++-14)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
