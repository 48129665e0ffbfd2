"""Notebook 02's own instruments (02_freezing): what a training step costs with a frozen prefix
(`time_train_steps`), which operations its backward pass runs (`backward_ops`), and how far frozen
BatchNorm layers are from normalising a batch (`norm_output_spread`, `frozen_norm_spread`).
Freezing itself is `cifarkit.freezing`.
"""
from __future__ import annotations

import collections
import copy
import time

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..freezing import freeze_initial
from ..runtime import eval_mode
from ..training import trainable_parameters
from ..validation import non_negative_int, positive_int

__all__ = ["time_train_steps", "backward_ops", "norm_output_spread", "frozen_norm_spread"]


def time_train_steps(models: dict, batch, rounds: int = 10, warmup: int = 2, loss_fn=None) -> dict:
    """Seconds of one forward and backward pass of each model, measured in interleaved rounds
    on the same batch: what a training step costs, apart from the optimizer's update.

    `models` maps a name to a model (in train mode for the measurement; the models are left
    in train mode). `batch` is ``(images, labels)`` on the models' device; `loss_fn` defaults to
    cross-entropy. Each round times one pass of every model in turn, so a slow spell of a
    shared machine hits all of them alike: compare the models round by round
    (``times["a"][i] / times["b"][i]``), not with other runs. `warmup` untimed rounds come
    first. No weight changes (no optimizer is involved; gradients are cleared before each pass
    and after the last), but BatchNorm layers in train mode update their running statistics as
    in any train-mode forward pass: time copies of the models you mean to keep.

    Returns ``{name: [seconds of round 0, round 1, ...]}``. Raises ValueError for an empty
    `models`, a model without trainable parameters, ``rounds < 1`` or ``warmup < 0``.
    """
    if not isinstance(models, dict) or not models:
        raise ValueError(f"models must be a non-empty dict of name -> model, got {models!r}")
    rounds, warmup = positive_int("rounds", rounds), non_negative_int("warmup", warmup)
    for name, m in models.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{name!r}] must be an nn.Module, got {type(m).__name__}")
        if not trainable_parameters(m):
            raise ValueError(f"model {name!r} has no trainable parameter: there is no backward pass to time")
        m.train()
    x, y = batch
    loss_fn = nn.functional.cross_entropy if loss_fn is None else loss_fn

    def sync():
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)

    times: dict = {name: [] for name in models}
    for r in range(warmup + rounds):
        for name, m in models.items():
            m.zero_grad(set_to_none=True)
            sync()
            start = time.perf_counter()
            loss_fn(m(x), y).backward()
            sync()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    for m in models.values():
        m.zero_grad(set_to_none=True)
    return times


def backward_ops(output: torch.Tensor) -> collections.Counter:
    """The operations a backward pass from `output` will run, counted by kind.

    Walks the autograd graph behind `output` (its ``grad_fn`` and everything reachable from it)
    and counts the nodes by class name, e.g. ``ConvolutionBackward0`` (one per convolution the
    gradient passes through) or ``AccumulateGrad`` (one per parameter that receives a gradient).
    Layers whose parameters are frozen and whose inputs need no gradient never enter the graph:
    their backward pass is skipped. Nothing is computed; `output` may be a loss or any tensor.
    Raises ValueError when `output` has no graph (nothing in it requires a gradient).
    """
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"backward_ops() needs a tensor, got {type(output).__name__}")
    if output.grad_fn is None:
        raise ValueError("backward_ops(): the tensor has no autograd graph (nothing it depends on "
                         "requires a gradient, or it was computed under torch.no_grad())")
    counts: collections.Counter = collections.Counter()
    seen, stack = set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        counts[type(node).__name__] += 1
        stack.extend(fn for fn, _ in node.next_functions)
    return counts


def norm_output_spread(model: nn.Module, x: torch.Tensor, names=None) -> dict:
    """How far the named normalisation layers of `model` are from normalising the batch `x`.

    Runs `model` on `x` once in eval mode (no gradients; the model's mode is restored) and looks
    at the output of each named layer (default: every BatchNorm layer) per channel, over the
    batch and the spatial positions. A layer that normalises its input has channel means near 0
    and channel standard deviations near 1 (before its learned scale and shift; at
    initialisation those are 1 and 0). Returns ``{"max_abs_mean": ..., "std_factor": ...,
    "layers": n}``: the largest channel mean in size and the largest factor by which a
    channel's standard deviation is off 1 (a std of 0.25 and a std of 4 both count as 4.0),
    over all the layers. Raises ValueError for an unknown name or when no layer is named.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"norm_output_spread() needs an nn.Module, got {type(model).__name__}")
    modules = dict(model.named_modules())
    if names is None:
        names = [n for n, m in modules.items() if isinstance(m, _BatchNorm)]
    names = list(names)
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"model has no submodule(s) {unknown}")
    if not names:
        raise ValueError("norm_output_spread() needs at least one layer to measure")
    worst = {"max_abs_mean": 0.0, "std_factor": 1.0, "layers": len(names)}

    def measure(module, inputs, out):
        dims = [d for d in range(out.dim()) if d != 1]
        mean, std = out.float().mean(dim=dims), out.float().std(dim=dims)
        worst["max_abs_mean"] = max(worst["max_abs_mean"], mean.abs().max().item())
        worst["std_factor"] = max(worst["std_factor"], std.max().item(), 1.0 / max(std.min().item(), 1e-30))

    hooks = [modules[n].register_forward_hook(measure) for n in names]
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return worst


def frozen_norm_spread(model: nn.Module, x: torch.Tensor, fraction: float) -> dict:
    """`norm_output_spread` on the batch `x`, over the BatchNorm layers that freezing the first
    `fraction` of `model` pins (measured on a copy; `model` is left as it was)."""
    m = copy.deepcopy(model)
    return norm_output_spread(m, x, freeze_initial(m, fraction).eval_norm_layers)
