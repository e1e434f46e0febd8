#!/usr/bin/env python3
"""The CPU trainer against its peers: warpfuse-train (Device::cpu), PyTorch eager and Keras 3 on JAX
train the same three Dense networks on the same data with the same Adam, interleaved, and the
script prints each one's steady epoch time, the same-run ratio warpfuse / peer (< 1: warpfuse is
faster) and the test accuracies.

  bench/trainer_cpu_peers.py [--warpfuse build/bin/warpfuse-train] [--epochs 3] [--rounds 2]
                             [--networks demo,small,wide] [--precision fp32,bf16]
                             [--json out.json]

Networks (relu hidden layers, softmax output fused with sparse categorical cross-entropy, Adam with
lr 1e-3, beta 0.9 / 0.999, epsilon 1e-7 everywhere):
  demo   784-256-128-10,   batch 64,  Fashion-MNIST (the README's network)
  small  100-64-64-10,     batch 32,  20000 + 5000 samples from a seeded random teacher
  wide   784-1024-1024-10, batch 256, Fashion-MNIST
Fashion-MNIST comes from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, or
--fashion-dir); pixels are scaled to [0, 1] and standardised per feature with the training set's
mean and standard deviation (warpfuse-train --standardize does the same). The small network's data
is written to CSV files for warpfuse-train and handed to the peers as arrays.

Method: each framework trains in its own process (this script run with --worker), one after the
other within a round, rounds repeated --rounds times; a run's epoch time is the median of its
epochs after the first (the first holds JIT compilation and warm-up), a framework's figure is the
median over rounds. Every framework uses its default threading (warpfuse-train: one OpenBLAS thread
unless OPENBLAS_NUM_THREADS is set; --threads N sets OPENBLAS_NUM_THREADS, torch.set_num_threads and
XLA's intra-op threads to N for all).

--precision picks how the Dense layers multiply, for every framework alike (a comma list runs each):
  fp32  everything fp32 (the default);
  bf16  mixed precision with bf16 GEMM operands and fp32 parameters: warpfuse-train
        --matmul-precision bf16 (AMX tiles where the CPU has them), PyTorch's
        torch.autocast("cpu", torch.bfloat16) around forward and loss (oneDNN), Keras'
        "mixed_bfloat16" policy with a float32 output layer (its mixed-precision guide).
Ratios compare warpfuse with the peers at the same precision; with both, a line also compares
warpfuse bf16 with the peers' fp32 default. A peer that is not installed is reported as such; the script
then compares with the others and exits 0. The goal line: warpfuse's epoch time <= 0.67 x the
faster peer's on every network.
"""

import argparse
import csv
import gzip
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

NETWORKS = {
    "demo": {"hidden": [256, 128], "batch": 64, "data": "fashion"},
    "small": {"hidden": [64, 64], "batch": 32, "data": "small"},
    "wide": {"hidden": [1024, 1024], "batch": 256, "data": "fashion"},
}
FRAMEWORKS = ["warpfuse", "torch", "keras"]
GOAL_RATIO = 0.67
SMALL_TRAIN, SMALL_TEST, SMALL_FEATURES, SMALL_CLASSES = 20000, 5000, 100, 10
HERE = os.path.dirname(os.path.abspath(__file__))


# --- data ------------------------------------------------------------------------------------------

