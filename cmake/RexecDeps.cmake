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
target_compile_definitions(rexec_dep_spdlog INTERFACE SPDLOG_FMT_EXTERNAL FMT_HEADER_ONLY=1)
target_link_libraries(rexec_dep_spdlog INTERFACE Threads::Threads)
add_library(rexec::spdlog ALIAS rexec_dep_spdlog)

# libwebsockets 4.1.6, static, libuv compiled in.
set(REXEC_DEPS_DIR "${PROJECT_SOURCE_DIR}/build/_deps" CACHE PATH
    "Where scripts/build-lws.sh caches the libwebsockets build (shared by all presets)")
set(REXEC_LWS_ROOT "" CACHE PATH "Use an already built libwebsockets install prefix instead")
if(NOT REXEC_LWS_ROOT)
  execute_process(
    COMMAND bash "${PROJECT_SOURCE_DIR}/scripts/build-lws.sh" "${REXEC_DEPS_DIR}"
    OUTPUT_VARIABLE lws_root OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE lws_rc)
  if(NOT lws_rc EQUAL 0)
    message(FATAL_ERROR "building libwebsockets failed (see the message above). Offline? Set "
                        "REXEC_LWS_SOURCE_DIR to an unpacked libwebsockets 4.1.6 tree, or "
                        "REXEC_LWS_ROOT to an install prefix built with LWS_WITH_LIBUV.")
  endif()
else()
  set(lws_root "${REXEC_LWS_ROOT}")
endif()
rexec_check_lws_config("${lws_root}/include/lws_config.h" "${REXEC_STATIC}")
set(lws_library "${lws_root}/lib/libwebsockets.a")
if(NOT EXISTS "${lws_library}")
  message(FATAL_ERROR "libwebsockets: ${lws_library} not found")
endif()
add_library(rexec_dep_lws INTERFACE)
target_include_directories(rexec_dep_lws SYSTEM INTERFACE "${lws_root}/include")
target_link_libraries(rexec_dep_lws INTERFACE ${lws_library} OpenSSL::SSL OpenSSL::Crypto
                                              rexec::uv)
add_library(rexec::lws ALIAS rexec_dep_lws)
message(STATUS "libwebsockets: ${lws_root}")

if(REXEC_BUILD_TESTS)
  find_package(Catch2 2.13 REQUIRED)
  include(Catch)
endif()
