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
