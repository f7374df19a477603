# SPDX-License-Identifier: MIT
# Release hardening (STYLE.md): fortify, stack protector, full RELRO. Applied to our targets through
# the rexec_hardening INTERFACE target.
add_library(rexec_hardening INTERFACE)
target_compile_options(rexec_hardening INTERFACE
  -fstack-protector-strong
  $<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>)
target_link_options(rexec_hardening INTERFACE -Wl,-z,relro,-z,now)
