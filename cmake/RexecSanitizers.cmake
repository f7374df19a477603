# SPDX-License-Identifier: MIT
# REXEC_SANITIZE: "" | "address,undefined" | "thread". Applied to every target in the tree because
# sanitizers need the whole program instrumented; third-party static archives are not rebuilt.
set(REXEC_SANITIZE "" CACHE STRING "Sanitizers: empty, address,undefined or thread")
if(REXEC_SANITIZE)
  if(REXEC_STATIC)
    message(FATAL_ERROR "REXEC_SANITIZE cannot be combined with REXEC_STATIC")
  endif()
  add_compile_options(-fsanitize=${REXEC_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${REXEC_SANITIZE})
endif()

# Fuzzing (clang): every library gets libFuzzer's coverage instrumentation; only the fuzz targets
# link libFuzzer itself (tests/fuzz).
if(REXEC_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "REXEC_BUILD_FUZZERS needs clang (the fuzz preset sets it)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
