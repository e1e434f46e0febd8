#!/usr/bin/env bash
# warpfuse — the one script to run on a machine with an NVIDIA GPU. Within about 8 minutes it:
#   1. configures and builds the GPU tests and every benchmark for this GPU's architecture
#      (CMAKE_CUDA_ARCHITECTURES=native) in build-gpu/,
#   2. runs the GPU test binary (build-gpu/bin/warpfuse_gpu_tests),
#   3. runs compute-sanitizer memcheck, racecheck and synccheck on a reduced test subset,
#   2b. runs scripts/kernel-report (and its gate, informative) on the GPU build's sm_90 code,
#   4. runs every benchmark (build-gpu/bin/*_bench: softmax, activation, loss, linear_cross_entropy,
#      optimizer, trainer) in quick mode, writing JSON each and a PNG plot of the row-length sweeps
#      (softmax, loss),
#   4a. runs the rows x cols sweep of the long-row ops (softmax_bench and loss_bench --rows-sweep:
#      cluster vs online vs automatic, bf16, 16384..262144 columns x 1..16384 rows),
#   4b. runs ncu on one case per kernel family when ncu works (DRAM throughput, occupancy),
#   5. times PyTorch on the same shapes (bench/compare_torch.py) and trains the trainer bench's
#      network in PyTorch eager (bench/trainer_torch.py --no-compile); both skipped without torch,
#   6. copies the summary, the log, the JSON and the PNGs to $OUT when it is set (8 files at most),
# and prints a summary table last. Exits 0 when the tests passed, the sanitizers found nothing and
# every benchmark case passed its correctness check; 1 otherwise.
#
# Environment (all optional):
#   WARPFUSE_GPU_BUILD_DIR     build folder (default build-gpu)
#   WARPFUSE_GPU_ARCH          CMAKE_CUDA_ARCHITECTURES (default native: the GPU present)
#   WARPFUSE_GPU_CHECK_SECONDS the time budget; later stages get what is left (default 450)
#   WARPFUSE_SANITIZER_FILTER  gtest filter of the sanitizer runs (default: below)
#   WARPFUSE_BENCH_ARGS        extra flags for every bench binary (default --quick)
#   WARPFUSE_CUDNN_ROOT        cuDNN's root when not in the CUDA toolkit (default: the pip package
#                              nvidia-cudnn-*, if python3 has it)
#   WARPFUSE_CUOBJDUMP         cuobjdump for the kernel report (bench/gpu_prepare carries one)
#   WARPFUSE_DEPS_DEBS         a folder of Debian packages (.deb) to unpack into the build folder and
#                              build against, for a machine that lacks Google Benchmark, GoogleTest or
#                              Boost.Context and has no package manager access
#   OUT                        where to copy the results
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
build=${WARPFUSE_GPU_BUILD_DIR:-build-gpu}
arch=${WARPFUSE_GPU_ARCH:-native}
budget=${WARPFUSE_GPU_CHECK_SECONDS:-450}
# Small tests of each op family's kernels: softmax, activations (bias forward with pre, the fused
# backward with its column sums, special values) and cross-entropy (options and layouts, bad
# targets, extreme logits); the wide-row sweeps are left to the plain GPU test run.
sanitizer_filter=${WARPFUSE_SANITIZER_FILTER:-'Softmax/*.AutomaticStrategy:Softmax/*.SpecialValues:SoftmaxOnline.*:WarpReduce.*:BlockReduce.*:ActivationMatrix/*.BiasForwardWithAndWithoutPre:ActivationMatrix/*.FusedBackwardDxDbiasDslope:ActivationArray/*.SpecialValues:CrossEntropy/*.OptionsReductionsAndLayouts:CrossEntropyEdges.BadTargetsAreCountedReportedAndHarmless:CrossEntropyEdges.InfinitiesAndHugeLogits'}
read -r -a bench_args <<<"${WARPFUSE_BENCH_ARGS:---quick}"
work=$build/gpu_check
log=$work/gpu_check.log
summary=$work/summary.txt
start=$SECONDS
failed=0

