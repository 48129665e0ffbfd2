"""Gradient L2 norms per parameter, layer or block: one snapshot, or a record over many steps.

Two entry points:

* ``gradient_norms(model, loss=None, by="block")`` reads the ``.grad`` of every trainable
  parameter right now (after ``loss.backward()``; pass ``loss`` to have it called for you) and
  returns an ``OrderedDict`` name -> float in definition order (the order of
  ``model.named_parameters()``).
* ``GradientNormRecorder(model, by="block")`` records such a dict after *every* backward pass,
  without touching the training loop: ``with GradientNormRecorder(model) as rec:
  trainer.fit(...)``, then ``rec.history`` (list of dicts) or ``rec.to_arrays()`` for a
  gradient-flow plot.

Grouping (``by``):

* ``"parameter"``: one entry per parameter tensor (``"layer1.0.conv1.weight"``).
* ``"module"``: one entry per layer, i.e. per module that owns parameters directly
  (``"layer1.0.conv1"``, ``"layer1.0.bn1"``, ``"fc"``).
* ``"block"`` (default): parameters inside a *block* -- a module whose class is one of
  ``block_types`` (default: torchvision's ``BasicBlock`` and ``Bottleneck``, `default_block_types()`,
  and every class that says ``is_block = True``, such as cifarkit's `SmallBlock` and `GatedBlock`)
  -- form one group named after the outermost such block (``"layer1.0"``, ``"body.layer3.1"``,
  ``"features.2.gate_block"``); every other parameter is grouped by its layer as with
  ``"module"`` (``"conv1"``, ``"bn1"``, ``"fc"``).
* a callable ``f(parameter_name) -> group_name``.

The norm of a group is the L2 norm of all its gradients taken together,
``sqrt(sum(p.grad.norm()**2))``. Conventions: parameters with ``requires_grad=False`` are
skipped, and a group with no trainable parameter does not appear at all (frozen blocks are
*absent*, not 0 -- a 0 would look like a vanishing gradient). A trainable parameter whose
``.grad`` is None (it took no part in the loss, e.g. an unused ``downsample``) counts as a zero
gradient. Norms are of the gradients as stored, so under a ``GradScaler`` (float16 on CUDA) they
include the loss scale.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn

from .validation import positive_int

__all__ = ["default_block_types", "parameter_groups", "gradient_norms", "GradientNormRecorder"]

_BY = ("parameter", "module", "block")


def default_block_types() -> tuple:
    """torchvision's residual blocks, which ``by="block"`` treats as blocks by default, besides the
    classes that mark themselves with ``is_block = True`` (cifarkit's `SmallBlock`, `GatedBlock`)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return (BasicBlock, Bottleneck)


def _is_block(module: nn.Module, types: tuple, marked: bool) -> bool:
    """Whether `module` is one of `types` or, with `marked`, of a class that says ``is_block = True``."""
    return (bool(types) and isinstance(module, types)) or (marked and getattr(type(module), "is_block", False) is True)


def parameter_groups(model: nn.Module, by="block", block_types=None) -> "OrderedDict[str, list]":
    """Map group name -> list of (parameter name, parameter), trainable parameters only.

    Groups and parameters are in definition order. See the module docstring for `by`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if callable(by) and not isinstance(by, str):
        group_of = by
    elif by in _BY:
        owner = {}  # id(param) -> name of the module that owns it directly
        block_of = {}  # id(param) -> name of its outermost block
        types = default_block_types() if block_types is None else tuple(block_types)
        for mname, m in model.named_modules():
            for p in m.parameters(recurse=False):
                owner.setdefault(id(p), mname)
            if by == "block" and _is_block(m, types, marked=block_types is None):
                for p in m.parameters():
                    block_of.setdefault(id(p), mname)  # named_modules is outer-first

        def group_of(name, p=None):
            if by == "parameter":
                return name
            if by == "block" and id(p) in block_of:
                return block_of[id(p)]
            return owner.get(id(p), name) or name  # a parameter of the root module itself
    else:
        raise ValueError(f"by must be one of {_BY} or a callable, got {by!r}")

    groups: OrderedDict = OrderedDict()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = group_of(name) if group_of is by else group_of(name, p)
        groups.setdefault(str(key), []).append((name, p))
    return groups


def gradient_norms(model: nn.Module, loss: torch.Tensor | None = None, by="block",
                   block_types=None) -> "OrderedDict[str, float]":
    """Gradient L2 norm per group of trainable parameters, in definition order.

    Args:
        model: the network whose parameters' ``.grad`` is read.
        loss: if given, ``loss.backward()`` is called first (gradients accumulate into existing
            ``.grad`` as usual, so zero them before if needed).
        by: ``"block"`` (default), ``"module"``, ``"parameter"`` or a callable; see the module
            docstring.
        block_types: classes counted as blocks for ``by="block"`` (default: see the module
            docstring).

    Returns an ``OrderedDict`` group name -> float. Frozen parameters are skipped (a fully
    frozen group is absent); a trainable parameter without ``.grad`` counts as zero.
    """
    if loss is not None:
        loss.backward()
    groups = parameter_groups(model, by, block_types)
    out: OrderedDict = OrderedDict()
    squares = []
    for key, params in groups.items():
        sq = [p.grad.detach().float().pow(2).sum() for _, p in params if p.grad is not None]
        squares.append(torch.stack([s.cpu() for s in sq]).sum() if sq else torch.zeros(()))
    values = torch.stack(squares).sqrt().tolist() if squares else []
    for key, v in zip(groups, values):
        out[key] = float(v)
    return out


class GradientNormRecorder:
    """Record `gradient_norms`-style dicts after every backward pass of `model`.

    Usage::

        with GradientNormRecorder(model, by="block") as rec:
            trainer.fit(model, loader)        # or your own loop; nothing else to change
        names, steps, norms = rec.to_arrays()  # norms[i, j]: step steps[i], group names[j]

    How it works: `attach` registers a post-accumulate-grad hook on every trainable parameter;
    each hook stores that parameter's squared gradient norm as soon as its gradient is ready
    (so the values are those that the optimizer step sees). A new record starts when a parameter
    receives a gradient for the second time, i.e. with the next backward pass; reading `history`
    closes the current one. One record per backward pass, so with gradient accumulation over
    k micro-batches you get k records per optimizer step (each showing the running sum).

    Args:
        model: the network.
        by, block_types: grouping, as for `gradient_norms` (fixed at `attach` time: parameters
            unfrozen later are not recorded until you `detach` and `attach` again).
        every: keep one backward pass in `every` (1 = all). ``steps`` holds the 0-based indices
            of the kept passes.

    Attributes: ``history`` (list of OrderedDicts group -> norm), ``steps`` (list of int).
    Use `record()` instead of hooks if you prefer to call it yourself after ``backward()``.
    Notebook 01 introduces it.
    """

    def __init__(self, model: nn.Module, by="block", block_types=None, every: int = 1):
        every = positive_int("every", every)
        self.model, self.by, self.block_types, self.every = model, by, block_types, every
        parameter_groups(model, by, block_types)  # validate early
        self._history: list = []
        self.steps: list = []
        self._handles: list = []
        self._groups: OrderedDict | None = None
        self._seen: set = set()
        self._pending: dict = {}
        self._index = 0

    # -- hooks -----------------------------------------------------------------------------
    def attach(self) -> "GradientNormRecorder":
        """Start recording automatically after each backward pass. Returns self."""
        if self._handles:
            return self
        self._groups = parameter_groups(self.model, self.by, self.block_types)
        for params in self._groups.values():
            for name, p in params:
                self._handles.append(p.register_post_accumulate_grad_hook(self._make_hook(name)))
        return self

    def detach(self) -> None:
        """Stop recording (closing the current record) and remove the hooks."""
        self._flush()
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "GradientNormRecorder":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def _make_hook(self, name: str):
        def hook(p: torch.Tensor) -> None:
            if name in self._seen:
                self._flush()
            self._seen.add(name)
            if self._index % self.every == 0 and p.grad is not None:
                self._pending[name] = p.grad.detach().float().pow(2).sum()
        return hook

    def _flush(self) -> None:
        """Turn the squared norms gathered for the current backward pass into a record."""
        if not self._seen:
            return
        if self._index % self.every == 0:
            rec: OrderedDict = OrderedDict()
            keys, sums = [], []
            for key, params in self._groups.items():
                parts = [self._pending[n] for n, _ in params if n in self._pending]
                keys.append(key)
                sums.append(torch.stack([t.cpu() for t in parts]).sum() if parts
                             else torch.zeros(()))
            for key, v in zip(keys, torch.stack(sums).sqrt().tolist()):
                rec[key] = float(v)
            self._history.append(rec)
            self.steps.append(self._index)
        self._index += 1
        self._seen, self._pending = set(), {}

    # -- manual use and results --------------------------------------------------------------
    def record(self) -> "OrderedDict[str, float]":
        """Append `gradient_norms` of the model's current gradients (manual mode) and return it."""
        self._flush()
        rec = gradient_norms(self.model, by=self.by, block_types=self.block_types)
        self._history.append(rec)
        self.steps.append(self._index)
        self._index += 1
        return rec

    @property
    def history(self) -> list:
        """One OrderedDict group -> gradient norm per recorded backward pass."""
        self._flush()
        return self._history

    def clear(self) -> None:
        """Forget everything recorded so far (hooks stay attached)."""
        self._history, self.steps = [], []
        self._seen, self._pending, self._index = set(), {}, 0

    def to_arrays(self):
        """``(names, steps, norms)``: group names in first-seen order, step indices, and a
        ``len(steps) x len(names)`` float numpy array (NaN where a group was not recorded)."""
        import numpy as np

        history = self.history
        names: list = []
        for rec in history:
            names.extend(k for k in rec if k not in names)
        norms = np.full((len(history), len(names)), math.nan)
        col = {n: j for j, n in enumerate(names)}
        for i, rec in enumerate(history):
            for k, v in rec.items():
                norms[i, col[k]] = v
        return names, np.asarray(self.steps, dtype=np.int64), norms
