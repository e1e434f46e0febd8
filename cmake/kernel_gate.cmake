# warpfuse — the kernel gate: scripts/kernel-report reads the sm_90 machine code of every kernel of
# the library after each build (build/kernel_report.json), the emulator's occupancy model reads that
# report, and ctest's kernel_gate applies the rules against tests/kernel_gate_allowlist.txt.
#
# WARPFUSE_KERNEL_GATE (ON by default) needs sm_90 among CMAKE_CUDA_ARCHITECTURES and cuobjdump +
# nvdisasm (scripts/install-deps puts the pinned PyPI wheels in .venv; or WARPFUSE_CUOBJDUMP).
# Without them the gate is skipped with a warning, unless WARPFUSE_KERNEL_GATE_REQUIRED is ON
# (scripts/test sets it, so CI cannot silently lose the gate).
option(WARPFUSE_KERNEL_GATE "Report and gate the sm_90 machine code of every kernel" ON)
option(WARPFUSE_KERNEL_GATE_REQUIRED "Fail configuration when the kernel gate cannot run" OFF)
set(WARPFUSE_KERNEL_REPORT "")

function(warpfuse_kernel_gate_unavailable reason)
  if(WARPFUSE_KERNEL_GATE_REQUIRED)
    message(FATAL_ERROR "warpfuse kernel gate: ${reason}")
  endif()
  message(WARNING "warpfuse kernel gate skipped: ${reason}")
endfunction()

if(WARPFUSE_KERNEL_GATE AND WARPFUSE_ENABLE_CUDA)
  set(has_sm90 FALSE)
  foreach(arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
    if(arch MATCHES "^90(-real)?$" OR arch STREQUAL "all" OR arch STREQUAL "all-major")
      set(has_sm90 TRUE)
    endif()
  endforeach()
  find_package(Python3 COMPONENTS Interpreter)
  file(GLOB venv_cuobjdump
       ${PROJECT_SOURCE_DIR}/.venv/lib/python3*/site-packages/nvidia/cu*/bin/cuobjdump)
  find_program(WARPFUSE_CUOBJDUMP NAMES cuobjdump HINTS ${venv_cuobjdump} ENV PATH
               DOC "cuobjdump for the kernel report")
  if(venv_cuobjdump AND NOT WARPFUSE_CUOBJDUMP)
    list(GET venv_cuobjdump 0 WARPFUSE_CUOBJDUMP)
  endif()
  if(NOT has_sm90)
    warpfuse_kernel_gate_unavailable(
      "CMAKE_CUDA_ARCHITECTURES (${CMAKE_CUDA_ARCHITECTURES}) has no sm_90 machine code")
  elseif(NOT Python3_Interpreter_FOUND)
    warpfuse_kernel_gate_unavailable("no python3")
  elseif(NOT venv_cuobjdump AND NOT WARPFUSE_CUOBJDUMP)
    warpfuse_kernel_gate_unavailable("no cuobjdump: run scripts/install-deps")
  else()
    if(venv_cuobjdump)
      list(GET venv_cuobjdump 0 cuobjdump)
    else()
      set(cuobjdump ${WARPFUSE_CUOBJDUMP})
    endif()
    set(WARPFUSE_KERNEL_REPORT ${PROJECT_BINARY_DIR}/kernel_report.json)
    add_custom_command(
      OUTPUT ${WARPFUSE_KERNEL_REPORT}
      COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/kernel-report
              --build ${PROJECT_BINARY_DIR} --json ${WARPFUSE_KERNEL_REPORT}
              --cuobjdump ${cuobjdump} --quiet
      DEPENDS warpfuse ${PROJECT_SOURCE_DIR}/scripts/kernel-report
      COMMENT "Reading the sm_90 machine code of every kernel (build/kernel_report.json)"
      VERBATIM)
    add_custom_target(kernel_report ALL DEPENDS ${WARPFUSE_KERNEL_REPORT})
    set(WARPFUSE_KERNEL_GATE_CUOBJDUMP ${cuobjdump})
  endif()
endif()