mkdir -p "$work"
rm -f "$work"/*.json "$work"/*.png "$work"/*.log "$work"/*.txt
export PATH=/usr/local/cuda/bin:$PATH

say() { echo "$*" | tee -a "$log"; }
elapsed() { echo $((SECONDS - start)); }
# Seconds a stage may take: its cap, or what is left of the budget less `reserve`, at least 10.
limit() {
  local cap=$1 reserve=${2:-20} left
  left=$((budget - (SECONDS - start) - reserve))
  if [ "$left" -lt "$cap" ]; then cap=$left; fi
  if [ "$cap" -lt 10 ]; then cap=10; fi
  echo "$cap"
}
# run_logged LOGFILE SECONDS COMMAND...: runs COMMAND under a time limit, its output into LOGFILE and
# appended to the main log; returns its status (124 when it ran out of time).
run_logged() {
  local file=$1 seconds=$2 status
  shift 2
  timeout --kill-after=10 "$seconds" "$@" >"$file" 2>&1
  status=$?
  { echo "----- $* (exit $status)"; cat "$file"; } >>"$log"
  return "$status"
}
# A python3 that can import module $1 (python3 on PATH first, then the system's), or nothing.
python_with() {
  local candidate
  for candidate in python3 /usr/bin/python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import $1" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}
# "P passed, F failed, S skipped" from a gtest log (F = ran - passed - skipped: --gtest_brief
# prints no failure count), or "did not finish" when the run has no closing line (crash, timeout).
gtest_result() {
  local ran passed skipped
  ran=$(sed -n 's/^\[==========\] \([0-9]*\) tests\{0,1\} from .* ran\..*/\1/p' "$1" | tail -n 1)
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -n 1)
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$1" | tail -n 1)
  if [ -z "$ran" ]; then
    echo "did not finish"
  else
    echo "${passed:-0} passed, $((ran - ${passed:-0} - ${skipped:-0})) failed, ${skipped:-0} skipped"
  fi
}

say "=== warpfuse gpu_check: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
say "GPU: ${gpu:-nvidia-smi found no GPU}; nvcc: $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"

