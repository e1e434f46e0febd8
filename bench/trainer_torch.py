#!/usr/bin/env python3
"""Trains the network of bench/trainer_bench.cu in PyTorch on the same GPU and prints samples/s next to
warpfuse's, read from trainer_bench's JSON.

  bench/trainer_torch.py build/bin/trainer_bench.json [--quick] [--epochs N] [--no-compile]
                         [--json trainer_torch.json]

The network, as trainer_bench: 784-256-128-10, Dense relu, Dense relu, Dense softmax trained with
sparse_categorical_crossentropy (in PyTorch: Linear layers and F.cross_entropy on the logits, which is
what Keras' softmax + sparse CE computes), kernels glorot_uniform (nn.init.xavier_uniform_), biases
zero, Adam with Keras' defaults (lr 1e-3, betas 0.9 and 0.999, eps 1e-7), a fresh shuffle of the
samples every epoch, the batch sizes and sample count of the JSON (32 ... 4096 and 60000 by default),
synthetic Fashion-MNIST-shaped data (784 features uniform in [0, 1), labels from a fixed random linear
teacher). Each batch size trains 1 warm-up epoch and then --epochs timed ones (default: the JSON's
timed epochs; 3 with --quick), each timed with CUDA events around the epoch and the loss read at the
end as Keras does (loss.item() once per epoch), the median epoch giving samples/s. Variants: eager,
and torch.compile of the training step where it works (skipped with the reason otherwise, or with
--no-compile). ratio = warpfuse samples/s / torch samples/s (> 1: warpfuse faster).

The data and batches live on the GPU in both (warpfuse::nn uploads x once; here x is a CUDA tensor
and each batch an index_select of it), so neither side times host-to-device copies per step.

Where torch cannot be imported, or sees no CUDA device, it says so and exits 0.
"""

import argparse
import json
import os
import statistics
import sys
from typing import Dict, List, Optional, Tuple

FEATURES, CLASSES = 784, 10
DEFAULT_BATCHES = [32, 64, 128, 256, 512, 1024, 4096]


def read_warpfuse(path: str) -> Tuple[Dict[str, str], Dict[int, dict]]:
    """trainer_bench's JSON: its context and, per batch size, the case's counters."""
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict) or "benchmarks" not in document:
        raise ValueError(f"{path}: not a Google Benchmark JSON file (no 'benchmarks')")
    cases: Dict[int, dict] = {}
    for entry in document["benchmarks"]:
        name = entry.get("run_name") or entry.get("name", "")
        parts = name.split("/")
        if len(parts) < 3 or parts[0] != "trainer" or entry.get("error_occurred"):
            continue
        try:
            batch = int(parts[2])
        except ValueError:
            continue
        cases[batch] = entry
    context = {key: str(value) for key, value in document.get("context", {}).items()}
    return context, cases


