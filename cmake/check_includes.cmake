# The trainer's include boundary (DESIGN.md section 1): host/nn uses the library only through its
# public headers, like any user. Fails, naming each file and line, when a file in DIR includes
# anything under one of the FORBIDDEN folders (a semicolon list, default kernels;host/cuda).
#   cmake -DDIR=host/nn -P cmake/check_includes.cmake
if(NOT DIR)
  message(FATAL_ERROR "check_includes: pass -DDIR=<folder>")
endif()
if(NOT FORBIDDEN)
  set(FORBIDDEN "kernels;host/cuda")
endif()
file(GLOB files ${DIR}/*)
if(NOT files)
  message(FATAL_ERROR "check_includes: ${DIR} holds no files")
endif()
list(JOIN FORBIDDEN "|" alternatives)
set(bad "")
foreach(file IN LISTS files)
  file(STRINGS ${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<](${alternatives})/")
  foreach(line IN LISTS lines)
    string(APPEND bad "\n  ${file}: ${line}")
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "check_includes: files in ${DIR} include private headers "
                      "(${FORBIDDEN}); use the public ones in include/warpfuse/:${bad}")
endif()
list(LENGTH files count)
message(STATUS "check_includes: ${count} files in ${DIR} include only public headers")
