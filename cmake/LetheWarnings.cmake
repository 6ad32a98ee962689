# lethe_warnings(target): the warning set for lethe's own targets (not for
# generated or third-party code). Abseil's GCC list, trimmed to what GCC 12
# accepts for C++. With LETHE_WERROR (CI) every warning is an error.
option(LETHE_WERROR "Treat warnings in project code as errors" OFF)

function(lethe_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wcast-qual -Wconversion-null -Wformat-security
    -Wmissing-declarations -Woverlength-strings -Wpointer-arith -Wundef
    -Wunused-local-typedefs -Wunused-result -Wvarargs -Wvla -Wwrite-strings
    -Wnon-virtual-dtor -Wno-sign-compare -Wno-missing-field-initializers)
  if(LETHE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
