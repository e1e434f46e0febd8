#!/usr/bin/env python3
"""The kernel gate's own test: every rule of scripts/kernel-report fires on a kernel planted to
break it (planted.cu), the control kernel passes, and the allowlist works both ways (a listed
failure passes, a listed entry that no longer fails is itself a failure).

planted.cu is compiled to PTX by nvcc and assembled for sm_90 by the toolkit's ptxas, after a
.maxnreg is added to the one kernel that must exceed its launch bounds (nvcc itself would hold it
to them)."""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

EXPECTED = {
    "planted_clean_kernel": set(),
    "planted_local_array_kernel": {"local-memory"},
    "planted_scalar_store_kernel": {"vector-access"},
    "planted_fp64_kernel": {"fp64"},
    "planted_unbounded_kernel": {"launch-bounds"},
    "planted_heavy_kernel": {"occupancy"},
    "planted_over_bounds_kernel": {"register-limit"},
    "planted_row_clean_kernel": set(),
    "planted_row_short_kernel": {"vector-access"},
    "planted_row_unlisted_kernel": {"unknown-family"},
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nvcc", required=True)
    parser.add_argument("--ptxas", required=True)
    parser.add_argument("--cuobjdump")
    parser.add_argument("--report", default=str(Path(__file__).resolve().parents[2] /
                                                "scripts" / "kernel-report"))
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    failures = []

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        ptx = work / "planted.ptx"
        subprocess.run([args.nvcc, "-arch=sm_90", "-std=c++17", "-ptx", str(here / "planted.cu"),
                        "-o", str(ptx)], check=True)
        text = ptx.read_text()
        patched, count = re.subn(r"(\.maxntid 1024, 1, 1\n)", r"\1.maxnreg 168\n", text)
        if count != 1:
            print(f"expected one 1024-thread entry in the PTX, found {count}")
            return 1
        ptx.write_text(patched)
        cubin = work / "planted.cubin"
        subprocess.run([args.ptxas, "-arch=sm_90", str(ptx), "-o", str(cubin)], check=True)

        def report(*extra):
            command = [sys.executable, args.report, str(cubin), "--families",
                       str(here / "families.json"), "--json", str(work / "report.json")]
            if args.cuobjdump:
                command += ["--cuobjdump", args.cuobjdump]
            return subprocess.run(command + list(extra), capture_output=True, text=True)

        result = report()
        if result.returncode != 0:
            print(result.stdout, result.stderr)
            return 1
        kernels = json.loads((work / "report.json").read_text())["kernels"]
        by_kernel = {fn["kernel"]: fn for fn in kernels}
        for kernel, rules in EXPECTED.items():
            fn = by_kernel.get(kernel)
            if fn is None:
                failures.append(f"{kernel}: not in the report")
                continue
            got = set(fn["failures"])
            status = "ok" if got == rules else "WRONG"
            print(f"{status:5} {kernel}: fails {sorted(got) or 'nothing'}, expected "
                  f"{sorted(rules) or 'nothing'} (registers {fn['registers']}, resident warps "
                  f"{fn['resident_warps']}, launch bounds {fn['launch_bounds']}, 128-bit loads "
                  f"{fn['global_loads'][str(128)]} stores {fn['global_stores'][str(128)]})")
            if got != rules:
                failures.append(f"{kernel}: fails {sorted(got)}, expected {sorted(rules)}")

        # The gate: nothing allowlisted -> fails; everything planted allowlisted -> passes; one
        # stale entry more -> fails and says which line to remove.
        allow = work / "allow.txt"
        allow.write_text("")
        result = report("--gate", str(allow))
        if result.returncode != 1 or "GATE FAIL" not in result.stdout:
            failures.append("gate with an empty allowlist did not fail")
        lines = [f"{by_kernel[k]['mangled']} {rule} planted" for k, rules in EXPECTED.items()
                 for rule in sorted(rules)]
        allow.write_text("\n".join(lines) + "\n")
        result = report("--gate", str(allow))
        if result.returncode != 0:
            failures.append("gate with every planted failure allowlisted did not pass:\n" +
                            result.stdout)
        stale = f"{by_kernel['planted_clean_kernel']['mangled']} local-memory no longer true"
        allow.write_text("\n".join(lines + [stale]) + "\n")
        result = report("--gate", str(allow))
        if result.returncode != 1 or "no longer fails local-memory" not in result.stdout:
            failures.append("gate with a stale allowlist entry did not fail")

    for failure in failures:
        print("FAIL", failure)
    print("planted defects:", "all rules fire" if not failures else f"{len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
