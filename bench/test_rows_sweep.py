#!/usr/bin/env python3
"""Tests of the rows x cols sweep's reading and reporting (bench_results.py, summary.py), no GPU.

  bench/test_rows_sweep.py                 synthetic JSON written here: names, keys, goal verdicts
  bench/test_rows_sweep.py SWEEP.json ...  also checks JSON that the emulated bench binaries wrote
                                           with --rows-sweep (ctest's bench.rows_sweep.*)

The synthetic file is built by this script (Google Benchmark's JSON layout, numbers chosen so that
one goal shape meets both goals and the other misses both), so a verdict that stopped depending on
the numbers, or a name parser that merged the rows of one cols, fails here.
"""

import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_results  # noqa: E402
import summary  # noqa: E402

EMULATED_FILES = []


def entry(name, copy_fraction=0.0, median_us=0.0, rows=0, error=None, label="", **counters):
    """One Google Benchmark iteration entry of a warpfuse case (extra counters as keywords)."""
    record = {"name": f"{name}/iterations:10/manual_time", "run_name": f"{name}/manual_time",
              "run_type": "iteration", "label": label}
    if error:
        record.update({"error_occurred": True, "error_message": error})
    else:
        record.update({"rows": rows, "copy_fraction": copy_fraction, "median_us": median_us,
                       "GBps": copy_fraction * 3000.0, "bytes": 1.0, "sets": 2})
        record.update(counters)
    return record


def synthetic_sweep():
    """cross_entropy sweep cases: at 131072 x 8192 automatic 0.95 of copy and cluster 2x online
    (both goals met); at 262144 x 4096 automatic 0.60 and cluster 1.2x online (both missed);
    one shape too big for the device (unsupported) and one failed case."""
    cases = [entry("copy/u8/cudaMemcpyAsync/268435456", 1.0, 100.0)]
    for cols, rows, auto, cluster_us, online_us in [(131072, 8192, 0.95, 1000.0, 2000.0),
                                                    (262144, 4096, 0.60, 1000.0, 1200.0),
                                                    (131072, 1, 0.30, 10.0, 40.0)]:
        base = f"cross_entropy/bf16/%s/{cols}/rows={rows}"
        cases.append(entry(base % "cluster", 0.9, cluster_us, rows))
        cases.append(entry(base % "online", 0.5, online_us, rows))
        cases.append(entry(base % "automatic", auto, cluster_us, rows, label="picks cluster"))
    cases.append(entry("cross_entropy/bf16/online/262144/rows=16384",
                       error="unsupported: warpfuse::bench: unsupported: does not fit"))
    cases.append(entry("cross_entropy/bf16/cluster/262144/rows=16384", error="dlogits: 3 wrong"))
    return {"context": {"device_name": "synthetic", "copy_bandwidth_gbps": "3000.0"},
            "benchmarks": cases}


