# Runs PROGRAM with ARGS (space-separated) and checks that it exits with code 2 and says why on
# one line of stderr (warpfuse-train's contract for bad arguments and bad data), of at most 500
# characters, matching EXPECT (a regular expression) when given.
separate_arguments(arguments UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${PROGRAM} ${arguments} --device cpu --verbose 0
                RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(STRIP "${err}" err)
if(NOT code EQUAL 2)
  message(FATAL_ERROR "expected exit code 2, got ${code}\nstdout: ${out}\nstderr: ${err}")
endif()
if(err STREQUAL "" OR err MATCHES "\n")
  message(FATAL_ERROR "expected one line on stderr, got:\n${err}")
endif()
string(LENGTH "${err}" length)
if(length GREATER 520)
  message(FATAL_ERROR "the error line has ${length} characters (at most 500 + the prefix)")
endif()
if(DEFINED EXPECT AND NOT EXPECT STREQUAL "" AND NOT err MATCHES "${EXPECT}")
  message(FATAL_ERROR "stderr does not match '${EXPECT}':\n${err}")
endif()
message(STATUS "exit 2: ${err}")
