#!/usr/bin/env python3
"""Draws a warpfuse benchmark JSON as GB/s against row length, one panel per op (rows) and dtype
(columns), one line per implementation, with the copy bandwidth measured in the same run as a dashed
line and, given compare_torch.py's --json output, PyTorch's figures on the same shapes. Writes a PNG.

  bench/plot.py build/bin/softmax_bench.json -o softmax.png [--torch torch.json]

Needs python3 and matplotlib (Debian: python3-matplotlib). Failed or unsupported cases are left out
of their line (their error is in the JSON).
"""

import argparse
import os
import sys
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

import bench_results  # noqa: E402

DTYPE_ORDER = ["f32", "f16", "bf16"]
STYLE = {  # implementation -> (colour, marker, line style)
    "automatic": ("black", "o", "-"),
    "warp": ("tab:blue", "^", "-"),
    "block": ("tab:green", "s", "-"),
    "online": ("tab:orange", "D", "-"),
    "naive": ("tab:gray", "x", ":"),
    "cudnn": ("tab:purple", "v", "--"),
}


def short_count(value: int) -> str:
    """32 -> "32", 2048 -> "2K", 262144 -> "256K"."""
    if value >= 1 << 20 and value % (1 << 20) == 0:
        return f"{value >> 20}M"
    if value >= 1 << 10 and value % (1 << 10) == 0:
        return f"{value >> 10}K"
    return str(value)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description="Plot a warpfuse bench JSON to PNG.")
    parser.add_argument("json", help="JSON written by a warpfuse *_bench binary")
    parser.add_argument("-o", "--output", help="PNG to write (default: the JSON's name, .png)")
    parser.add_argument("--torch", help="compare_torch.py --json output, drawn as 'torch'")
    args = parser.parse_args(argv)
    output = args.output or os.path.splitext(args.json)[0] + ".png"

    try:
        context, cases = bench_results.load(args.json)
    except (OSError, ValueError) as error:
        print(f"plot.py: cannot read {args.json}: {error}", file=sys.stderr)
        return 2
    torch_results = {}
    if args.torch:
        try:
            _, torch_results = bench_results.load_torch(args.torch)
        except (OSError, ValueError, KeyError) as error:
            print(f"plot.py: cannot read {args.torch}: {error}", file=sys.stderr)
            return 2

    # The rows x cols sweep's cases (rows in the name) are tables (summary.py), not row-length lines.
    cases = [case for case in cases if not case.swept_rows]
    ops: List[str] = []
    dtypes: List[str] = []
    for case in cases:
        if case.op == "copy":
            continue
        if case.op not in ops:
            ops.append(case.op)
        if case.dtype not in dtypes:
            dtypes.append(case.dtype)
    dtypes.sort(key=lambda d: DTYPE_ORDER.index(d) if d in DTYPE_ORDER else len(DTYPE_ORDER))
    if not ops:
        print(f"plot.py: {args.json} holds no cases to plot", file=sys.stderr)
        return 2

    copy_gbps = bench_results.copy_bandwidth(context)
    figure, axes = plt.subplots(len(ops), len(dtypes), figsize=(5.2 * len(dtypes), 3.6 * len(ops)),
                                squeeze=False, sharex=True)
    legend: Dict[str, object] = {}  # one legend for all panels: label -> line
    for row, op in enumerate(ops):
        for column, dtype in enumerate(dtypes):
            axis = axes[row][column]
            lines: Dict[str, List[tuple]] = {}
            for case in cases:
                if case.op == op and case.dtype == dtype and case.ok:
                    lines.setdefault(case.impl, []).append((case.cols, case.gbps))
            for impl, points in lines.items():
                points.sort()
                colour, marker, style = STYLE.get(impl, (None, ".", "-"))
                axis.plot([p[0] for p in points], [p[1] for p in points], label=impl, color=colour,
                          marker=marker, linestyle=style, markersize=4, linewidth=1.3)
            torch_points = sorted((cols, r["torch_GBps"]) for (o, d, cols, swept), r in
                                  torch_results.items() if o == op and d == dtype and not swept)
            if torch_points:
                axis.plot([p[0] for p in torch_points], [p[1] for p in torch_points],
                          label="torch", color="tab:red", marker="*", linestyle="--",
                          markersize=5, linewidth=1.3)
            if copy_gbps > 0:
                axis.axhline(copy_gbps, color="dimgray", linestyle=(0, (6, 3)), linewidth=1.2,
                             label=f"D2D copy {copy_gbps:.0f} GB/s")
                # The right-hand axis reads the same lines as a fraction of the copy bandwidth.
                secondary = axis.secondary_yaxis(
                    "right", functions=(lambda g: g / copy_gbps, lambda f: f * copy_gbps))
                if column == len(dtypes) - 1:
                    secondary.set_ylabel("fraction of copy bandwidth")
            axis.set_xscale("log", base=2)
            ticks = sorted({case.cols for case in cases if case.op == op})
            axis.set_xticks(ticks)
            axis.set_xticklabels([short_count(t) for t in ticks], rotation=45, fontsize=7)
            axis.minorticks_off()
            axis.set_ylim(bottom=0)
            axis.grid(True, which="both", alpha=0.3)
            axis.set_title(f"{op}  {dtype}", fontsize=10)
            if column == 0:
                axis.set_ylabel("GB/s (bytes moved / median time)")
            if row == len(ops) - 1:
                axis.set_xlabel("row length (cols)")
            for handle, text in zip(*axis.get_legend_handles_labels()):
                legend.setdefault(text, handle)
    title = (f"{context.get('bench_program', os.path.basename(args.json))} on "
             f"{context.get('device_name', '?')} (CUDA runtime "
             f"{context.get('cuda_runtime_version', '?')}, driver API "
             f"{context.get('cuda_driver_version', '?')}), commit {context.get('git_commit', '?')}, "
             f"{context.get('date', '')}")
    if context.get("note"):
        title += "\n" + context["note"]
    top = 1.0 - 0.7 / figure.get_figheight()  # room for two title lines and the legend, in inches
    figure.suptitle(title, fontsize=10, y=0.995)
    figure.legend(list(legend.values()), list(legend.keys()), loc="lower center", ncol=len(legend),
                  fontsize=8, frameon=False, bbox_to_anchor=(0.5, top - 0.05 / figure.get_figheight()))
    figure.tight_layout(rect=(0, 0, 1, top))
    figure.savefig(output, dpi=110)
    plt.close(figure)
    if not os.path.isfile(output) or os.path.getsize(output) == 0:
        print(f"plot.py: {output} was not written", file=sys.stderr)
        return 1
    print(f"wrote {output} ({os.path.getsize(output)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
