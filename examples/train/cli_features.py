#!/usr/bin/env python3
"""warpfuse-train's flags doing what they say (ctest train_cli.features):

  cli_features.py PROGRAM SCRATCH_DIR

- --train-idx/--train-labels-idx/--test-idx/--test-labels-idx train on IDX files (one raw, one
  gzipped) and report a test accuracy;
- --header no, --delimiter ';' and RFC 4180 quoting read a headerless semicolon file;
- --early-stopping loss --patience 0 stops before --epochs when the loss stops improving (a
  learning rate of 0: it never improves), and --restore-best keeps the best weights;
- --checkpoint PATH --save-best-only writes PATH during training, and --load PATH evaluates it;
- SIGTERM during training exits 143 and leaves no PATH.tmp.* behind.
Exits 1 with a message on the first failure.
"""

import glob
import gzip
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time


def fail(message: str) -> None:
    print(f"cli_features.py: {message}", file=sys.stderr)
    sys.exit(1)


def run(program: str, *args: str, expect: int = 0) -> dict:
    result = subprocess.run([program, *args, "--device", "cpu", "--verbose", "0", "--json"],
                            capture_output=True, text=True, check=False)
    if result.returncode != expect:
        fail(f"{' '.join(args)}: exit {result.returncode}, expected {expect}: {result.stderr}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def idx(values, shape, element=0x08) -> bytes:
    return struct.pack(">BBBB", 0, 0, element, len(shape)) + \
        b"".join(struct.pack(">I", d) for d in shape) + bytes(values)


def main() -> None:
    program, scratch = sys.argv[1], sys.argv[2]
    os.makedirs(scratch, exist_ok=True)
    rng = random.Random(7)

    # IDX: 2 classes of 4x4 "images" (bright top half or bright bottom half).
    def images(n):
        pixels, labels = [], []
        for i in range(n):
            label = i % 2
            for r in range(4):
                for _ in range(4):
                    bright = (r < 2) == (label == 0)
                    pixels.append(rng.randint(180, 255) if bright else rng.randint(0, 60))
            labels.append(label)
        return pixels, labels

    train_pixels, train_labels = images(64)
    test_pixels, test_labels = images(32)
    paths = {name: os.path.join(scratch, name) for name in
             ["train-images", "train-labels.gz", "test-images", "test-labels"]}
    with open(paths["train-images"], "wb") as f:
        f.write(idx(train_pixels, [64, 4, 4]))
    with gzip.open(paths["train-labels.gz"], "wb") as f:
        f.write(idx(train_labels, [64]))
    with open(paths["test-images"], "wb") as f:
        f.write(idx(test_pixels, [32, 4, 4]))
    with open(paths["test-labels"], "wb") as f:
        f.write(idx(test_labels, [32]))
    report = run(program, "--train-idx", paths["train-images"], "--train-labels-idx",
                 paths["train-labels.gz"], "--test-idx", paths["test-images"],
                 "--test-labels-idx", paths["test-labels"], "--layers", "8:relu,2:softmax",
                 "--epochs", "30", "--lr", "0.05", "--batch-size", "8")
    if not report.get("test_accuracy", 0) >= 0.9:
        fail(f"IDX training reached test accuracy {report.get('test_accuracy')} (< 0.9)")

    # A headerless ';' file with quoted cells.
    csv_path = os.path.join(scratch, "quoted.csv")
    with open(csv_path, "w", encoding="utf-8") as f:
        for i in range(40):
            x = rng.uniform(-1, 1)
            f.write(f'"{x:.4f}";{x * 2:.4f};"{1 if x > 0 else 0}"\r\n')
    report = run(program, "--train", csv_path, "--header", "no", "--delimiter", ";",
                 "--layers", "4:relu,2:softmax", "--epochs", "40", "--lr", "0.05",
                 "--batch-size", "8")
    if not report.get("accuracy", 0) >= 0.9:
        fail(f"the quoted ';' file trained to accuracy {report.get('accuracy')} (< 0.9)")

    # Early stopping on a loss that cannot improve (learning rate ~0): stops after patience + 1.
    report = run(program, "--train", csv_path, "--header", "no", "--delimiter", ";",
                 "--layers", "4:relu,2:softmax", "--epochs", "50", "--lr", "1e-30",
                 "--early-stopping", "loss", "--patience", "1", "--restore-best")
    if not 1 <= report.get("epochs", 0) < 50:
        fail(f"--early-stopping ran {report.get('epochs')} of 50 epochs")

    # Checkpoint with save-best-only, then --load evaluates it.
    checkpoint = os.path.join(scratch, "best.wfnn")
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    run(program, "--train", csv_path, "--header", "no", "--delimiter", ";", "--layers",
        "4:relu,2:softmax", "--epochs", "5", "--validation-split", "0.25", "--checkpoint",
        checkpoint, "--save-best-only")
    if not os.path.exists(checkpoint):
        fail("--checkpoint --save-best-only wrote no file")
    report = run(program, "--load", checkpoint, "--test", csv_path, "--header", "no",
                 "--delimiter", ";")
    if "test_loss" not in report or report["test_loss"] is None:
        fail("--load of the checkpoint did not evaluate")

    # SIGTERM mid-training: exit 143, no temporary checkpoint left.
    process = subprocess.Popen([program, "--train-idx", paths["train-images"],
                                "--train-labels-idx", paths["train-labels.gz"], "--layers",
                                "64:relu,2:softmax", "--epochs", "100000", "--checkpoint",
                                checkpoint, "--device", "cpu", "--verbose", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)
    if code != -signal.SIGTERM:
        fail(f"SIGTERM: exit {code}, expected death by signal 15 (143 in a shell)")
    left = glob.glob(checkpoint + ".tmp.*")
    if left:
        fail(f"SIGTERM left {left}")
    print("cli_features.py: IDX, header/delimiter/quoting, early stopping, checkpoints, SIGTERM: ok")


if __name__ == "__main__":
    main()
