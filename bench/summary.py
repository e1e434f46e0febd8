#!/usr/bin/env python3
"""Prints one line per op of warpfuse benchmark JSON files: the median fraction of copy bandwidth its
automatic strategy reaches over all dtypes and row lengths (with the range), the best forced strategy's
median, the naive baseline's, and, given compare_torch.py's --json output, the median ratio of torch's
time to warpfuse's. bench/gpu_check.sh prints it as part of its closing summary.

Files of the rows x cols sweep (a bench binary's --rows-sweep) also get a table per op: each (cols,
rows) with the cluster, online and automatic strategies' fractions of copy bandwidth, the cluster's
speed-up over online (online time / cluster time) and torch's time over automatic's; then the issue's
goals at 131072 x 8192 and 262144 x 4096 bf16 (automatic >= 0.90 of copy, cluster >= 1.5x online),
each "met" or "NOT met". The loss bench's files also get the softcap goal (#16): bf16
cross_entropy_softcap at the bandwidth of cross_entropy (automatic, same shapes: median time ratio
<= 1.05). The linear + cross-entropy bench's files get its goal (#16) at rows 16384, d 4096,
V 128256 bf16: chunked within 1.1x the unfused path's time, with >= 8x less temporary memory (the
workspace against the logits; the peak with inputs and outputs is printed beside it).

  bench/summary.py build/bin/softmax_bench.json [more.json ...] [--torch torch.json]
"""

import argparse
import statistics
import sys
from typing import Dict, List

import bench_results

GOAL_SHAPES = [(131072, 8192), (262144, 4096)]  # (cols, rows), bf16
GOAL_COPY_FRACTION = 0.90
GOAL_SPEEDUP_OVER_ONLINE = 1.5
GOAL_SOFTCAP_TIME_RATIO = 1.05
GOAL_LINEAR_CE_SHAPE = (16384, 128256)  # (rows, V), d 4096, bf16
GOAL_LINEAR_CE_TIME_RATIO = 1.1
GOAL_LINEAR_CE_MEMORY_RATIO = 8.0


