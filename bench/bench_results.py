"""Reading the JSON that warpfuse's bench binaries write (Google Benchmark's JSON format).

Each case is named "<op>/<dtype>/<impl>/<cols>" (Google Benchmark appends "/iterations:N/manual_time"),
or "<op>/<dtype>/<impl>/<cols>/rows=<rows>" in the rows x cols sweep (--rows-sweep), and carries the counters rows, cols, sets, bytes, GBps, copy_fraction, median_us and min_us (see
bench/bench_common.h). The "context" object holds the device, the versions, the commit and
copy_bandwidth_gbps. Used by plot.py, summary.py and compare_torch.py; plain python3, no third-party
modules.
"""

import json
import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

UNSUPPORTED = "unsupported: "  # skip-message prefix of a case that cannot run (not a failure)


@dataclass
class Case:
    name: str  # "<op>/<dtype>/<impl>/<cols>" or "<op>/<dtype>/<impl>/<cols>/rows=<rows>"
    op: str
    dtype: str
    impl: str
    cols: int
    swept_rows: int = 0  # the rows the name fixes (a rows-sweep case); 0: sized by --min-mib
    rows: int = 0
    sets: int = 0
    bytes: float = 0.0
    gbps: float = 0.0
    copy_fraction: float = 0.0
    median_us: float = 0.0
    inner: int = 0  # linear_cross_entropy's hidden size (its counter d); 0 elsewhere
    peak_mib: float = 0.0  # linear_cross_entropy's device memory (counter peak_mib); 0 elsewhere
    temp_mib: float = 0.0  # its memory beyond inputs and outputs (counter temp_mib); 0 elsewhere
    label: str = ""
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def unsupported(self) -> bool:
        return self.error is not None and self.error.startswith(UNSUPPORTED)

    @property
    def failed(self) -> bool:
        return self.error is not None and not self.unsupported


def case_key(name: str) -> str:
    """The case's own part of a Google Benchmark name: its four fields, and the fifth when it is a
    rows-sweep case's "rows=N" (not Google Benchmark's "iterations:N")."""
    parts = name.split("/")
    keep = 5 if len(parts) > 4 and parts[4].startswith("rows=") else 4
    return "/".join(parts[:keep])


def parse_name(name: str) -> Optional[Tuple[str, str, str, int, int]]:
    """(op, dtype, impl, cols, swept_rows) from a case key (swept_rows 0 outside the rows sweep), or
    None when it is not one of ours."""
    parts = name.split("/")
    if len(parts) < 4:
        return None
    try:
        cols = int(parts[3])
        swept_rows = int(parts[4][len("rows="):]) if len(parts) > 4 else 0
    except ValueError:
        return None
    return parts[0], parts[1], parts[2], cols, swept_rows


def load(path: str) -> Tuple[Dict[str, str], List[Case]]:
    """The context and the cases of one bench JSON. Several runs of one case (the
    --benchmark_repetitions flag) become one, with the median of each figure; the copy reference
    (op "copy") is included."""
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict) or "benchmarks" not in document:
        raise ValueError(f"{path}: not a Google Benchmark JSON file (no 'benchmarks')")
    context = {key: str(value) for key, value in document.get("context", {}).items()}
    runs: Dict[str, List[dict]] = {}
    order: List[str] = []
    for entry in document["benchmarks"]:
        if entry.get("run_type", "iteration") != "iteration":
            continue  # aggregates repeat what the iterations say
        name = entry.get("run_name") or entry.get("name", "")
        key = case_key(name)
        if parse_name(key) is None:
            continue
        if key not in runs:
            runs[key] = []
            order.append(key)
        runs[key].append(entry)
    cases = []
    for key in order:
        op, dtype, impl, cols, swept_rows = parse_name(key)
        entries = runs[key]
        errors = [e.get("error_message", "error") for e in entries if e.get("error_occurred")]
        good = [e for e in entries if not e.get("error_occurred")]
        case = Case(name=key, op=op, dtype=dtype, impl=impl, cols=cols, swept_rows=swept_rows,
                    rows=swept_rows)
        if errors and not good:
            case.error = errors[0]
        else:
            def typical(field: str) -> float:
                values = [float(e[field]) for e in good if field in e]
                return statistics.median(values) if values else 0.0

            case.rows = int(typical("rows"))
            case.sets = int(typical("sets"))
            case.bytes = typical("bytes")
            case.gbps = typical("GBps")
            case.copy_fraction = typical("copy_fraction")
            case.median_us = typical("median_us")
            case.inner = int(typical("d"))
            case.peak_mib = typical("peak_mib")
            case.temp_mib = typical("temp_mib")
            case.label = good[0].get("label", "")
        cases.append(case)
    return context, cases


def copy_bandwidth(context: Dict[str, str]) -> float:
    """The context's copy_bandwidth_gbps (0 when absent)."""
    try:
        return float(context.get("copy_bandwidth_gbps", "0"))
    except ValueError:
        return 0.0


def load_torch(path: str) -> Tuple[Dict[str, str], Dict[Tuple[str, str, int, int], dict]]:
    """compare_torch.py's --json output: its context and its results keyed by (op, dtype, cols,
    swept_rows), swept_rows 0 outside the rows x cols sweep."""
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    results = {}
    for entry in document.get("results", []):
        key = (entry["op"], entry["dtype"], int(entry["cols"]), int(entry.get("swept_rows", 0)))
        results[key] = entry
    return {k: str(v) for k, v in document.get("context", {}).items()}, results
