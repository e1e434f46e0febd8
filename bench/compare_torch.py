#!/usr/bin/env python3
"""Times PyTorch on the shapes of warpfuse benchmark JSON files, the same way, and prints a side-by-side
table with warpfuse's numbers read from the JSON.

  bench/compare_torch.py softmax_bench.json activation_bench.json loss_bench.json [--quick]
                         [--json torch.json] [--impl automatic] [--launch-ahead-cycles N]

For every case of the JSON files whose implementation is --impl (default: automatic, warpfuse's own
choice) and whose op PyTorch offers (OPS below), it builds the same rows x cols inputs in the same dtype,
rotated over the same number of sets, makes --warmup untimed calls, then --repeats calls each timed by
a pair of CUDA events on the current stream and synchronised, and takes the median: the method of
bench/bench_common.h. Before each timed call a torch.cuda._sleep keeps the GPU busy while Python
enqueues the call (--launch-ahead-cycles; 0 turns it off), so that what is timed is the GPU's work and
not Python's or autograd's dispatch. Bytes moved are warpfuse's count for the case (each input read
once, each output written once), so GB/s compare directly: for torch it is an effective bandwidth, the
traffic of the fused op over torch's time. ratio = torch median time / warpfuse median time: above 1,
warpfuse is faster. Other files (the trainer bench's) are read and have nothing to compare.

What torch runs per warpfuse op:
  softmax, log_softmax                aten._softmax.out / aten._log_softmax.out
  softmax_backward, log_softmax_...   the kernel autograd runs, from y and dy to dx (out= overloads)
  <act>_forward                       f(x): aten.<act>.out (F.prelu for prelu), functional as fallback
  <act>_bias_forward                  f(x + bias) eager and unfused: aten.add.out into pre, then f
  <act>_backward                      the aten backward kernel autograd runs (threshold_backward,
                                      gelu_backward, ...; _prelu_kernel_backward for prelu)
  <act>_bias_backward                 that kernel, then dbias = dx.sum(0) (prelu: + dslope)
  cross_entropy                       F.cross_entropy(x, t) + loss.backward(), forward and backward
                                      in one timed call, as warpfuse's fused op (aten kernels directly
                                      where autograd fails)
  mse_loss, bce_with_logits_loss      F.mse_loss / F.binary_cross_entropy_with_logits + backward
  adam (f32)                          torch.optim.Adam(fused=True, else foreach).step() on the list
  linear_cross_entropy (chunked)      F.cross_entropy(F.linear(h, W, b), t) + loss.backward(), with
                                      torch.cuda.max_memory_allocated beside the time (torch_peak_mib)
PyTorch is called through out= kernels where they exist, so that no allocation is timed. The
activations are those of include/warpfuse/ref/activation.h with ActivationParams' defaults:
F.relu, F.leaky_relu(0.01), F.prelu (a weight per column), F.elu(1), F.selu,
F.gelu(approximate='none' / 'tanh'), F.silu, F.softplus(beta 1, threshold 20), torch.sigmoid,
torch.tanh.

Where torch cannot be imported, or sees no CUDA device, it says so and exits 0.
"""

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import bench_results

DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}
LAUNCH_AHEAD_CYCLES = 4_000_000  # about 2 ms of torch.cuda._sleep at 2 GHz: see time_median


# --- the ops PyTorch is timed on ----------------------------------------------------------------------
# Each entry builds, for one shape, the inputs of every rotation set and returns (call, how), where
# call(set) enqueues the op for that set on the current stream and `how` names what is timed. Bytes moved
# come from the warpfuse case: GB/s is warpfuse's minimum traffic over torch's time (an effective
# bandwidth; torch's unfused forms move more). DEVICE is a module variable only so that the calls can be
# exercised on the CPU by a test without a GPU.

DEVICE = "cuda"

SELU_ALPHA = 1.6732632423543772848170429916717  # as include/warpfuse/ref/activation.h and PyTorch
SELU_SCALE = 1.0507009873554804934193349852946