def fmt(values: List[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def cell(case) -> str:
    if case is None:
        return "-"
    if case.unsupported:
        return "n/a"
    if case.failed:
        return "FAILED"
    return f"{case.copy_fraction:.3f}"


def print_rows_sweep(cases, torch_results) -> None:
    """The rows x cols table of each swept op, then the goal lines."""
    swept = [c for c in cases if c.swept_rows]
    ops: List[str] = []
    for case in swept:
        if case.op not in ops:
            ops.append(case.op)
    for op in ops:
        by_key = {(c.dtype, c.cols, c.swept_rows, c.impl): c for c in swept if c.op == op}
        shapes = sorted({(c.dtype, c.cols, c.swept_rows) for c in swept if c.op == op})
        print(f"\n{op}: rows x cols sweep, fraction of copy bandwidth; cluster/online = online time "
              "/ cluster time; torch/auto = torch time / automatic time")
        print(f"{'dtype':<6}{'cols':>8}{'rows':>7}{'cluster':>9}{'online':>8}{'automatic':>10}  "
              f"{'picks':<9}{'cluster/online':>15}{'torch/auto':>11}")
        for dtype, cols, rows in shapes:
            cluster = by_key.get((dtype, cols, rows, "cluster"))
            online = by_key.get((dtype, cols, rows, "online"))
            automatic = by_key.get((dtype, cols, rows, "automatic"))
            speedup = "-"
            if cluster and online and cluster.ok and online.ok and cluster.median_us > 0:
                speedup = f"{online.median_us / cluster.median_us:.2f}"
            picks = automatic.label.replace("picks ", "") if automatic and automatic.ok else ""
            torch = torch_results.get((op, dtype, cols, rows))
            ratio = f"{torch['ratio']:.2f}" if torch else "-"
            print(f"{dtype:<6}{cols:>8}{rows:>7}{cell(cluster):>9}{cell(online):>8}"
                  f"{cell(automatic):>10}  {picks:<9}{speedup:>15}{ratio:>11}")
        for cols, rows in GOAL_SHAPES:
            automatic = by_key.get(("bf16", cols, rows, "automatic"))
            cluster = by_key.get(("bf16", cols, rows, "cluster"))
            online = by_key.get(("bf16", cols, rows, "online"))
            if not (automatic and automatic.ok):
                print(f"goal {op} bf16 {cols} x {rows}: not measured")
                continue
            fraction = automatic.copy_fraction
            verdict = "met" if fraction >= GOAL_COPY_FRACTION else "NOT met"
            line = (f"goal {op} bf16 {cols} x {rows}: automatic {fraction:.3f} of copy "
                    f"(>= {GOAL_COPY_FRACTION:.2f}: {verdict})")
            if cluster and online and cluster.ok and online.ok and cluster.median_us > 0:
                speedup = online.median_us / cluster.median_us
                verdict = "met" if speedup >= GOAL_SPEEDUP_OVER_ONLINE else "NOT met"
                line += (f", cluster {speedup:.2f}x online (>= {GOAL_SPEEDUP_OVER_ONLINE:.1f}: "
                         f"{verdict})")
            print(line)


def print_softcap_goal(cases) -> None:
    """The goal line of the softcapped cross-entropy: its time over the plain op's, per bf16 shape
    both measured (automatic strategy), the median."""
    plain = {c.cols: c for c in cases
             if c.op == "cross_entropy" and c.impl == "automatic" and c.dtype == "bf16" and c.ok}
    ratios = [c.median_us / plain[c.cols].median_us for c in cases
              if c.op == "cross_entropy_softcap" and c.impl == "automatic" and c.dtype == "bf16"
              and c.ok and c.cols in plain and not c.swept_rows]
    if not ratios:
        return
    ratio = statistics.median(ratios)
    verdict = "met" if ratio <= GOAL_SOFTCAP_TIME_RATIO else "NOT met"
    print(f"goal cross_entropy_softcap bf16: {ratio:.3f}x the time of cross_entropy (median of "
          f"{len(ratios)} shapes, {min(ratios):.3f}..{max(ratios):.3f}; <= "
          f"{GOAL_SOFTCAP_TIME_RATIO:.2f}: {verdict})")


def print_linear_cross_entropy_goal(cases) -> None:
    """The goal line of chunked linear + cross-entropy against the unfused path at the goal shape:
    time ratio, temporary-memory ratio and peak-memory ratio."""
    rows, vocab = GOAL_LINEAR_CE_SHAPE
    found = {c.impl: c for c in cases
             if c.op == "linear_cross_entropy" and c.dtype == "bf16" and c.ok and c.cols == vocab
             and c.rows == rows}
    if "chunked" not in found or "unfused" not in found:
        return
    chunked, unfused = found["chunked"], found["unfused"]
    time_ratio = chunked.median_us / unfused.median_us
    memory_ratio = unfused.temp_mib / chunked.temp_mib if chunked.temp_mib > 0 else float("inf")
    peak_ratio = unfused.peak_mib / chunked.peak_mib if chunked.peak_mib > 0 else float("inf")
    met = time_ratio <= GOAL_LINEAR_CE_TIME_RATIO and memory_ratio >= GOAL_LINEAR_CE_MEMORY_RATIO
    print(f"goal linear_cross_entropy bf16 {rows} x {vocab}: {time_ratio:.3f}x the unfused time "
          f"(<= {GOAL_LINEAR_CE_TIME_RATIO:.1f}), {memory_ratio:.1f}x less temporary memory "
          f"({chunked.temp_mib:.0f} vs {unfused.temp_mib:.0f} MiB; >= "
          f"{GOAL_LINEAR_CE_MEMORY_RATIO:.0f}), peak {chunked.peak_mib:.0f} vs "
          f"{unfused.peak_mib:.0f} MiB ({peak_ratio:.2f}x): {'met' if met else 'NOT met'}")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description="Per-op summary of warpfuse bench JSON files.")
    parser.add_argument("json", nargs="+")
    parser.add_argument("--torch", help="compare_torch.py --json output")
    args = parser.parse_args(argv)

    torch_results = {}
    if args.torch:
        try:
            _, torch_results = bench_results.load_torch(args.torch)
        except (OSError, ValueError, KeyError) as error:
            print(f"summary.py: cannot read {args.torch}: {error}", file=sys.stderr)

    header = (f"{'op':<24}{'cases':>6}{'failed':>7}  {'automatic (min..max)':<22}"
              f"{'best forced':>12}{'naive':>7}{'cudnn':>7}  {'torch/warpfuse':>14}")
    print("median fraction of copy bandwidth over dtypes and row lengths")
    print(header)
    status = 0
    for path in args.json:
        try:
            context, cases = bench_results.load(path)
        except (OSError, ValueError) as error:
            print(f"summary.py: cannot read {path}: {error}", file=sys.stderr)
            status = 2
            continue
        ops: List[str] = []
        for case in cases:
            if case.op != "copy" and case.op not in ops:
                ops.append(case.op)
        for op in ops:
            mine = [c for c in cases if c.op == op]
            by_impl: Dict[str, List[float]] = {}
            for case in mine:
                if case.ok:
                    by_impl.setdefault(case.impl, []).append(case.copy_fraction)
            # Best forced strategy: per (dtype, cols, rows), the fastest warpfuse strategy.
            best: Dict[tuple, float] = {}
            for case in mine:
                if case.ok and case.impl in ("warp", "block", "online", "cluster"):
                    key = (case.dtype, case.cols, case.swept_rows)
                    best[key] = max(best.get(key, 0.0), case.copy_fraction)
            automatic = by_impl.get("automatic", [])
            spread = f"{min(automatic):.2f}..{max(automatic):.2f}" if automatic else ""
            ratios = [r["ratio"] for key, r in torch_results.items() if key[0] == op]
            print(f"{op:<24}{len(mine):>6}{sum(c.failed for c in mine):>7}  "
                  f"{fmt(automatic) + ' (' + spread + ')':<22}{fmt(list(best.values())):>12}"
                  f"{fmt(by_impl.get('naive', [])):>7}{fmt(by_impl.get('cudnn', [])):>7}  "
                  f"{fmt(ratios):>14}")
        print(f"  ({path}: {context.get('device_name', '?')}, copy bandwidth "
              f"{bench_results.copy_bandwidth(context):.0f} GB/s, commit "
              f"{context.get('git_commit', '?')})")
        print_softcap_goal(cases)
        print_linear_cross_entropy_goal(cases)
        if any(case.swept_rows for case in cases):
            print_rows_sweep(cases, torch_results)
            print()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
