#!/usr/bin/env python3
"""Prints one line per op of warpfuse benchmark JSON files: the median fraction of copy bandwidth its
automatic strategy reaches over all dtypes and row lengths (with the range), the best forced strategy's
median, the naive baseline's, and, given compare_torch.py's --json output, the median ratio of torch's
time to warpfuse's. bench/gpu_check.sh prints it as part of its closing summary.

  bench/summary.py build/bin/softmax_bench.json [more.json ...] [--torch torch.json]
"""

import argparse
import statistics
import sys
from typing import Dict, List

import bench_results


def fmt(values: List[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


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
            # Best forced strategy: per (dtype, cols), the fastest warpfuse strategy.
            best: Dict[tuple, float] = {}
            for case in mine:
                if case.ok and case.impl in ("warp", "block", "online"):
                    key = (case.dtype, case.cols)
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
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