# --- 0. dependencies ------------------------------------------------------------------------------
declare -a cmake_args=()
if [ -n "${WARPFUSE_DEPS_DEBS:-}" ]; then
  deps=$root/$build/deps
  mkdir -p "$deps"
  for deb in "$WARPFUSE_DEPS_DEBS"/*.deb; do
    [ -e "$deb" ] || continue
    if command -v dpkg >/dev/null 2>&1; then
      dpkg -x "$deb" "$deps"
    else
      # No dpkg: a .deb is an ar archive whose data.tar.* holds the files.
      python3 - "$deb" "$deps" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not a .deb"
at = 8
while at < len(data):
    name = data[at:at + 16].decode().strip().rstrip("/")
    size = int(data[at + 48:at + 58].decode().strip())
    body = data[at + 60:at + 60 + size]
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
    at += 60 + size + (size % 2)
PY
    fi
  done
  export CMAKE_PREFIX_PATH="$deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # Debian points libopenblas.so at openblas-pthread/ through the alternatives system, which
  # unpacking does not run: name the library for FindBLAS and the loader.
  openblas=$deps/usr/lib/x86_64-linux-gnu/openblas-pthread
  if [ -e "$openblas/libopenblas.so" ]; then
    cmake_args+=("-DBLAS_LIBRARIES=$openblas/libopenblas.so")
    export LD_LIBRARY_PATH="$openblas:$LD_LIBRARY_PATH"
  fi
  say "unpacked $(find "$WARPFUSE_DEPS_DEBS" -maxdepth 1 -name '*.deb' | wc -l) packages into $deps"
fi
cudnn_root=${WARPFUSE_CUDNN_ROOT:-}
if [ -z "$cudnn_root" ] && torch_python=$(python_with nvidia.cudnn); then
  cudnn_root=$("$torch_python" -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null)
fi
if [ -n "$cudnn_root" ]; then
  cmake_args+=("-DWARPFUSE_CUDNN_ROOT=$cudnn_root")
  export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
missing=""
for tool in cmake ninja nvcc; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
[ -n "$missing" ] && say "missing tools:$missing (the build will fail)"

# --- 1. configure and build -------------------------------------------------------------------------
build_result="failed"
if run_logged "$work/configure.log" "$(limit 120)" cmake -S . -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" -DWARPFUSE_BUILD_TESTS=ON \
  -DWARPFUSE_BUILD_BENCH=ON -DWARPFUSE_BUILD_EXAMPLES=OFF "${cmake_args[@]}"; then
  if run_logged "$work/build.log" "$(limit 330 60)" cmake --build "$build" -j "$(nproc)" \
    --target warpfuse_gpu_tests warpfuse_benches; then
    build_result="ok ($(elapsed) s, CUDA architectures $arch)"
  else
    tail -n 30 "$work/build.log"
  fi
else
  tail -n 30 "$work/configure.log"
  say "configure failed: Google Benchmark (libbenchmark-dev), GoogleTest (libgtest-dev, libgmock-dev) and"
  say "Boost.Context (libboost-context-dev) must be installed, or given as .deb files in WARPFUSE_DEPS_DEBS"
fi
[ "$build_result" = "failed" ] && failed=1
say "build: $build_result"

# --- 2. GPU tests -----------------------------------------------------------------------------------
tests_result="not run"
if [ -x "$build/bin/warpfuse_gpu_tests" ]; then
  run_logged "$work/tests.log" "$(limit 120 150)" "$build/bin/warpfuse_gpu_tests" --gtest_brief=1
  status=$?
  tests_result="$(gtest_result "$work/tests.log") (exit $status)"
  [ "$status" -ne 0 ] && failed=1
  grep -E '^\[  FAILED  \] [A-Za-z]' "$work/tests.log" | sort -u | head -n 20 | tee -a "$log"
fi
say "gpu tests: $tests_result"

# --- 2b. the kernel report of this build (scripts/kernel-report: registers, occupancy, 128-bit
# accesses of the sm_90 code this GPU runs) and the gate against the checked-in allowlist. The gate
# is informative here: this machine's nvcc may allocate registers differently from CI's, whose
# toolchain the allowlist is written for.
report_result="not run"
if [ -d "$build/CMakeFiles/warpfuse.dir" ]; then
  report_args=(--build "$build" --json "$work/kernel_report.json")
  [ -n "${WARPFUSE_CUOBJDUMP:-}" ] && report_args+=(--cuobjdump "$WARPFUSE_CUOBJDUMP")
  if run_logged "$work/kernel_report.txt" "$(limit 60 140)" python3 scripts/kernel-report \
    "${report_args[@]}" --gate tests/kernel_gate_allowlist.txt; then
    report_result="gate passed; $(grep -m1 -o '[0-9]* kernels' "$work/kernel_report.txt")"
  else
    report_result="$(grep -m1 'kernel-report:' "$work/kernel_report.txt" | tail -c 160) (see log)"
  fi
  grep -E '^  (rule failures|allowlisted|vector-path)' "$work/kernel_report.txt" | tee -a "$log"
fi
say "kernel report: $report_result"

# --- 3. compute-sanitizer on a subset ------------------------------------------------------------
sanitizer=$(command -v compute-sanitizer || true)
for candidate in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  if [ -z "$sanitizer" ] && [ -x "$candidate" ]; then sanitizer=$candidate; fi
done
declare -A sanitizer_result=()
for tool in memcheck racecheck synccheck; do
  if [ -z "$sanitizer" ]; then
    sanitizer_result[$tool]="not run: compute-sanitizer not found"
    continue
  elif [ ! -x "$build/bin/warpfuse_gpu_tests" ]; then
    sanitizer_result[$tool]="not run: no test binary"
    continue
  fi
  case $tool in memcheck) cap=60 ;; racecheck) cap=90 ;; *) cap=60 ;; esac
  run_logged "$work/$tool.log" "$(limit "$cap" 130)" "$sanitizer" --tool "$tool" \
    "$build/bin/warpfuse_gpu_tests" --gtest_brief=1 --gtest_filter="$sanitizer_filter"
  status=$?
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$work/$tool.log" | tail -n 1)
  if [ -z "$errors" ]; then
    errors=$(sed -n 's/.*RACECHECK SUMMARY:.*(\([0-9]*\) error.*/\1/p' "$work/$tool.log" | tail -n 1)
  fi
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    sanitizer_result[$tool]="timed out (${errors:-?} errors so far)"
  else
    sanitizer_result[$tool]="${errors:-?} errors; tests: $(gtest_result "$work/$tool.log") (exit $status)"
  fi
  if [ "${errors:-1}" != "0" ] || [ "$status" -ne 0 ]; then failed=1; fi
  say "$tool: ${sanitizer_result[$tool]}"
