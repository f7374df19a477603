# SPDX-License-Identifier: MIT
# Release hardening (STYLE.md): fortify, stack protector, full RELRO. Applied to our targets through
# the rexec_hardening INTERFACE target.
add_library(rexec_hardening INTERFACE)
target_compile_options(rexec_hardening INTERFACE
  -fstack-protector-strong
  $<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>)
target_link_options(rexec_hardening INTERFACE -Wl,-z,relro,-z,now)

# The static agent: position independent (static-pie, so ASLR covers the binary too) with the
# relocations packed (DT_RELR: glibc 2.36, binutils 2.38), and unused sections dropped.
# REXEC_STATIC_LINK_OPTIONS is what rexec-agent links with; -static alone where static-pie does
# not work.
if(REXEC_STATIC)
  include(CheckLinkerFlag)
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
  add_compile_options(-ffunction-sections -fdata-sections)
  check_linker_flag(CXX "-static-pie" REXEC_HAVE_STATIC_PIE)
  check_linker_flag(CXX "-Wl,-z,pack-relative-relocs" REXEC_HAVE_PACKED_RELOCS)
  if(REXEC_HAVE_STATIC_PIE)
    set(REXEC_STATIC_LINK_OPTIONS -static-pie)
  else()
    set(REXEC_STATIC_LINK_OPTIONS -static)
  endif()
  if(REXEC_HAVE_PACKED_RELOCS)
    list(APPEND REXEC_STATIC_LINK_OPTIONS -Wl,-z,pack-relative-relocs)
  endif()
  list(APPEND REXEC_STATIC_LINK_OPTIONS -Wl,--gc-sections)
  message(STATUS "rexec-agent static link: ${REXEC_STATIC_LINK_OPTIONS}")
endif()
