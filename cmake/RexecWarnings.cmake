# SPDX-License-Identifier: MIT
# The house warning set (STYLE.md), as an INTERFACE target linked PRIVATE into our own targets only.
add_library(rexec_warnings INTERFACE)
target_compile_options(rexec_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Woverloaded-virtual -Wnull-dereference -Wformat=2 -Wimplicit-fallthrough
  $<$<CXX_COMPILER_ID:GNU>:-Wduplicated-cond -Wlogical-op>
  $<$<BOOL:${REXEC_WERROR}>:-Werror>)
