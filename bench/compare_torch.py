#!/usr/bin/env python3
"""Times PyTorch on the shapes of warpfuse benchmark JSON files, the same way, and prints a side-by-side
table with warpfuse's numbers read from the JSON.

  bench/compare_torch.py build/bin/softmax_bench.json [more.json ...] [--quick] [--json torch.json]

For every case of the JSON whose implementation is --impl (default: automatic, warpfuse's own choice)
and whose op PyTorch offers (OPS below), it builds the same rows x cols inputs in the same dtype,
rotated over the same number of sets, makes --warmup untimed calls, then --repeats calls each timed by
a pair of CUDA events on the current stream and synchronised, and takes the median: the method of
bench/bench_common.h. Bytes moved are counted the same way (each input read once, each output written
once), so GB/s compare directly. ratio = torch median time / warpfuse median time: above 1, warpfuse is
faster.

PyTorch is called through its out= kernels where it has them (aten._softmax.out,
aten._softmax_backward_data.out, ...), so that no allocation or autograd bookkeeping is timed: the
backward cases are the kernel that autograd runs for softmax's backward, from y and dy to dx.

Where torch cannot be imported, or sees no CUDA device, it says so and exits 0.
"""

import argparse
import json
import os
import statistics
import sys
from typing import Callable, Dict, List, Optional, Tuple

import bench_results

DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


# --- the ops PyTorch is timed on ----------------------------------------------------------------------
# Each entry builds, for one shape, the inputs of every rotation set and returns (call, how), where
# call(set) enqueues the op for that set on the current stream and `how` names what is timed. Bytes moved
# come from the warpfuse case. Activations and losses add their entries here as their benches land.

def _uniform(torch, rows, cols, dtype, low, high, generator):
    values = torch.empty(rows, cols, device="cuda", dtype=torch.float32)
    values.uniform_(low, high, generator=generator)
    return values.to(dtype)


def _first_working(candidates: List[Tuple[str, Callable[[int], object]]]):
    """The first (how, call) whose call(0) runs: the out= overloads differ between torch versions."""
    errors = []
    for how, call in candidates:
        try:
            call(0)
            return call, how
        except (RuntimeError, TypeError, AttributeError) as error:
            errors.append(f"{how}: {error}")
    raise RuntimeError("no way to call the op works: " + "; ".join(errors))


def softmax_forward(log: bool):
    def build(torch, rows, cols, dtype, sets, generator):
        aten = torch.ops.aten
        xs = [_uniform(torch, rows, cols, dtype, -4.0, 4.0, generator) for _ in range(sets)]
        ys = [torch.empty_like(x) for x in xs]
        name = "_log_softmax" if log else "_softmax"
        out_op = getattr(aten, name).out
        functional = torch.log_softmax if log else torch.softmax
        return _first_working([
            (f"aten.{name}.out", lambda s: out_op(xs[s], -1, False, out=ys[s])),
            (f"torch.{'log_softmax' if log else 'softmax'} (allocates)",
             lambda s: functional(xs[s], dim=-1)),
        ])
    return build


def softmax_backward(log: bool):
    def build(torch, rows, cols, dtype, sets, generator):
        aten = torch.ops.aten
        forward = torch.log_softmax if log else torch.softmax
        ys = [forward(_uniform(torch, rows, cols, dtype, -4.0, 4.0, generator), dim=-1)
              for _ in range(sets)]
        dys = [_uniform(torch, rows, cols, dtype, -1.0, 1.0, generator) for _ in range(sets)]
        dxs = [torch.empty_like(y) for y in ys]
        if log:
            op = aten._log_softmax_backward_data
            candidates = [
                ("aten._log_softmax_backward_data.out",
                 lambda s: op.out(dys[s], ys[s], -1, dtype, out=dxs[s])),
            ]
        else:
            op = aten._softmax_backward_data
            candidates = [
                ("aten._softmax_backward_data.out",
                 lambda s: op.out(dys[s], ys[s], -1, dtype, grad_input=dxs[s])),
            ]
        candidates.append((f"aten.{'_log' if log else ''}_softmax_backward_data (allocates)",
                           lambda s: op(dys[s], ys[s], -1, dtype)))
        return _first_working(candidates)
    return build


OPS: Dict[str, Callable] = {
    "softmax": softmax_forward(log=False),
    "log_softmax": softmax_forward(log=True),
    "softmax_backward": softmax_backward(log=False),
    "log_softmax_backward": softmax_backward(log=True),
}


# --- timing -----------------------------------------------------------------------------------------

def time_median(torch, call, sets: int, warmup: int, repeats: int) -> float:
    """Median seconds of call(set) over `repeats` event-timed, synchronised calls after `warmup`
    untimed ones, the sets used in rotation."""
    current = 0
    for _ in range(warmup):
        call(current)
        current = (current + 1) % sets
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    seconds = []
    for _ in range(repeats):
        start.record()
        call(current)
        stop.record()
        stop.synchronize()
        seconds.append(start.elapsed_time(stop) * 1e-3)
        current = (current + 1) % sets
    return statistics.median(seconds)


