# SPDX-License-Identifier: MIT
# Third-party dependencies as rexec::<name> targets. Debian packages, except libwebsockets, which
# scripts/build-lws.sh builds from Debian's source package (see that script for why).
include(${CMAKE_CURRENT_LIST_DIR}/RexecCheckLws.cmake)

find_package(Threads REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
if(REXEC_STATIC)
  set(OPENSSL_USE_STATIC_LIBS TRUE)
endif()
find_package(OpenSSL 3 REQUIRED)

# libuv: Debian ships both libuv.so and libuv_a.a.
if(REXEC_STATIC)
  find_library(REXEC_UV_LIBRARY NAMES libuv_a.a libuv.a REQUIRED)
else()
  find_library(REXEC_UV_LIBRARY NAMES uv REQUIRED)
endif()
find_path(REXEC_UV_INCLUDE_DIR uv.h REQUIRED)
add_library(rexec_dep_uv INTERFACE)
target_include_directories(rexec_dep_uv SYSTEM INTERFACE ${REXEC_UV_INCLUDE_DIR})
target_link_libraries(rexec_dep_uv INTERFACE ${REXEC_UV_LIBRARY} Threads::Threads ${CMAKE_DL_LIBS})
add_library(rexec::uv ALIAS rexec_dep_uv)

# spdlog in header-only mode with fmt header-only too: nothing to link, so the static binary
# carries only what it uses. Debian's spdlog::spdlog_header_only still links libfmt.so.
find_path(REXEC_SPDLOG_INCLUDE_DIR spdlog/spdlog.h REQUIRED)
add_library(rexec_dep_spdlog INTERFACE)
target_include_directories(rexec_dep_spdlog SYSTEM INTERFACE ${REXEC_SPDLOG_INCLUDE_DIR})
# FMT_STATIC_THOUSANDS_SEPARATOR: fmt's "{:L}" uses a fixed ',' instead of asking std::locale,
# so no std::locale (and with it libstdc++'s locale machinery, ~0.4 MB) reaches the static agent.
# One definition for every target, since fmt is header-only (one rule for all of them).
target_compile_definitions(rexec_dep_spdlog INTERFACE SPDLOG_FMT_EXTERNAL FMT_HEADER_ONLY=1
                                                      FMT_STATIC_THOUSANDS_SEPARATOR=',')
target_link_libraries(rexec_dep_spdlog INTERFACE Threads::Threads)
add_library(rexec::spdlog ALIAS rexec_dep_spdlog)

# libwebsockets 4.1.6, static, libuv compiled in: rexec::lws, on the system's OpenSSL.
set(REXEC_DEPS_DIR "${PROJECT_SOURCE_DIR}/build/_deps" CACHE PATH
    "Where scripts/build-lws.sh and build-openssl.sh cache their builds (shared by all presets)")
set(REXEC_LWS_ROOT "" CACHE PATH "Use an already built libwebsockets install prefix instead")

# rexec_build_dep(<out var> <script> <args>...): runs scripts/<script> at configure time and
# gives the install prefix it prints.
function(rexec_build_dep out script)
  execute_process(
    COMMAND bash "${PROJECT_SOURCE_DIR}/scripts/${script}" ${ARGN}
    OUTPUT_VARIABLE prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "scripts/${script} failed (see the message above). Offline? Set "
                        "REXEC_LWS_SOURCE_DIR / REXEC_OPENSSL_SOURCE_DIR to unpacked sources.")
  endif()
  set(${out} "${prefix}" PARENT_SCOPE)
endfunction()

# The scripts stamp their builds with their options and our patches: a changed script or patch
# reconfigures the next build, which rebuilds the library.
file(GLOB rexec_dep_inputs "${PROJECT_SOURCE_DIR}/scripts/lws-patches/*.patch")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${rexec_dep_inputs}
             "${PROJECT_SOURCE_DIR}/scripts/build-lws.sh"
             "${PROJECT_SOURCE_DIR}/scripts/build-openssl.sh")

# rexec_add_lws(<target> <install prefix> <OpenSSL targets or files>...)
function(rexec_add_lws target root)
  rexec_check_lws_config("${root}/include/lws_config.h" "${REXEC_STATIC}")
  if(NOT EXISTS "${root}/lib/libwebsockets.a")
    message(FATAL_ERROR "libwebsockets: ${root}/lib/libwebsockets.a not found")
  endif()
  add_library(${target} INTERFACE)
  target_include_directories(${target} SYSTEM INTERFACE "${root}/include")
  target_link_libraries(${target} INTERFACE "${root}/lib/libwebsockets.a" ${ARGN} rexec::uv)
  message(STATUS "libwebsockets (${target}): ${root}")
endfunction()

if(REXEC_LWS_ROOT)
  set(lws_root "${REXEC_LWS_ROOT}")
else()
  rexec_build_dep(lws_root build-lws.sh "${REXEC_DEPS_DIR}")
endif()
rexec_add_lws(rexec_dep_lws "${lws_root}" OpenSSL::SSL OpenSSL::Crypto)
add_library(rexec::lws ALIAS rexec_dep_lws)

# The static agent's TLS: an OpenSSL with only what a TLS client uses (scripts/build-openssl.sh)
# and a libwebsockets built on it, as rexec::lws_agent. The agent's net and core libraries are
# compiled a second time against them (net/, agent/), so nothing else in the build meets this
# OpenSSL: the server keeps the system's.
if(REXEC_STATIC)
  rexec_build_dep(openssl_agent build-openssl.sh "${REXEC_DEPS_DIR}")
  rexec_build_dep(lws_agent_root build-lws.sh "${REXEC_DEPS_DIR}" "${openssl_agent}")
  rexec_add_lws(rexec_dep_lws_agent "${lws_agent_root}"
                "${openssl_agent}/lib/libssl.a" "${openssl_agent}/lib/libcrypto.a")
  target_include_directories(rexec_dep_lws_agent SYSTEM INTERFACE "${openssl_agent}/include")
  add_library(rexec::lws_agent ALIAS rexec_dep_lws_agent)
  message(STATUS "OpenSSL for the static agent: ${openssl_agent}")
endif()

if(REXEC_BUILD_TESTS)
  find_package(Catch2 2.13 REQUIRED)
  include(Catch)
endif()
