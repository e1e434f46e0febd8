# Trains with --standardize --save and --test, then evaluates the saved model with --load --test
# (with and without --standardize): the test loss must be the training run's, because the
# standardizer's statistics travel in the checkpoint instead of being refitted on the test data.
# A checkpoint without a standardizer and no training data makes --standardize exit 2.
# PROGRAM: warpfuse-train; DIR: a scratch directory holding train.csv and test.csv.
set(common --device cpu --verbose 0 --json)
function(run_json out_var)
  execute_process(COMMAND ${PROGRAM} ${ARGN} ${common} RESULT_VARIABLE code OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "${ARGN}: exit ${code}\n${out}\n${err}")
  endif()
  string(REGEX MATCH "\"test_loss\": [^,]+" loss "${out}")
  if(loss STREQUAL "" OR loss MATCHES "null")
    message(FATAL_ERROR "${ARGN}: no test_loss in\n${out}")
  endif()
  set(${out_var} "${loss}" PARENT_SCOPE)
endfunction()

file(REMOVE ${DIR}/standardized.wfnn ${DIR}/plain.wfnn)
run_json(trained --train ${DIR}/train.csv --test ${DIR}/test.csv --layers 8:tanh,1 --standardize
         --epochs 20 --batch-size 4 --seed 3 --save ${DIR}/standardized.wfnn)
run_json(loaded --load ${DIR}/standardized.wfnn --test ${DIR}/test.csv --standardize)
run_json(loaded_without_flag --load ${DIR}/standardized.wfnn --test ${DIR}/test.csv)
message(STATUS "trained: ${trained}; loaded: ${loaded}; without --standardize: "
               "${loaded_without_flag}")
if(NOT loaded STREQUAL trained OR NOT loaded_without_flag STREQUAL trained)
  message(FATAL_ERROR "the loaded model's test loss differs from the training run's")
endif()

run_json(plain --train ${DIR}/train.csv --test ${DIR}/test.csv --layers 8:tanh,1 --epochs 1
         --save ${DIR}/plain.wfnn)
execute_process(COMMAND ${PROGRAM} --load ${DIR}/plain.wfnn --test ${DIR}/test.csv --standardize
                        ${common}
                RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(STRIP "${err}" err)
if(NOT code EQUAL 2 OR NOT err MATCHES "standardizer")
  message(FATAL_ERROR "expected exit 2 naming the missing standardizer, got ${code}: ${err}")
endif()
message(STATUS "no standardizer: ${err}")
