# SPDX-License-Identifier: MIT
# rexec_check_lws_config(<path to lws_config.h> <static?>): fail at configure time when the
# libwebsockets found cannot serve us (ttyd's check, made stricter for a static binary).
# Also usable as a script: cmake -DLWS_CONFIG_H=... -DREXEC_STATIC=ON -P RexecCheckLws.cmake
function(rexec_check_lws_config config_h static)
  if(NOT EXISTS "${config_h}")
    message(FATAL_ERROR "libwebsockets: ${config_h} not found")
  endif()
  file(STRINGS "${config_h}" lines REGEX "^#define LWS_WITH_(LIBUV|EVLIB_PLUGINS)")
  if(NOT lines MATCHES "LWS_WITH_LIBUV")
    message(FATAL_ERROR "libwebsockets at ${config_h} was built without LWS_WITH_LIBUV; "
                        "rexec needs libuv support compiled in (scripts/build-lws.sh builds it)")
  endif()
  if(static AND lines MATCHES "LWS_WITH_EVLIB_PLUGINS")
    message(FATAL_ERROR "libwebsockets at ${config_h} has LWS_WITH_EVLIB_PLUGINS: its libuv support "
                        "is a runtime plugin that a static binary cannot load")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  rexec_check_lws_config("${LWS_CONFIG_H}" "${REXEC_STATIC}")
  message(STATUS "libwebsockets config ok: ${LWS_CONFIG_H}")
endif()