def read_idx(path: str):
    """The array of an IDX file (gzipped or not) as (shape, bytes)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return shape, data[4 + 4 * dims:]


def fashion(fashion_dir: str):
    """(x_train, y_train, x_test, y_test) as numpy arrays, standardised per feature."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    parts = []
    for images, labels in (("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                           ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
        shape, pixels = read_idx(os.path.join(fashion_dir, images))
        _, classes = read_idx(os.path.join(fashion_dir, labels))
        x = np.frombuffer(pixels, dtype=np.uint8).reshape(shape[0], -1).astype(np.float32) / 255.0
        parts.append((x, np.frombuffer(classes, dtype=np.uint8).astype(np.int64)))
    (x_train, y_train), (x_test, y_test) = parts
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    return ((x_train - mean) / std).astype(np.float32), y_train, \
        ((x_test - mean) / std).astype(np.float32), y_test


def small_data():
    """A seeded teacher's classification problem: x standard normal, y = argmax of a random
    two-layer network's output plus a little noise."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(20261205)
    n = SMALL_TRAIN + SMALL_TEST
    x = rng.standard_normal((n, SMALL_FEATURES)).astype(np.float32)
    w1 = rng.standard_normal((SMALL_FEATURES, 32)) / np.sqrt(SMALL_FEATURES)
    w2 = rng.standard_normal((32, SMALL_CLASSES)) / np.sqrt(32)
    logits = np.tanh(x @ w1) @ w2 + 0.1 * rng.standard_normal((n, SMALL_CLASSES))
    y = logits.argmax(axis=1).astype(np.int64)
    return x[:SMALL_TRAIN], y[:SMALL_TRAIN], x[SMALL_TRAIN:], y[SMALL_TRAIN:]


def dataset(name: str, fashion_dir: str):
    return fashion(fashion_dir) if name == "fashion" else small_data()


def write_csv(path: str, x, y) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(x.shape[1])] + ["label"])
        for row, label in zip(x, y):
            writer.writerow([f"{v:.7g}" for v in row] + [int(label)])


# --- the workers (one process per training run) ---------------------------------------------------

def steady(epoch_seconds: List[float]) -> float:
    """The median epoch time after the first epoch (all of them when there is one)."""
    later = epoch_seconds[1:] or epoch_seconds
    return statistics.median(later)


def run_torch(spec, data, epochs: int, threads: Optional[int], precision: str) -> Dict:
    import time  # pylint: disable=import-outside-toplevel
    import torch  # pylint: disable=import-outside-toplevel
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(1)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in data)
    layers, inputs = [], x_train.shape[1]
    for units in spec["hidden"]:
        layers += [torch.nn.Linear(inputs, units), torch.nn.ReLU()]
        inputs = units
    layers.append(torch.nn.Linear(inputs, 10))
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()  # softmax fused with the loss, as warpfuse does
    batch = spec["batch"]
    epoch_seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(x_train.shape[0])
        for begin in range(0, x_train.shape[0], batch):
            index = order[begin:begin + batch]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = loss_fn(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
        epoch_seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    return {"epoch_seconds": epoch_seconds, "test_accuracy": accuracy,
            "version": torch.__version__, "threads": torch.get_num_threads()}


def run_keras(spec, data, epochs: int, threads: Optional[int], precision: str) -> Dict:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if threads:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
                                   f" intra_op_parallelism_threads={threads}")
    import time  # pylint: disable=import-outside-toplevel
    import keras  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(1)
    if precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    x_train, y_train, x_test, y_test = data
    model = keras.Sequential([keras.Input(shape=(x_train.shape[1],))] +
                             [keras.layers.Dense(u, activation="relu") for u in spec["hidden"]] +
                             [keras.layers.Dense(10, activation="softmax", dtype="float32")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self.mark = [], 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.mark = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.mark)

    clock = Clock()
    model.fit(x_train, y_train, batch_size=spec["batch"], epochs=epochs, shuffle=True, verbose=0,
              callbacks=[clock])
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    return {"epoch_seconds": clock.seconds, "test_accuracy": float(accuracy),
            "version": f"keras {keras.__version__} on {keras.backend.backend()}"}


def run_warpfuse(spec, net: str, epochs: int, threads: Optional[int], args) -> Dict:
    command = [args.warpfuse, "--device", "cpu", "--matmul-precision", args.precision,
               "--standardize", "--optimizer", "adam",
               "--lr", "0.001", "--epochs", str(epochs), "--batch-size", str(spec["batch"]),
               "--seed", "1", "--verbose", "0", "--json",
               "--layers", ",".join([f"{u}:relu" for u in spec["hidden"]] + ["10:softmax"])]
    if spec["data"] == "fashion":
        command += ["--dataset", "fashion-mnist"]
    else:
        command += ["--train", os.path.join(args.scratch, "small_train.csv"),
                    "--test", os.path.join(args.scratch, "small_test.csv")]
    env = dict(os.environ)
    if threads:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"warpfuse-train exited {result.returncode}: {result.stderr.strip()}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {"epoch_seconds": report["epoch_seconds"], "test_accuracy": report["test_accuracy"],
            "version": "warpfuse-train", "threads": threads or 1}


def worker(args) -> int:
    spec = NETWORKS[args.net]
    try:
        if args.worker == "warpfuse":
            report = run_warpfuse(spec, args.net, args.epochs, args.threads, args)
        else:
            data = dataset(spec["data"], args.fashion_dir)
            runner = run_torch if args.worker == "torch" else run_keras
            report = runner(spec, data, args.epochs, args.threads, args.precision)
    except ImportError as error:
        report = {"missing": f"{args.worker} is not installed ({error})"}
    print(json.dumps(report))
    return 0


# --- the driver ------------------------------------------------------------------------------------

def run_worker(framework: str, net: str, precision: str, args) -> Dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--net", net,
               "--precision", precision,
               "--epochs", str(args.epochs), "--warpfuse", args.warpfuse, "--scratch",
               args.scratch, "--fashion-dir", args.fashion_dir]
    if args.threads:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        return {"error": (result.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1])


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warpfuse", default=os.path.join(HERE, "..", "build", "bin",
                                                           "warpfuse-train"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--networks", default="demo,small,wide")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--precision", default="fp32",
                        help="fp32, bf16 or both (fp32,bf16): how the Dense layers multiply")
    parser.add_argument("--threads", type=int, help="the same thread count for every framework")
    parser.add_argument("--fashion-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--json", dest="json_out", help="write every run and the summary here")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--net", choices=sorted(NETWORKS), help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    networks = [n for n in args.networks.split(",") if n]
    frameworks = [f for f in args.frameworks.split(",") if f]
    precisions = [p for p in args.precision.split(",") if p]
    for precision in precisions:
        if precision not in ("fp32", "bf16"):
            parser.error(f"unknown precision '{precision}' (fp32, bf16)")
    for name in networks + frameworks:
        if name not in NETWORKS and name not in FRAMEWORKS:
            parser.error(f"unknown network or framework '{name}'")
    if not os.path.exists(args.warpfuse):
        parser.error(f"{args.warpfuse} not found (build the warpfuse-train target)")
    if any(NETWORKS[n]["data"] == "fashion" for n in networks) and \
            not os.path.isdir(args.fashion_dir):
        print(f"trainer_cpu_peers.py: {args.fashion_dir} not found (apt-get install "
              "dataset-fashion-mnist); nothing to compare")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        args.scratch = scratch
        if "small" in networks:
            x_train, y_train, x_test, y_test = small_data()
            write_csv(os.path.join(scratch, "small_train.csv"), x_train, y_train)
            write_csv(os.path.join(scratch, "small_test.csv"), x_test, y_test)
        runs: Dict[Tuple[str, str, str], List[Dict]] = {}
        for round_index in range(args.rounds):
            for net in networks:
                for precision in precisions:
                    for framework in frameworks:
                        report = run_worker(framework, net, precision, args)
                        runs.setdefault((net, framework, precision), []).append(report)
                        status = report.get("error") or report.get("missing") or \
                            f"epoch {steady(report['epoch_seconds']):.3f} s, test accuracy " \
                            f"{report['test_accuracy']:.4f}"
                        print(f"round {round_index + 1}: {net:<6} {precision} {framework:<9} "
                              f"{status}", flush=True)

    print()
    header = (f"{'network':<8}{'prec':<6}{'framework':<10}{'epoch s':>9}{'test acc':>10}"
              f"{'warpfuse/this':>15}  version")
    print("steady epoch time (median of epochs 2.., median over rounds); ratio < 1: warpfuse faster")
    print(header)
    summary, goals = [], []
    all_met = True
    for net in networks:
        figures = {}
        for precision in precisions:
            for framework in frameworks:
                good = [r for r in runs[(net, framework, precision)] if "epoch_seconds" in r]
                if good:
                    figures[(framework, precision)] = (
                        statistics.median(steady(r["epoch_seconds"]) for r in good),
                        statistics.median(r["test_accuracy"] for r in good),
                        good[0].get("version", ""))
        met_any = False
        for precision in precisions:
            mine = figures.get(("warpfuse", precision))
            for framework in frameworks:
                if (framework, precision) not in figures:
                    reason = next((r.get("missing") or r.get("error")
                                   for r in runs[(net, framework, precision)]), "no run")
                    print(f"{net:<8}{precision:<6}{framework:<10}  {reason}")
                    continue
                seconds, accuracy, version = figures[(framework, precision)]
                ratio = mine[0] / seconds if mine else float("nan")
                print(f"{net:<8}{precision:<6}{framework:<10}{seconds:>9.3f}{accuracy:>10.4f}"
                      f"{ratio:>15.2f}  {version}")
                summary.append({"network": net, "precision": precision, "framework": framework,
                                "epoch_seconds": seconds, "test_accuracy": accuracy,
                                "warpfuse_over_this": ratio, "version": version})
            peers = [figures[(f, precision)][0] for f in frameworks
                     if f != "warpfuse" and (f, precision) in figures]
            if mine and peers:
                ratio = mine[0] / min(peers)
                met = ratio <= GOAL_RATIO
                met_any = met_any or met
                goals.append({"network": net, "precision": precision, "ratio": ratio, "met": met})
                print(f"goal {net} {precision}: warpfuse {ratio:.2f} x the faster peer at {precision} "
                      f"(<= {GOAL_RATIO}: {'met' if met else 'NOT met'})")
        mine_bf16 = figures.get(("warpfuse", "bf16"))
        fp32_peers = [figures[(f, "fp32")][0] for f in frameworks
                      if f != "warpfuse" and (f, "fp32") in figures]
        if mine_bf16 and fp32_peers:
            ratio = mine_bf16[0] / min(fp32_peers)
            print(f"      {net} warpfuse bf16 vs the faster peer at its fp32 default: {ratio:.2f}")
        all_met = all_met and met_any
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump({"runs": {f"{n}/{f}/{p}": r for (n, f, p), r in runs.items()},
                       "summary": summary, "goals": goals, "goal_met": all_met}, handle,
                      indent=1)
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