done

# --- 4. benchmarks ---------------------------------------------------------------------------------
declare -a bench_lines=() jsons=()
trainer_json=""
# run_bench NAME BINARY CAP [FLAGS...]: runs a bench binary in quick mode with FLAGS under a time
# limit, its JSON into $work/NAME.json (added to jsons), and records its line for the summary.
run_bench() {
  local name=$1 binary=$2 cap=$3 bench_start=$SECONDS status cases bad line
  shift 3
  run_logged "$work/$name.txt" "$(limit "$cap" 90)" "$binary" "${bench_args[@]}" "$@" \
    --benchmark_out="$work/$name.json" --benchmark_out_format=json
  status=$?
  cases=$(grep -c '^[a-z0-9_]*/.*/manual_time' "$work/$name.txt")
  bad=$(sed -n 's/^\([0-9]*\) case(s) FAILED:.*/\1/p' "$work/$name.txt" | tail -n 1)
  line="$name: $cases cases, ${bad:-0} failed, $((SECONDS - bench_start)) s (exit $status)"
  if grep -q 'no CUDA device present' "$work/$name.txt"; then line="$name: no CUDA device present"; fi
  [ "$status" -ne 0 ] && failed=1
  bench_lines+=("$line")
  [ -s "$work/$name.json" ] && jsons+=("$work/$name.json")
  say "$line"
}
for bench in "$build"/bin/*_bench; do
  [ -x "$bench" ] || continue
  name=$(basename "$bench")
  # Quick mode: softmax ~700 cases, activation ~170, loss ~100, trainer 7 batch sizes x 6 epochs.
  run_bench "$name" "$bench" 150
  [ "$name" = trainer_bench ] && trainer_json=$work/$name.json
done

# --- 4a. the rows x cols sweep of the long-row ops (--rows-sweep: bf16, 16384..262144 columns x
# 1..16384 rows, cluster vs online vs automatic; softmax, softmax_backward, cross_entropy in place).
# Its JSON joins the others: compare_torch.py times torch on the automatic cases' shapes and
# summary.py prints the rows x cols tables and the cluster goals (131072 x 8192, 262144 x 4096).
for bench in softmax_bench loss_bench; do
  [ -x "$build/bin/$bench" ] && run_bench "${bench%_bench}_rows_sweep" "$build/bin/$bench" 90 --rows-sweep
done

# --- 4b. ncu on one case per kernel family, when ncu works here (performance counters may be
# off-limits to this user): achieved DRAM throughput (% of peak) and achieved occupancy (active
# warps, % of the SM's 64), next to what the kernel report predicts.
ncu_result="not run: ncu not found"
ncu=$(command -v ncu || true)
[ -z "$ncu" ] && [ -x /usr/local/cuda/bin/ncu ] && ncu=/usr/local/cuda/bin/ncu
declare -a ncu_lines=()
if [ -n "$ncu" ]; then
  ncu_result="ran"
  # bench binary | case filter | kernel name regex
  ncu_cases=(
    "softmax_bench|^softmax/bf16/warp/1024/|softmax_warp_kernel"
    "softmax_bench|^softmax/bf16/block/16384/|softmax_block_kernel"
    "softmax_bench|^softmax/f32/online/65536/|softmax_online_kernel"
    "softmax_bench|^softmax/bf16/cluster/131072/|row_cluster_kernel"
    "loss_bench|^cross_entropy/bf16/cluster/131072/|row_cluster_kernel"
    "softmax_bench|^softmax_backward/bf16/warp/1024/|softmax_backward_warp_kernel"
    "activation_bench|^gelu_forward/bf16/automatic/65536/|activation_forward_flat_kernel"
    "activation_bench|^gelu_bias_backward/bf16/automatic/2048/|activation_backward_tiled_kernel"
    "loss_bench|^cross_entropy/bf16/automatic/32000/|cross_entropy_(warp|block|online)_kernel"
    "loss_bench|^mse_loss/f32/automatic/2048/|elementwise_loss_(warp|block)_kernel"
  )
  for entry in "${ncu_cases[@]}"; do
    IFS='|' read -r bench filter kernel <<<"$entry"
    [ -x "$build/bin/$bench" ] || continue
    [ "$(limit 40 60)" -le 10 ] && { ncu_lines+=("$kernel: skipped (time budget)"); continue; }
    file=$work/ncu_${kernel//[^a-z_]/}.csv
    run_logged "$file" "$(limit 40 60)" "$ncu" --csv --page raw --launch-skip 2 --launch-count 1 \
      --kernel-name "regex:$kernel" --metrics \
      dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__block_size,launch__grid_size \
      "$build/bin/$bench" --quick --repeats=3 --warmup=2 --benchmark_filter="$filter"
    status=$?
    line=$(python3 - "$file" <<'PY' 2>/dev/null
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 5]
head = next((r for r in rows if "Kernel Name" in r), None)
data = [r for r in rows if head and len(r) == len(head) and r is not head and r[0].isdigit()]
if not head or not data:
    sys.exit(1)
row = dict(zip(head, data[-1]))
def get(key):
    return row.get(key, "?").replace(",", "")
print(f"DRAM {get('dram__throughput.avg.pct_of_peak_sustained_elapsed')}% of peak, active warps "
      f"{get('sm__warps_active.avg.pct_of_peak_sustained_active')}% of 64, "
      f"{get('launch__registers_per_thread')} registers, block {get('launch__block_size')}, "
      f"grid {get('launch__grid_size')}")
PY
    )
    if [ -z "$line" ]; then
      line="no result (exit $status): $(grep -m1 -iE 'ERR_NVGPUCTRPERM|error' "$file" | cut -c1-120)"
      grep -q ERR_NVGPUCTRPERM "$file" && ncu_result="not permitted (ERR_NVGPUCTRPERM)"
    fi
    ncu_lines+=("$kernel: $line")
    say "ncu $kernel: $line"
  done
fi

# --- 5. PyTorch on the same shapes, then the plots ---------------------------------------------
torch_result="not run"
trainer_torch_result="not run"
if [ "${#jsons[@]}" -gt 0 ]; then
  torch_python=$(python_with torch || command -v python3 || true)
  if [ -n "$torch_python" ]; then
    torch_seconds=$(limit 130 30)
    # --time-limit leaves it time to write the JSON of what it measured before the kill.
    run_logged "$work/compare_torch.txt" "$torch_seconds" "$torch_python" bench/compare_torch.py \
      "${jsons[@]}" --quick --json "$work/torch.json" --time-limit $((torch_seconds - 20))
    status=$?
    torch_result="$(grep -c ' aten\.\| torch\.\| F\.' "$work/compare_torch.txt") shapes (exit $status)"
    grep -q 'nothing to compare' "$work/compare_torch.txt" && torch_result=$(tail -n 1 "$work/compare_torch.txt")
  fi
  if [ -n "${trainer_json:-}" ] && [ -s "$trainer_json" ] && [ -n "$torch_python" ]; then
    # Eager only: torch.compile recompiles per batch shape, which this budget cannot afford (run
    # bench/trainer_torch.py without --no-compile by hand for it).
    run_logged "$work/trainer_torch.txt" "$(limit 90 30)" "$torch_python" -u bench/trainer_torch.py \
      "$trainer_json" --quick --no-compile --json "$work/trainer_torch.json"
    status=$?
    trainer_torch_result="$(grep -c '^ *[0-9][0-9]* ' "$work/trainer_torch.txt") batch sizes (exit $status)"
    grep -q 'nothing to compare' "$work/trainer_torch.txt" && trainer_torch_result=$(tail -n 1 "$work/trainer_torch.txt")
  fi
  plot_python=$(python_with matplotlib || true)
  for json in "${jsons[@]}"; do
    # Only the row-length sweeps make a readable plot.
    case $(basename "$json") in softmax_bench.json | loss_bench.json) ;; *) continue ;; esac
    if [ -z "$plot_python" ]; then
      say "plot: no python3 with matplotlib"
      break
    fi
    torch_flag=()
    [ -s "$work/torch.json" ] && torch_flag=(--torch "$work/torch.json")
    run_logged "$work/plot.log" "$(limit 30 10)" "$plot_python" bench/plot.py "$json" \
      -o "${json%.json}.png" "${torch_flag[@]}" || say "plot of $json failed (see $log)"
  done
fi
say "compare_torch: $torch_result"
say "trainer_torch: $trainer_torch_result"

# --- 6. summary, then the files for $OUT ------------------------------------------------------------
{
  echo
  echo "=== gpu_check summary ($(elapsed) s): ${gpu:-no GPU}, commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  printf '  %-22s %s\n' "build" "$build_result" "gpu tests" "$tests_result" \
    "memcheck (subset)" "${sanitizer_result[memcheck]}" \
    "racecheck (subset)" "${sanitizer_result[racecheck]}" \
    "synccheck (subset)" "${sanitizer_result[synccheck]}"
  printf '  %-22s %s\n' "kernel report" "$report_result"
  for line in "${bench_lines[@]}"; do printf '  %-22s %s\n' "${line%%:*}" "${line#*: }"; done
  printf '  %-22s %s\n' "ncu" "$ncu_result"
  for line in "${ncu_lines[@]}"; do printf '    %s\n' "$line"; done
  printf '  %-22s %s\n' "compare_torch" "$torch_result" "trainer_torch" "$trainer_torch_result"
  [ -s "$work/trainer_torch.txt" ] && sed -n '/^ *batch/,/^$/p' "$work/trainer_torch.txt"
  if [ "${#jsons[@]}" -gt 0 ]; then
    python_bin=$(command -v python3 || true)
    torch_summary=()
    [ -s "$work/torch.json" ] && torch_summary=(--torch "$work/torch.json")
    [ -n "$python_bin" ] && "$python_bin" bench/summary.py "${jsons[@]}" "${torch_summary[@]}"
  fi
  if [ "$failed" -eq 0 ]; then echo "gpu_check: PASSED"; else echo "gpu_check: FAILED (see $log)"; fi
} >"$summary" 2>&1
cat "$summary" >>"$log"

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  # At most 8 files: the summary, the log, then PNGs, bench JSON and torch.json; whatever does not
  # fit goes into results.tar.gz with everything else.
  declare -a files=("$summary" "$log")
  for file in "$work"/*.png "${jsons[@]}" "$work/torch.json" "$work/trainer_torch.json" \
    "$work/kernel_report.json"; do [ -s "$file" ] && files+=("$file"); done
  if [ "${#files[@]}" -gt 8 ]; then
    tar -czf "$work/results.tar.gz" -C "$work" --exclude=results.tar.gz .
    files=("${files[@]:0:7}" "$work/results.tar.gz")
  fi
  cp "${files[@]}" "$OUT"/
fi

cat "$summary"
exit "$failed"