def _uniform(torch, rows, cols, dtype, low, high, generator):
    values = torch.empty(rows, cols, device=DEVICE, dtype=torch.float32)
    values.uniform_(low, high, generator=generator)
    return values.to(dtype)


def _first_working(candidates: List[Tuple[str, Callable[[int], object]]]):
    """The first (how, call) whose call(0) runs: the out= overloads differ between torch versions."""
    errors = []
    for how, call in candidates:
        try:
            call(0)
            return call, how
        except (RuntimeError, TypeError, AttributeError, ValueError) as error:
            errors.append(f"{how}: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
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


# --- activations (bench/activation_bench.cu) ------------------------------------------------------
# Cases "<kind>_<form>/...": forward y = f(x); backward dx = dy f'(.) from the saved x or y (the kernel
# autograd runs, aten.*_backward); bias_forward f(x + bias) eager and unfused: x + bias into a
# pre-activation tensor, then f over it (what autograd keeps for the backward anyway); bias_backward:
# dx as backward, then dbias = dx.sum(0) (and for prelu dslope = the slope-gradient terms summed over
# rows), as autograd does for act(x + bias). Parameters are ActivationParams' defaults (PyTorch's).

class _Kind:
    """One activation: its functional form, its aten forward (out= overload, extra arguments) and the
    aten backward kernel with the arguments it takes from (dy, saved)."""

    def __init__(self, text, functional, forward_args, backward, from_output, forward_name=None,
                 backward_kwargs=None):
        self.text = text  # "F.gelu({}, approximate='tanh')" with {} for the input
        self.functional = functional  # (torch, x, slope) -> y
        self.forward_name = forward_name  # aten op with an out= overload, None: functional only
        self.forward_args = forward_args  # its arguments after x
        self.backward = backward  # (aten op name, (dy, saved) -> positional arguments)
        self.backward_kwargs = backward_kwargs or {}
        self.from_output = from_output  # the backward reads y = f(x), not x


def _functional(name, **kwargs):
    return lambda torch, x, slope: getattr(torch.nn.functional, name)(x, **kwargs)


KINDS: Dict[str, _Kind] = {
    "relu": _Kind("F.relu({})", _functional("relu"), (), (
        "threshold_backward", lambda dy, y: (dy, y, 0)), True, "relu"),
    "leaky_relu": _Kind("F.leaky_relu({}, 0.01)", _functional("leaky_relu", negative_slope=0.01),
                        (0.01,), ("leaky_relu_backward", lambda dy, y: (dy, y, 0.01, True)), True,
                        "leaky_relu"),
    "prelu": _Kind("F.prelu({}, weight[cols])",
                   lambda torch, x, slope: torch.nn.functional.prelu(x, slope), (), None, False),
    "elu": _Kind("F.elu({}, 1.0)", _functional("elu", alpha=1.0), (1.0, 1.0, 1.0), (
        "elu_backward", lambda dy, x: (dy, 1.0, 1.0, 1.0, False, x)), False, "elu"),
    # F.selu is elu with SELU's alpha and scale (at::selu calls at::elu).
    "selu": _Kind("F.selu({})", _functional("selu"), (SELU_ALPHA, SELU_SCALE, 1.0), (
        "elu_backward", lambda dy, x: (dy, SELU_ALPHA, SELU_SCALE, 1.0, False, x)), False, "elu"),
    "gelu": _Kind("F.gelu({})", _functional("gelu", approximate="none"), (), (
        "gelu_backward", lambda dy, x: (dy, x)), False, "gelu",
        backward_kwargs={"approximate": "none"}),
    "gelu_tanh": _Kind("F.gelu({}, approximate='tanh')", _functional("gelu", approximate="tanh"),
                       (), ("gelu_backward", lambda dy, x: (dy, x)), False, "gelu",
                       backward_kwargs={"approximate": "tanh"}),
    "silu": _Kind("F.silu({})", _functional("silu"), (), (
        "silu_backward", lambda dy, x: (dy, x)), False, "silu"),
    "softplus": _Kind("F.softplus({}, 1.0, 20.0)", _functional("softplus", beta=1.0, threshold=20.0),
                      (1.0, 20.0), ("softplus_backward", lambda dy, x: (dy, x, 1.0, 20.0)), False,
                      "softplus"),
    "sigmoid": _Kind("torch.sigmoid({})", lambda torch, x, slope: torch.sigmoid(x), (), (
        "sigmoid_backward", lambda dy, y: (dy, y)), True, "sigmoid"),
    "tanh": _Kind("torch.tanh({})", lambda torch, x, slope: torch.tanh(x), (), (
        "tanh_backward", lambda dy, y: (dy, y)), True, "tanh"),
}
# gelu's approximate is keyword-only in aten.gelu.out.
FORWARD_KWARGS = {"gelu": {"approximate": "none"}, "gelu_tanh": {"approximate": "tanh"}}

FORMS = ("bias_backward", "bias_forward", "backward", "forward")  # longest suffix first


def split_activation_op(op: str) -> Optional[Tuple[str, str]]:
    """(kind, form) of an activation_bench op name such as "gelu_tanh_bias_forward", else None."""
    for form in FORMS:
        if op.endswith("_" + form) and op[:-len(form) - 1] in KINDS:
            return op[:-len(form) - 1], form
    return None


def activation(kind_name: str, form: str):
    kind = KINDS[kind_name]
    forward_kwargs = FORWARD_KWARGS.get(kind_name, {})

    def build(torch, rows, cols, dtype, sets, generator):
        aten = torch.ops.aten
        xs = [_uniform(torch, rows, cols, dtype, -4.0, 4.0, generator) for _ in range(sets)]
        slopes = [_uniform(torch, 1, cols, dtype, 0.05, 0.3, generator).reshape(cols)
                  for _ in range(sets)]
        if form in ("forward", "bias_forward"):
            ys = [torch.empty_like(x) for x in xs]
            if form == "forward":
                inputs = xs
                source, fused_text = "x", ""
                prepare = lambda s: None  # noqa: E731
            else:
                biases = [_uniform(torch, 1, cols, dtype, -1.0, 1.0, generator).reshape(cols)
                          for _ in range(sets)]
                inputs = [torch.empty_like(x) for x in xs]  # pre = x + bias, kept as autograd does
                source, fused_text = "x + bias", "x + bias (aten.add.out), then "
                prepare = lambda s: aten.add.out(xs[s], biases[s], out=inputs[s])  # noqa: E731
            candidates = []
            if kind.forward_name is not None:
                op = getattr(aten, kind.forward_name).out

                def out_call(s):
                    prepare(s)
                    op(inputs[s], *kind.forward_args, **forward_kwargs, out=ys[s])
                note = " (selu's alpha and scale, as F.selu)" if kind_name == "selu" else ""
                candidates.append((f"{fused_text}aten.{kind.forward_name}.out{note}", out_call))
            if form == "forward":
                candidates.append((kind.text.format(source) + " (allocates)",
                                   lambda s: kind.functional(torch, xs[s], slopes[s])))
            else:
                candidates.append((kind.text.format(source) + " (allocates)",
                                   lambda s: kind.functional(torch, xs[s] + biases[s], slopes[s])))
            return _first_working(candidates)

        # backward, bias_backward: saved is x (the pre-activation for the bias form) or y = f(x).
        dys = [_uniform(torch, rows, cols, dtype, -1.0, 1.0, generator) for _ in range(sets)]
        if kind.from_output:
            saved = [kind.functional(torch, x, w) for x, w in zip(xs, slopes)]
            del xs[:]
        else:
            saved = xs
        bias_grad = form == "bias_backward"
        dbiases = [torch.empty(cols, device=DEVICE, dtype=dtype) for _ in range(sets)]
        if kind_name == "prelu":
            # The kernel autograd runs for prelu: dx and the per-element slope-gradient terms
            # (summed over rows by autograd into the slope's gradient).
            op = aten._prelu_kernel_backward
            weights = [w.reshape(1, cols) for w in slopes]
            dslopes = [torch.empty(cols, device=DEVICE, dtype=dtype) for _ in range(sets)]

            def prelu_call(s):
                dx, dweight = op(dys[s], saved[s], weights[s])
                if bias_grad:
                    torch.sum(dx, 0, out=dbiases[s])
                    torch.sum(dweight, 0, out=dslopes[s])
            how = "aten._prelu_kernel_backward (dx and the slope terms, allocates)"
            if bias_grad:
                how += ", then dx.sum(0), dslope_terms.sum(0)"
            return _first_working([(how, prelu_call)])
        name, arguments = kind.backward
        op = getattr(aten, name)
        dxs = [torch.empty_like(dy) for dy in dys]
        sum_text = ", then dx.sum(0)" if bias_grad else ""

        def out_call(s):
            op.grad_input(*arguments(dys[s], saved[s]), **kind.backward_kwargs, grad_input=dxs[s])
            if bias_grad:
                torch.sum(dxs[s], 0, out=dbiases[s])

        def allocating_call(s):
            dx = op(*arguments(dys[s], saved[s]), **kind.backward_kwargs)
            if bias_grad:
                torch.sum(dx, 0, out=dbiases[s])
        return _first_working([
            (f"aten.{name}.grad_input{sum_text}", out_call),
            (f"aten.{name} (allocates){sum_text}", allocating_call),
        ])
    return build


# --- losses (bench/loss_bench.cu) ---------------------------------------------------------------
# cross_entropy/<dtype>/<impl>/<C>: warpfuse's fused forward + backward (mean loss and dlogits) against
# F.cross_entropy (mean) on logits that require grad, then loss.backward(): the forward and the backward
# kernels autograd runs (log_softmax, nll_loss, nll_loss_backward, log_softmax_backward) in one timed
# call. Where autograd fails, the same aten kernels are called directly. The int64 targets are the same
# for every set, as in the bench. The loss and its gradient are torch's (g = 1 on the mean, where the
# bench scales the gradient by rows: a factor, not a different amount of work). mse_loss and
# bce_with_logits_loss: F.mse_loss / F.binary_cross_entropy_with_logits (mean) + backward to pred.

def _autograd_loss(torch, xs, loss_of):
    """call(s): loss_of(s, x) on xs[s] as a leaf requiring grad, then loss.backward(); the previous
    gradient is dropped first so that backward writes a fresh one rather than accumulating."""
    leaves = [x.requires_grad_(True) for x in xs]

    def call(s):
        leaves[s].grad = None
        loss_of(s, leaves[s]).backward()
    return call


def cross_entropy():
    def build(torch, rows, cols, dtype, sets, generator):
        aten = torch.ops.aten
        functional = torch.nn.functional
        xs = [_uniform(torch, rows, cols, dtype, -4.0, 4.0, generator) for _ in range(sets)]
        targets = torch.randint(0, cols, (rows,), device=DEVICE, dtype=torch.int64,
                                generator=generator)
        one = torch.ones((), device=DEVICE, dtype=dtype)
        mean = 1  # at::Reduction::Mean
        buffers: Dict[str, list] = {}  # the aten path's outputs, allocated only if it is used

        def aten_call(s):
            if not buffers:
                buffers["log_p"] = [torch.empty_like(x) for x in xs]
                buffers["dx"] = [torch.empty_like(x) for x in xs]
            x, log_p, dx = xs[s].detach(), buffers["log_p"][s], buffers["dx"][s]
            aten._log_softmax.out(x, 1, False, out=log_p)
            _, total_weight = aten.nll_loss_forward(log_p, targets, None, mean, -100)
            grad = aten.nll_loss_backward(one, log_p, targets, None, mean, -100, total_weight)
            aten._log_softmax_backward_data.out(grad, log_p, 1, dtype, out=dx)
        return _first_working([
            ("F.cross_entropy(x, t) + loss.backward()",
             _autograd_loss(torch, xs, lambda s, x: functional.cross_entropy(x, targets))),
            ("aten._log_softmax.out, nll_loss_forward, nll_loss_backward, "
             "_log_softmax_backward_data.out", aten_call),
        ])
    return build


def cross_entropy_softcap(cap: float = 30.0):
    """F.cross_entropy of cap tanh(x / cap) (Gemma 2's final-logit softcap), forward + backward:
    eager PyTorch runs the tanh, its backward and the loss as separate kernels."""
    def build(torch, rows, cols, dtype, sets, generator):
        functional = torch.nn.functional
        xs = [_uniform(torch, rows, cols, dtype, -4.0, 4.0, generator) for _ in range(sets)]
        targets = torch.randint(0, cols, (rows,), device=DEVICE, dtype=torch.int64,
                                generator=generator)
        return _first_working([
            ("F.cross_entropy(cap * tanh(x / cap), t) + loss.backward()",
             _autograd_loss(torch, xs, lambda s, x: functional.cross_entropy(
                 cap * torch.tanh(x / cap), targets))),
        ])
    return build


def linear_cross_entropy():
    """F.cross_entropy(F.linear(h, W, b), t) + loss.backward() (dh, dW, db): the rows x V logits and
    their gradient exist in full, as in eager training. Torch's gradients are in the inputs' dtype
    (warpfuse's chunked op accumulates fp32 ones). One set (the inputs are hundreds of MiB); the
    torch peak memory is recorded beside the time."""
    def build(torch, rows, cols, dtype, sets, generator, inner=0):
        if inner <= 0:
            raise RuntimeError("the case has no hidden size (counter d)")
        functional = torch.nn.functional
        hidden = _uniform(torch, rows, inner, dtype, -1.0, 1.0, generator).requires_grad_(True)
        weight = _uniform(torch, cols, inner, dtype, -0.05, 0.05, generator).requires_grad_(True)
        bias = _uniform(torch, 1, cols, dtype, -1.0, 1.0, generator).reshape(cols)
        bias.requires_grad_(True)
        targets = torch.randint(0, cols, (rows,), device=DEVICE, dtype=torch.int64,
                                generator=generator)

        def call(s):
            hidden.grad = weight.grad = bias.grad = None
            functional.cross_entropy(functional.linear(hidden, weight, bias), targets).backward()
        return _first_working([("F.cross_entropy(F.linear(h, W, b), t) + loss.backward()", call)])
    return build


def elementwise_loss(name: str):
    def build(torch, rows, cols, dtype, sets, generator):
        aten = torch.ops.aten
        functional = torch.nn.functional
        preds = [_uniform(torch, rows, cols, dtype, -4.0, 4.0, generator) for _ in range(sets)]
        low, high = (-4.0, 4.0) if name == "mse_loss" else (0.0, 1.0)
        targets = [_uniform(torch, rows, cols, dtype, low, high, generator) for _ in range(sets)]
        if name == "mse_loss":
            one = torch.ones((), device=DEVICE, dtype=dtype)
            dxs: List[object] = []  # the aten path's outputs, allocated only if it is used

            def aten_call(s):
                if not dxs:
                    dxs.extend(torch.empty_like(p) for p in preds)
                pred = preds[s].detach()
                aten.mse_loss(pred, targets[s], 1)
                aten.mse_loss_backward.grad_input(one, pred, targets[s], 1, grad_input=dxs[s])
            return _first_working([
                ("F.mse_loss(pred, target) + loss.backward()", _autograd_loss(
                    torch, preds, lambda s, x: functional.mse_loss(x, targets[s]))),
                ("aten.mse_loss, mse_loss_backward.grad_input", aten_call),
            ])
        return _first_working([
            ("F.binary_cross_entropy_with_logits(pred, target) + loss.backward()", _autograd_loss(
                torch, preds, lambda s, x: functional.binary_cross_entropy_with_logits(x, targets[s]))),
        ])
    return build


# adam/<dtype>/<impl>/<cols>: one step of torch.optim.Adam (fused=True where this torch has it,
# else foreach) over `rows` parameter tensors of `cols` elements with their gradients set, the
# state already initialised (a step taken before timing). Only f32: torch keeps a 16-bit
# parameter's Adam state in 16 bits, where warpfuse keeps fp32 master weights and state, so the
# work differs. warpfuse's flat case (one tensor) is compared with torch over the same list.

def adam():
    def build(torch, rows, cols, dtype, sets, generator):
        if dtype != torch.float32:
            raise RuntimeError("only f32 is comparable (torch keeps 16-bit Adam state in 16 bits)")
        optimizers = []
        for _ in range(sets):
            params = [torch.nn.Parameter(_uniform(torch, 1, cols, dtype, -1.0, 1.0, generator)
                                         .reshape(cols)) for _ in range(rows)]
            for p in params:
                p.grad = _uniform(torch, 1, cols, dtype, -1.0, 1.0, generator).reshape(cols)
            optimizers.append(params)
        candidates = []
        for how, flags in (("torch.optim.Adam(fused=True).step()", {"fused": True}),
                           ("torch.optim.Adam(foreach=True).step()", {"foreach": True})):
            def make(flags=flags):
                made = [torch.optim.Adam(params, lr=1e-3, eps=1e-7, **flags)
                        for params in optimizers]
                return lambda s: made[s].step()
            try:
                candidates.append((how, make()))
            except (RuntimeError, TypeError, ValueError) as error:
                candidates.append((how, lambda s, error=error: (_ for _ in ()).throw(error)))
        return _first_working(candidates)
    return build


OPS: Dict[str, Callable] = {
    "softmax": softmax_forward(log=False),
    "log_softmax": softmax_forward(log=True),
    "softmax_backward": softmax_backward(log=False),
    "log_softmax_backward": softmax_backward(log=True),
    "cross_entropy": cross_entropy(),
    "cross_entropy_softcap": cross_entropy_softcap(),
    "mse_loss": elementwise_loss("mse_loss"),
    "bce_with_logits_loss": elementwise_loss("bce_with_logits_loss"),
    "adam": adam(),
    "linear_cross_entropy": linear_cross_entropy(),
}
for _kind in KINDS:
    for _form in FORMS:
        OPS[f"{_kind}_{_form}"] = activation(_kind, _form)


# --- timing -----------------------------------------------------------------------------------------

def time_median(torch, call, sets: int, warmup: int, repeats: int,
                launch_ahead_cycles: int = 0) -> Tuple[float, int]:
    """(median seconds, late) of call(set) over `repeats` event-timed, synchronised calls after
    `warmup` untimed ones, the sets used in rotation.

    With launch_ahead_cycles > 0, each timed call is preceded on the stream by torch.cuda._sleep of
    that many GPU cycles, so that the GPU is still busy while Python enqueues the start event, the op's
    kernels and the stop event: the events then time the kernels, not Python's and autograd's launch
    overhead (which in training overlaps the previous step's kernels). `late` counts the repeats
    whose start event had already completed once the stop event was enqueued: the sleep ended before
    Python was done, so part of that call's launch overhead was timed (raise --launch-ahead-cycles)."""
    current = 0
    for _ in range(warmup):
        call(current)
        current = (current + 1) % sets
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    seconds = []
    late = 0
    for _ in range(repeats):
        if launch_ahead_cycles > 0:
            torch.cuda._sleep(launch_ahead_cycles)  # pylint: disable=protected-access
        start.record()
        call(current)
        stop.record()
        if launch_ahead_cycles > 0 and start.query():
            late += 1
        stop.synchronize()
        seconds.append(start.elapsed_time(stop) * 1e-3)
        current = (current + 1) % sets
    return statistics.median(seconds), late


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
    parser.add_argument("--launch-ahead-cycles", type=int, default=LAUNCH_AHEAD_CYCLES,
                        metavar="N", help="GPU cycles of torch.cuda._sleep before each timed call, "
                        f"so that Python's launch overhead is not timed (default {LAUNCH_AHEAD_CYCLES}"
                        "; 0: none, every call's overhead is timed)")
    parser.add_argument("--json", dest="json_out", metavar="PATH", help="write the results here")
    parser.add_argument("--time-limit", type=float, default=0.0, metavar="SECONDS",
                        help="start no case after this many seconds, and still write what was "
                        "measured (a caller's time budget; default 0: no limit)")
    args = parser.parse_args(argv)
    started = time.monotonic()

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
    generator = torch.Generator(device=DEVICE)
    generator.manual_seed(20261129)
    launch_ahead = max(args.launch_ahead_cycles, 0)
    if launch_ahead and not hasattr(torch.cuda, "_sleep"):
        print("note: this torch has no torch.cuda._sleep; timing without launching ahead")
        launch_ahead = 0
    rows_out = []
    skipped_for_time = 0
    header = (f"{'op':<24}{'dtype':<6}{'cols':>8}{'rows':>9}  {'warpfuse us':>11}{'GB/s':>8}"
              f"  {'torch us':>9}{'GB/s':>8}  {'ratio':>6}  torch call")
    print(f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) on {device}; "
          "ratio = torch time / warpfuse time (> 1: warpfuse faster); GB/s = warpfuse's bytes "
          "moved / time")
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
            # linear_cross_entropy's own implementation is "chunked" (against its "unfused").
            wanted = "chunked" if case.op == "linear_cross_entropy" else args.impl
            if (case.impl != wanted or not case.ok or case.op not in OPS
                    or case.dtype not in DTYPES or case.rows <= 0 or case.cols <= 0):
                continue
            if args.time_limit > 0 and time.monotonic() - started > args.time_limit:
                skipped_for_time += 1
                continue
            dtype = getattr(torch, DTYPES[case.dtype])
            sets = max(case.sets, 1)
            shape = f"{case.op:<24}{case.dtype:<6}{case.cols:>8}{case.rows:>9}"
            try:
                extra = {"inner": case.inner} if case.op == "linear_cross_entropy" else {}
                if extra:
                    sets = 1
                torch.cuda.reset_peak_memory_stats()
                call, how = OPS[case.op](torch, case.rows, case.cols, dtype, sets, generator,
                                         **extra)
                seconds, late = time_median(torch, call, sets, warmup, repeats, launch_ahead)
                torch_peak_mib = torch.cuda.max_memory_allocated() / 2**20
            except (RuntimeError, MemoryError) as error:
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                print(f"{shape}  skipped: {message[:300]}")
                torch.cuda.empty_cache()
                continue
            torch_us = seconds * 1e6
            torch_gbps = case.bytes / seconds / 1e9
            ratio = torch_us / case.median_us if case.median_us > 0 else float("nan")
            flag = f" [{late}/{repeats} late]" if late else ""
            print(f"{shape}  {case.median_us:>11.1f}{case.gbps:>8.0f}  {torch_us:>9.1f}"
                  f"{torch_gbps:>8.0f}  {ratio:>6.2f}  {how}{flag}")
            rows_out.append({
                "op": case.op, "dtype": case.dtype, "cols": case.cols, "rows": case.rows,
                "swept_rows": case.swept_rows,
                "sets": sets, "bytes": case.bytes, "warpfuse_impl": case.impl,
                "warpfuse_median_us": case.median_us, "warpfuse_GBps": case.gbps,
                "torch_median_us": torch_us, "torch_GBps": torch_gbps, "ratio": ratio,
                "torch_call": how, "late_repeats": late,
                "torch_peak_mib": torch_peak_mib, "warpfuse_peak_mib": case.peak_mib,
            })
            call = None  # free this case's tensors before the next one allocates
            torch.cuda.empty_cache()

    if skipped_for_time:
        print(f"time limit of {args.time_limit:.0f} s reached: {skipped_for_time} shapes not timed")
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
                "launch_ahead_cycles": launch_ahead,
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
