# SPDX-License-Identifier: MIT
# The house warning set (STYLE.md), as an INTERFACE target linked PRIVATE into our own targets only.
add_library(rexec_warnings INTERFACE)
target_compile_options(rexec_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Woverloaded-virtual -Wnull-dereference -Wformat=2 -Wimplicit-fallthrough
  $<$<CXX_COMPILER_ID:GNU>:-Wduplicated-cond -Wlogical-op>
  # GCC 12 reports false -Wrestrict errors inside std::string at -O3 (GCC bugs 105329, 105651).
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-restrict>
  $<$<BOOL:${REXEC_WERROR}>:-Werror>)