def import_torch() -> Tuple[Optional[object], str]:
    """(torch, "") when torch imports and sees a CUDA device, else (None, why not)."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except Exception as error:  # noqa: BLE001 - any import failure means "no torch here"
        return None, f"torch is not importable ({type(error).__name__}: {error})"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} sees no CUDA device"
    return torch, ""


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        description="Time PyTorch on the shapes of warpfuse bench JSON files, the same way.")
    parser.add_argument("json", nargs="+", help="JSON written by a warpfuse *_bench binary")
    parser.add_argument("--impl", default="automatic",
                        help="the warpfuse implementation to compare (default: automatic)")
    parser.add_argument("--quick", action="store_true", help="2 warm-ups and 10 repeats")
    parser.add_argument("--repeats", type=int, help="timed calls per case (default: the JSON's)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (default: the JSON's)")
    parser.add_argument("--json", dest="json_out", metavar="PATH", help="write the results here")
    args = parser.parse_args(argv)

    benches = []
    for path in args.json:
        try:
            benches.append((path,) + bench_results.load(path))
        except (OSError, ValueError) as error:
            print(f"compare_torch.py: cannot read {path}: {error}", file=sys.stderr)
            return 2

    torch, why_not = import_torch()
    if torch is None:
        print(f"compare_torch.py: {why_not}; nothing to compare (install PyTorch with CUDA and run "
              "it on the GPU that produced the JSON)")
        return 0

    device = torch.cuda.get_device_name()
    generator = torch.Generator(device="cuda")
    generator.manual_seed(20261129)
    rows_out = []
    header = (f"{'op':<22}{'dtype':<6}{'cols':>8}{'rows':>9}  {'warpfuse us':>11}{'GB/s':>8}"
              f"  {'torch us':>9}{'GB/s':>8}  {'ratio':>6}  torch call")
    print(f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) on {device}; "
          "ratio = torch time / warpfuse time (> 1: warpfuse faster)")
    print(header)
    print("-" * len(header))
    for path, context, cases in benches:
        if context.get("device_name") and context["device_name"] != device:
            print(f"note: {os.path.basename(path)} was measured on {context['device_name']}, "
                  f"this is {device}")
        warmup = args.warmup if args.warmup is not None else (
            2 if args.quick else int(context.get("warmup", 5)))
        repeats = args.repeats if args.repeats is not None else (
            10 if args.quick else int(context.get("repeats", 50)))
        for case in cases:
            if case.impl != args.impl or not case.ok or case.op not in OPS:
                continue
            dtype = getattr(torch, DTYPES[case.dtype])
            sets = max(case.sets, 1)
            try:
                call, how = OPS[case.op](torch, case.rows, case.cols, dtype, sets, generator)
                seconds = time_median(torch, call, sets, warmup, repeats)
            except (RuntimeError, MemoryError) as error:
                print(f"{case.op:<22}{case.dtype:<6}{case.cols:>8}{case.rows:>9}  skipped: {error}")
                torch.cuda.empty_cache()
                continue
            torch_us = seconds * 1e6
            torch_gbps = case.bytes / seconds / 1e9
            ratio = torch_us / case.median_us if case.median_us > 0 else float("nan")
            print(f"{case.op:<22}{case.dtype:<6}{case.cols:>8}{case.rows:>9}  {case.median_us:>11.1f}"
                  f"{case.gbps:>8.0f}  {torch_us:>9.1f}{torch_gbps:>8.0f}  {ratio:>6.2f}  {how}")
            rows_out.append({
                "op": case.op, "dtype": case.dtype, "cols": case.cols, "rows": case.rows,
                "sets": sets, "bytes": case.bytes, "warpfuse_impl": case.impl,
                "warpfuse_median_us": case.median_us, "warpfuse_GBps": case.gbps,
                "torch_median_us": torch_us, "torch_GBps": torch_gbps, "ratio": ratio,
                "torch_call": how,
            })
            torch.cuda.empty_cache()

    by_op: Dict[str, List[float]] = {}
    for row in rows_out:
        by_op.setdefault(row["op"], []).append(row["ratio"])
    print()
    for op, ratios in by_op.items():
        print(f"{op}: median ratio torch/warpfuse {statistics.median(ratios):.2f} "
              f"over {len(ratios)} shapes (min {min(ratios):.2f}, max {max(ratios):.2f})")
    if args.json_out:
        document = {
            "context": {
                "torch_version": torch.__version__, "torch_cuda": str(torch.version.cuda),
                "device_name": device, "warmup": warmup if benches else None,
                "repeats": repeats if benches else None,
                "method": "CUDA events around each call; median of repeats; inputs rotated over "
                          "the warpfuse case's sets",
                "warpfuse_json": [os.path.basename(path) for path, _, _ in benches],
            },
            "results": rows_out,
        }
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