def run_summary(*args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = summary.main(list(args))
    return status, out.getvalue()


class RowsSweep(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.folder.name, "sweep.json")
        with open(self.path, "w", encoding="utf-8") as handle:
            json.dump(synthetic_sweep(), handle)

    def tearDown(self):
        self.folder.cleanup()

    def test_names_keep_the_rows(self):
        self.assertEqual(bench_results.case_key("softmax/bf16/cluster/131072/rows=8/iterations:1"),
                         "softmax/bf16/cluster/131072/rows=8")
        self.assertEqual(bench_results.case_key("softmax/bf16/cluster/131072/iterations:1"),
                         "softmax/bf16/cluster/131072")
        self.assertEqual(bench_results.parse_name("softmax/bf16/online/65536/rows=16"),
                         ("softmax", "bf16", "online", 65536, 16))
        self.assertIsNone(bench_results.parse_name("softmax/bf16/online/65536/rows=x"))
        _, cases = bench_results.load(self.path)
        shapes = {(c.impl, c.cols, c.swept_rows) for c in cases if c.op == "cross_entropy"}
        self.assertIn(("cluster", 131072, 8192), shapes)
        self.assertIn(("cluster", 131072, 1), shapes)  # not merged with rows=8192
        one_row = [c for c in cases if c.cols == 131072 and c.swept_rows == 1]
        self.assertTrue(all(c.rows == 1 for c in one_row))
        self.assertTrue(any(c.unsupported for c in cases))
        self.assertTrue(any(c.failed for c in cases))

    def test_goal_verdicts_follow_the_numbers(self):
        status, text = run_summary(self.path)
        self.assertEqual(status, 0)
        met = [line for line in text.splitlines() if line.startswith("goal cross_entropy bf16 131072")]
        missed = [line for line in text.splitlines()
                  if line.startswith("goal cross_entropy bf16 262144")]
        self.assertEqual(len(met), 1, text)
        self.assertEqual(len(missed), 1, text)
        self.assertIn("0.950 of copy (>= 0.90: met)", met[0])
        self.assertIn("cluster 2.00x online (>= 1.5: met)", met[0])
        self.assertIn("0.600 of copy (>= 0.90: NOT met)", missed[0])
        self.assertIn("cluster 1.20x online (>= 1.5: NOT met)", missed[0])

    def test_table_shows_each_shape_once_with_speedup_and_states(self):
        _, text = run_summary(self.path)
        rows = [line.split() for line in text.splitlines() if line.startswith("bf16 ")]
        by_shape = {(int(r[1]), int(r[2])): r for r in rows}
        self.assertEqual(len(rows), len(by_shape), text)  # no shape printed twice
        self.assertEqual(by_shape[(131072, 1)][6], "cluster")  # what automatic picked
        self.assertEqual(by_shape[(131072, 1)][7], "4.00")  # online 40 us / cluster 10 us
        self.assertEqual(by_shape[(262144, 16384)][3:5], ["FAILED", "n/a"])

    def test_torch_ratios_are_matched_by_rows(self):
        torch_path = os.path.join(self.folder.name, "torch.json")
        results = [{"op": "cross_entropy", "dtype": "bf16", "cols": 131072, "rows": rows,
                    "swept_rows": rows, "ratio": ratio}
                   for rows, ratio in [(8192, 1.7), (1, 3.1)]]
        with open(torch_path, "w", encoding="utf-8") as handle:
            json.dump({"context": {}, "results": results}, handle)
        _, text = run_summary(self.path, "--torch", torch_path)
        rows = {(int(r[1]), int(r[2])): r for r in
                (line.split() for line in text.splitlines() if line.startswith("bf16 "))}
        self.assertEqual(rows[(131072, 8192)][-1], "1.70")
        self.assertEqual(rows[(131072, 1)][-1], "3.10")
        self.assertEqual(rows[(262144, 4096)][-1], "-")

    def test_softcap_goal_compares_like_shapes(self):
        """cross_entropy_softcap against cross_entropy, automatic bf16, shape by shape: ratios 1.02
        and 1.10 (median 1.06: NOT met), an fp32 shape and a shape without a plain case ignored."""
        path = os.path.join(self.folder.name, "loss.json")
        cases = [entry("copy/u8/cudaMemcpyAsync/268435456", 1.0, 100.0)]
        for cols, plain_us, capped_us in [(32000, 100.0, 102.0), (128256, 200.0, 220.0)]:
            cases.append(entry(f"cross_entropy/bf16/automatic/{cols}", 0.9, plain_us))
            cases.append(entry(f"cross_entropy_softcap/bf16/automatic/{cols}", 0.9, capped_us))
        cases.append(entry("cross_entropy_softcap/f32/automatic/32000", 0.9, 999.0))
        cases.append(entry("cross_entropy_softcap/bf16/automatic/256000", 0.9, 999.0))
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"context": {"copy_bandwidth_gbps": "3000.0"}, "benchmarks": cases}, handle)
        _, text = run_summary(path)
        goal = [line for line in text.splitlines() if line.startswith("goal cross_entropy_softcap")]
        self.assertEqual(len(goal), 1, text)
        self.assertIn("1.060x the time of cross_entropy (median of 2 shapes, 1.020..1.100", goal[0])
        self.assertIn("NOT met", goal[0])

    def test_linear_cross_entropy_goal(self):
        """Chunked against unfused at the goal shape: 1.05x the time and 16x less temporary memory
        (met); the same with 1.2x the time (NOT met); other shapes and dtypes ignored."""
        for chunked_us, verdict in [(105.0, "met"), (120.0, "NOT met")]:
            path = os.path.join(self.folder.name, "linear.json")
            cases = [entry("copy/u8/cudaMemcpyAsync/268435456", 1.0, 100.0)]
            common = {"d": 4096.0}
            cases.append(entry("linear_cross_entropy/bf16/chunked/128256", 0.1, chunked_us, 16384,
                               temp_mib=256.0, peak_mib=3600.0, **common))
            cases.append(entry("linear_cross_entropy/bf16/unfused/128256", 0.1, 100.0, 16384,
                               temp_mib=4096.0, peak_mib=7200.0, **common))
            cases.append(entry("linear_cross_entropy/f16/chunked/128256", 0.1, 999.0, 16384,
                               temp_mib=1.0, peak_mib=1.0, **common))
            cases.append(entry("linear_cross_entropy/bf16/unfused/50257", 0.1, 1.0, 8192,
                               temp_mib=1.0, peak_mib=1.0, **common))
            with open(path, "w", encoding="utf-8") as handle:
                json.dump({"context": {"copy_bandwidth_gbps": "3000.0"}, "benchmarks": cases},
                          handle)
            _, text = run_summary(path)
            goal = [line for line in text.splitlines()
                    if line.startswith("goal linear_cross_entropy")]
            self.assertEqual(len(goal), 1, text)
            self.assertIn(f"{chunked_us / 100.0:.3f}x the unfused time", goal[0])
            self.assertIn("16.0x less temporary memory (256 vs 4096 MiB", goal[0])
            self.assertIn("peak 3600 vs 7200 MiB (2.00x)", goal[0])
            self.assertTrue(goal[0].endswith(": " + verdict), goal[0])

    def test_emulated_sweep_files(self):
        """What the emulated binaries wrote: every (impl, cols, rows) asked for, checked and ok."""
        if not EMULATED_FILES:
            self.skipTest("no emulated sweep JSON given")
        for path in EMULATED_FILES:
            _, cases = bench_results.load(path)
            swept = [c for c in cases if c.op != "copy"]
            self.assertTrue(swept, path)
            for case in swept:
                self.assertTrue(case.ok, f"{path}: {case.name}: {case.error}")
                self.assertGreater(case.swept_rows, 0, case.name)
                self.assertEqual(case.rows, case.swept_rows, case.name)
            impls = {c.impl for c in swept}
            self.assertEqual(impls, {"cluster", "online", "automatic"}, path)
            status, text = run_summary(path)
            self.assertEqual(status, 0)
            self.assertIn("rows x cols sweep", text)


if __name__ == "__main__":
    EMULATED_FILES.extend(arg for arg in sys.argv[1:] if arg.endswith(".json"))
    sys.argv = [sys.argv[0]] + [arg for arg in sys.argv[1:] if not arg.endswith(".json")]
    unittest.main()