def import_torch() -> Tuple[Optional[object], str]:
    """(torch, "") when torch imports and sees a CUDA device, else (None, why not)."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except Exception as error:  # noqa: BLE001 - any import failure means "no torch here"
        return None, f"torch is not importable ({type(error).__name__}: {error})"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} sees no CUDA device"
    return torch, ""


def synthetic_data(torch, samples: int):
    generator = torch.Generator(device="cuda")
    generator.manual_seed(20261129)
    x = torch.rand(samples, FEATURES, device="cuda", generator=generator)
    teacher = torch.rand(FEATURES, CLASSES, device="cuda", generator=generator) - 0.5
    y = (x @ teacher).argmax(dim=1)
    return x, y


def build_model(torch):
    nn = torch.nn
    model = nn.Sequential(nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, CLASSES)).cuda()
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    return model, optimizer


def train(torch, x, y, batch: int, epochs: int, compiled: bool) -> Tuple[List[float], float, float]:
    """Trains 1 + epochs epochs; returns the timed epochs' seconds, the last loss and accuracy."""
    functional = torch.nn.functional
    model, optimizer = build_model(torch)

    def step(xb, yb):
        optimizer.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = functional.cross_entropy(logits, yb)
        loss.backward()
        optimizer.step()
        correct = (logits.argmax(dim=1) == yb).sum()
        return loss.detach(), correct

    if compiled:
        step = torch.compile(step)
    samples = x.shape[0]
    generator = torch.Generator(device="cuda")
    generator.manual_seed(2)
    seconds: List[float] = []
    last_loss, last_accuracy = float("nan"), float("nan")
    for epoch in range(1 + epochs):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        order = torch.randperm(samples, device="cuda", generator=generator)
        loss_sum = torch.zeros((), device="cuda")
        correct_sum = torch.zeros((), device="cuda", dtype=torch.int64)
        for begin in range(0, samples, batch):
            index = order[begin:begin + batch]
            loss, correct = step(x.index_select(0, index), y.index_select(0, index))
            loss_sum += loss * index.numel()
            correct_sum += correct
        last_loss = (loss_sum / samples).item()  # one synchronisation per epoch, as Keras' logs
        last_accuracy = correct_sum.item() / samples
        stop.record()
        stop.synchronize()
        if epoch > 0:
            seconds.append(start.elapsed_time(stop) * 1e-3)
    return seconds, last_loss, last_accuracy


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        description="Train trainer_bench's MLP in PyTorch and compare samples/s with warpfuse's.")
    parser.add_argument("json", help="JSON written by trainer_bench (--benchmark_out=...)")
    parser.add_argument("--quick", action="store_true", help="3 timed epochs per batch size")
    parser.add_argument("--epochs", type=int, help="timed epochs per batch size")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--json", dest="json_out", metavar="PATH", help="write the results here")
    args = parser.parse_args(argv)

    try:
        context, cases = read_warpfuse(args.json)
    except (OSError, ValueError) as error:
        print(f"trainer_torch.py: cannot read {args.json}: {error}", file=sys.stderr)
        return 2

    torch, why_not = import_torch()
    if torch is None:
        print(f"trainer_torch.py: {why_not}; nothing to compare (install PyTorch with CUDA and run "
              "it on the GPU that produced the JSON)")
        return 0

    batches = sorted(cases) or DEFAULT_BATCHES
    samples = int(next((float(c.get("samples", 0)) for c in cases.values()), 0)) or 60000
    timed = args.epochs or (3 if args.quick else int(
        next((c.get("iterations", 5) for c in cases.values()), 5)))
    device = torch.cuda.get_device_name()
    if context.get("device_name") and context["device_name"] != device:
        print(f"note: {os.path.basename(args.json)} was measured on {context['device_name']}, "
              f"this is {device}")
    torch.backends.cuda.matmul.allow_tf32 = False  # warpfuse::nn trains in fp32
    torch.backends.cudnn.allow_tf32 = False
    x, y = synthetic_data(torch, samples)

    variants = ["eager"] if args.no_compile else ["eager", "compile"]
    print(f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) on {device}; {samples} samples, "
          f"1 warm-up + {timed} timed epochs; ratio = warpfuse samples/s / torch samples/s")
    header = (f"{'batch':>6}  {'warpfuse/s':>11}{'acc':>6}  " +
              "  ".join(f"{v + '/s':>11}{'acc':>6}{'ratio':>7}" for v in variants))
    print(header)
    print("-" * len(header))
    results = []
    compile_broken: Optional[str] = None
    for batch in batches:
        case = cases.get(batch, {})
        ours = float(case.get("samples_per_s", 0.0))
        line = f"{batch:>6}  {ours:>11.0f}{float(case.get('final_accuracy', float('nan'))):>6.3f}  "
        cells = []
        for variant in variants:
            if variant == "compile" and compile_broken:
                cells.append(f"{'n/a':>11}{'':>6}{'':>7}")
                continue
            try:
                seconds, loss, accuracy = train(torch, x, y, batch, timed, variant == "compile")
            except Exception as error:  # noqa: BLE001 - torch.compile fails in many ways
                if variant == "compile":
                    compile_broken = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
                    cells.append(f"{'n/a':>11}{'':>6}{'':>7}")
                    continue
                raise
            rate = samples / statistics.median(seconds)
            ratio = ours / rate if ours > 0 else float("nan")
            cells.append(f"{rate:>11.0f}{accuracy:>6.3f}{ratio:>7.2f}")
            results.append({"batch": batch, "variant": variant, "samples": samples,
                            "torch_samples_per_s": rate, "torch_epoch_s": seconds,
                            "torch_final_loss": loss, "torch_final_accuracy": accuracy,
                            "warpfuse_samples_per_s": ours, "ratio": ratio})
        print(line + "  ".join(cells))
        torch.cuda.empty_cache()
    if compile_broken:
        print(f"torch.compile: not measured ({compile_broken})")
    if args.json_out:
        document = {
            "context": {"torch_version": torch.__version__, "torch_cuda": str(torch.version.cuda),
                        "device_name": device, "timed_epochs": timed, "samples": samples,
                        "warpfuse_json": os.path.basename(args.json),
                        "method": "CUDA events around each epoch (shuffle, batches, one loss read); "
                                  "median of the timed epochs"},
            "results": results,
        }
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
