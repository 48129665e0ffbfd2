"""Global magnitude pruning on top of `torch.nn.utils.prune`, with honest sparsity accounting.

How torch implements pruning, and what that means here:

* Pruning ``module.weight`` moves the real parameter to ``module.weight_orig``, stores a 0/1
  ``module.weight_mask`` buffer, and recomputes ``module.weight = weight_orig * weight_mask`` in a
  forward pre-hook. The parameter object is the same one as before, so an optimizer built before
  pruning keeps working (it now updates ``weight_orig``).
* Masked weights are exactly zero in every forward pass, but weight decay and momentum keep moving
  the masked entries of ``weight_orig``. That is invisible while the mask holds.
* `remove_pruning` bakes the mask in (``weight = weight_orig * weight_mask``) and drops the mask and
  the hook. The zeros remain, but they are ordinary weights again and training regrows them.
* The state dict of a pruned model has ``weight_orig``/``weight_mask`` keys instead of ``weight``;
  `load_pruned_state_dict` loads it into a freshly built model.
* One global threshold across all layers makes per-layer sparsity uneven; the reports give both.

Pruning twice -- the kit's choice. torch's own semantics (a second call with amount ``a`` prunes
a fraction ``a`` of the weights that are still unpruned, so 30% then 30% gives 51%) surprise people
who re-run a notebook cell. So in `global_magnitude_prune` ``amount`` is, by default, the *total*
target sparsity over the prunable weights: ``round(amount * total)`` weights end up masked, which
makes repeating a call a no-op and ``0.3`` then ``0.5`` end at exactly 50% (the first 30% stay
masked). A target below the current masked share prunes nothing (pruning never un-prunes) and
warns. Pass ``incremental=True`` to get torch's behaviour unchanged.

Sparsity is always measured on the *effective* weights (``weight_orig * weight_mask`` for pruned
tensors, the plain weight otherwise), counting exact zeros over the prunable tensors.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

from .callbacks import Callback
from .runtime import eval_mode
from .validation import number_in

__all__ = [
    "DEFAULT_TYPES",
    "SparsityReport",
    "PruneReport",
    "prunable_parameters",
    "global_magnitude_prune",
    "sparsity",
    "remove_pruning",
    "is_pruned",
    "load_pruned_state_dict",
    "SparsityTracker",
    "unseen_weights",
]

DEFAULT_TYPES = (nn.Conv2d, nn.Linear)


# --------------------------------------------------------------------------- helpers

def _check_types(types) -> tuple:
    if isinstance(types, type):
        types = (types,)
    try:
        types = tuple(types)
    except TypeError:
        raise TypeError(f"types must be a tuple of nn.Module classes, got {types!r}") from None
    if not types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
        raise TypeError(f"types must be a non-empty tuple of nn.Module classes, got {types!r}")
    return types


def _check_model(model, fn: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}() needs an nn.Module, got {type(model).__name__}")


def _named_prunable(model: nn.Module, types) -> list:
    """(module name, module) for every module of `types` with a weight, in definition order."""
    types = _check_types(types)
    out = []
    for name, m in model.named_modules():
        if isinstance(m, types) and (
                getattr(m, "weight", None) is not None or "weight_orig" in m._parameters):
            out.append((name, m))
    return out


def _pruning_hooks(module: nn.Module) -> list:
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


def _pruned_names(module: nn.Module) -> list:
    """Names of the tensors of `module` that are currently pruned."""
    return [h._tensor_name for h in _pruning_hooks(module)]


def _effective(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The weight the next forward pass will use (fresh, not the value cached by the last one)."""
    mask = module._buffers.get(name + "_mask")
    orig = module._parameters.get(name + "_orig")
    if mask is not None and orig is not None:
        return orig.detach() * mask
    return getattr(module, name).detach()


def _masked_count(module: nn.Module, name: str = "weight") -> int:
    mask = module._buffers.get(name + "_mask")
    return 0 if mask is None else int((mask == 0).sum())


def _give_contiguous_masks(params) -> None:
    """Make every mask `global_unstructured` will flatten contiguous.

    torch flattens masks and scores with ``view(-1)``, which fails on channels_last tensors (the
    Trainer puts models in that format under autocast, and ``model.to(memory_format=...)``
    converts 4-d mask buffers as well). A tensor that is not pruned yet and whose weight is not
    contiguous first gets an all-ones mask (torch would otherwise build one with ``ones_like``,
    keeping the channels_last layout); then every mask is replaced by a contiguous copy.
    """
    for module, name in params:
        if name + "_mask" not in module._buffers and not getattr(module, name).is_contiguous():
            prune.identity(module, name)
        mask = module._buffers.get(name + "_mask")
        if mask is not None:
            module._buffers[name + "_mask"] = mask.contiguous()


# --------------------------------------------------------------------------- reports

@dataclass
class SparsityReport:
    """Share of exactly-zero effective weights, overall and per layer.

    Attributes:
        global_sparsity: ``zeros / total`` over all prunable tensors (0.0 if there are none).
        zeros: number of zero weights.
        total: number of weights in the prunable tensors.
        per_layer: module name -> sparsity of that module's weight.
        per_layer_zeros: module name -> number of zeros.
        per_layer_total: module name -> number of weights.

    The per-layer values average, weighted by ``per_layer_total``, to ``global_sparsity``.
    """

    global_sparsity: float
    zeros: int
    total: int
    per_layer: dict = field(default_factory=dict)
    per_layer_zeros: dict = field(default_factory=dict)
    per_layer_total: dict = field(default_factory=dict)

    def rows(self) -> list:
        """One dict per layer (``layer``, ``zeros``, ``total``, ``sparsity``) for a table."""
        return [{"layer": n, "zeros": self.per_layer_zeros[n], "total": self.per_layer_total[n],
                 "sparsity": s} for n, s in self.per_layer.items()]

    def to_dict(self) -> dict:
        """Flat summary: global numbers plus the per-layer sparsity dict."""
        return {"global_sparsity": self.global_sparsity, "zeros": self.zeros, "total": self.total,
                "per_layer": dict(self.per_layer)}

    def _extremes(self) -> str:
        if not self.per_layer:
            return "no prunable layers"
        lo = min(self.per_layer, key=self.per_layer.get)
        hi = max(self.per_layer, key=self.per_layer.get)
        return (f"{len(self.per_layer)} layers, from {self.per_layer[lo]:.1%} ({lo}) "
                f"to {self.per_layer[hi]:.1%} ({hi})")

    def __str__(self) -> str:
        return (f"Sparsity {self.global_sparsity:.2%}: {self.zeros:,} of {self.total:,} weights "
                f"are zero; {self._extremes()}")


@dataclass
class PruneReport(SparsityReport):
    """`SparsityReport` after a `global_magnitude_prune` call, plus what the call did.

    Attributes (besides the sparsity ones):
        amount: the amount passed in.
        incremental: True for torch's "fraction of the remaining weights" semantics.
        masked_before: weights already masked before the call.
        newly_pruned: weights masked by this call.
    """

    amount: float = 0.0
    incremental: bool = False
    masked_before: int = 0
    newly_pruned: int = 0

    def to_dict(self) -> dict:
        """Flat summary including the call's amount and counts."""
        d = super().to_dict()
        d.update(amount=float(self.amount), incremental=self.incremental,
                 masked_before=self.masked_before, newly_pruned=self.newly_pruned)
        return d

    def __str__(self) -> str:
        how = "of the remaining weights" if self.incremental else "target"
        return (f"Pruned {self.newly_pruned:,} weights (amount {float(self.amount):.1%} {how}); "
                f"{super().__str__()}")


# --------------------------------------------------------------------------- API

def prunable_parameters(model: nn.Module, types=DEFAULT_TYPES) -> list:
    """``[(module, "weight"), ...]`` for every module of `types` in definition order.

    This is the list `torch.nn.utils.prune.global_unstructured` expects. Modules that are already
    pruned are included (their ``weight`` is then the masked view of ``weight_orig``).
    """
    _check_model(model, "prunable_parameters")
    return [(m, "weight") for _, m in _named_prunable(model, types)]


def sparsity(model: nn.Module, types=DEFAULT_TYPES) -> SparsityReport:
    """Global and per-layer sparsity of the effective weights of the `types` modules.

    Works for pruned and unpruned models: zeros are counted in ``weight_orig * weight_mask`` for
    pruned tensors and in the plain weight otherwise, so weights that are zero without a mask
    (e.g. after `remove_pruning`) count too. Biases are not counted. A model without prunable
    layers gives ``global_sparsity == 0.0`` with ``total == 0``.
    Notebook 03 introduces it.
    """
    _check_model(model, "sparsity")
    per_layer, zeros_d, total_d = {}, {}, {}
    with torch.no_grad():
        for name, m in _named_prunable(model, types):
            w = _effective(m)
            n = w.numel()
            z = n - int(torch.count_nonzero(w))
            zeros_d[name], total_d[name] = z, n
            per_layer[name] = z / n if n else 0.0
    zeros, total = sum(zeros_d.values()), sum(total_d.values())
    return SparsityReport(zeros / total if total else 0.0, zeros, total, per_layer, zeros_d, total_d)


def global_magnitude_prune(model: nn.Module, amount: float, types=DEFAULT_TYPES,
                           incremental: bool = False) -> PruneReport:
    """Mask the smallest-magnitude weights across all `types` layers with one global threshold.

    Uses ``prune.global_unstructured(..., pruning_method=prune.L1Unstructured)`` over
    `prunable_parameters(model, types)`.

    Args:
        amount: a number in ``[0, 1)``; anything else raises ``ValueError``.
        incremental: ``False`` (default): `amount` is the total target. After the call exactly
            ``max(round(amount * total), already masked)`` weights are masked, ``total`` being the
            number of prunable weights. Repeating a call is a no-op; a lower target than the current
            one prunes nothing and warns (pruning never un-prunes).
            ``True``: torch's semantics -- mask ``round(amount * remaining)`` of the weights that
            are still unmasked (30% then 30% gives 51%).

    Every prunable tensor is left pruned (with a mask, possibly all ones), even with amount 0.
    Weights that are zero but unmasked (after `remove_pruning`) have the smallest magnitude and
    are masked first.
    Notebook 03 introduces it.
    """
    _check_model(model, "global_magnitude_prune")
    number_in("amount", amount, 0, 1, hi_open=True)
    named = _named_prunable(model, types)
    if not named:
        raise ValueError(f"model has no prunable layers of types {_check_types(types)}")
    params = [(m, "weight") for _, m in named]
    total = sum(_effective(m).numel() for m, _ in params)
    masked_before = sum(_masked_count(m) for m, _ in params)
    if incremental:
        torch_amount = float(amount)
    else:
        target = round(float(amount) * total)  # torch's rounding rule
        if target < masked_before:
            warnings.warn(
                f"global_magnitude_prune: target amount {amount!r} ({target:,} weights) is below "
                f"the {masked_before:,} weights already masked; nothing pruned (pruning never "
                f"un-prunes)", UserWarning, stacklevel=2)
        torch_amount = max(0, target - masked_before)  # an int: absolute count
    _give_contiguous_masks(params)
    # Rank by the fresh effective weights, not by `module.weight` cached at the last forward.
    scores = {(m, n): _effective(m, n).contiguous() for m, n in params}
    with torch.no_grad():
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured,
                                  importance_scores=scores, amount=torch_amount)
    masked_after = sum(_masked_count(m) for m, _ in params)
    rep = sparsity(model, types)
    return PruneReport(**vars(rep), amount=amount, incremental=incremental,
                       masked_before=masked_before, newly_pruned=masked_after - masked_before)


def is_pruned(model: nn.Module) -> bool:
    """True if any tensor in `model` (any module, any name) currently carries a pruning mask.
    Notebook 04 introduces it."""
    _check_model(model, "is_pruned")
    return any(_pruning_hooks(m) for m in model.modules())


def remove_pruning(model: nn.Module) -> int:
    """Make pruning permanent and free the weights to regrow; returns the number of tensors done.

    For every pruned ``(module, name)`` in the model (whatever its type) this calls
    ``prune.remove``: the parameter ``name`` gets the masked values ``name_orig * name_mask``, and
    the mask buffer, ``name_orig`` and the forward pre-hook go away. The zeros are still there
    afterwards, but nothing holds them at zero, so further training moves them. The parameter
    object is kept, so an existing optimizer goes on updating it. Modules without pruning are
    left untouched (the call is a no-op, returning 0, on an unpruned model).
    Notebook 04 introduces it.
    """
    _check_model(model, "remove_pruning")
    done = 0
    for m in model.modules():
        for name in _pruned_names(m):
            prune.remove(m, name)
            done += 1
    return done


def load_pruned_state_dict(model: nn.Module, state_dict: dict, strict: bool = True):
    """Load a state dict that may come from a pruned model into `model`, matching the structure.

    A pruned model saves ``<module>.weight_orig`` and ``<module>.weight_mask`` instead of
    ``<module>.weight``, so ``fresh_model.load_state_dict(sd)`` fails. This helper first gives
    every module that has such a pair in `state_dict` the same structure with
    ``prune.identity`` (an all-ones mask), and conversely removes pruning from modules of `model`
    whose tensor appears unpruned in `state_dict`; then it calls ``model.load_state_dict`` (masks
    included) and refreshes the effective weights. Returns what ``load_state_dict`` returns.
    Notebook 04 introduces it.
    """
    _check_model(model, "load_pruned_state_dict")
    modules = dict(model.named_modules())
    for key in state_dict:
        if not key.endswith("_orig") or key[:-5] + "_mask" not in state_dict:
            continue
        prefix, _, tname = key[:-5].rpartition(".")
        module = modules.get(prefix)
        if module is None or tname in _pruned_names(module):
            continue
        if getattr(module, tname, None) is None:
            continue  # let load_state_dict report the mismatch
        prune.identity(module, tname)
    for prefix, module in modules.items():
        for tname in _pruned_names(module):
            full = f"{prefix}.{tname}" if prefix else tname
            if full in state_dict and full + "_orig" not in state_dict:
                prune.remove(module, tname)
    result = model.load_state_dict(state_dict, strict=strict)
    with torch.no_grad():
        for module in model.modules():
            for hook in _pruning_hooks(module):
                hook(module, None)  # recompute module.<name> = <name>_orig * <name>_mask
    return result


class SparsityTracker(Callback):
    """Callback that records the global sparsity of the prunable weights after every epoch.

    * ``on_fit_start``: records the starting sparsity as ``history[0]`` (epoch 0) -- unless the
      history is already non-empty, i.e. the run was resumed from a checkpoint.
    * ``on_epoch_end``: sets ``record[key]`` (default ``"sparsity"``) to the global sparsity and
      appends it to ``history``; ``epochs`` gets the record's ``"epoch"`` value.
    * With ``per_layer=True`` it also appends the per-layer dict to ``per_layer_history``.
    * ``state_dict``/``load_state_dict`` carry all of that, so a resumed run keeps its history.

    Sparsity is measured with `sparsity`, so it counts zeros of the effective weights and works
    for pruned and unpruned models alike.
    Notebook 03 introduces it.
    """

    def __init__(self, types=DEFAULT_TYPES, per_layer: bool = False, key: str = "sparsity"):
        self.types = _check_types(types)
        self.per_layer = bool(per_layer)
        self.key = key
        self.history: list = []
        self.epochs: list = []
        self.per_layer_history: list = []

    def _append(self, model, epoch) -> float:
        rep = sparsity(model, self.types)
        self.history.append(rep.global_sparsity)
        self.epochs.append(epoch)
        if self.per_layer:
            self.per_layer_history.append(dict(rep.per_layer))
        return rep.global_sparsity

    def on_fit_start(self, trainer, model):
        """Record the starting sparsity (epoch 0) on a fresh run; do nothing on a resumed one."""
        if not self.history:
            self._append(model, 0)

    def on_epoch_end(self, trainer, model, record: dict):
        """Measure, store in ``record[self.key]`` and append to the history."""
        epoch = record.get("epoch", len(self.history))
        record[self.key] = self._append(model, epoch)

    def state_dict(self) -> dict:
        """A copy of the recorded history (plain lists, safe for ``torch.save``)."""
        return {"history": list(self.history), "epochs": list(self.epochs),
                "per_layer_history": copy.deepcopy(self.per_layer_history)}

    def load_state_dict(self, state: dict) -> None:
        """Replace the history with the one saved by `state_dict`."""
        self.history = [float(v) for v in state.get("history", [])]
        self.epochs = list(state.get("epochs", []))
        self.per_layer_history = copy.deepcopy(state.get("per_layer_history", []))


# ----------------------------------------------------------------------------------------------
# Weights that never see the image
# ----------------------------------------------------------------------------------------------

def _live_taps(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int) -> list:
    """Which of a kernel's taps along one axis read a real input pixel for some output position."""
    return [any(0 <= o * stride - padding + i * dilation < size for o in range(out)) for i in range(kernel)]


def unseen_weights(model: nn.Module, image_size: int = 32, channels: int = 3) -> dict:
    """Find, per Conv2d and Linear layer, the weights that only ever multiply zero padding.

    A convolution whose input is small for its kernel (torchvision's ResNet-18 on 32x32 images
    works at 2x2 and 1x1 in ``layer4``) has taps that fall outside the image for every output
    position: whatever those weights are, they never touch data and get no gradient from it.
    One forward pass of a ``channels x image_size x image_size`` input records each layer's input
    size; the count is geometric (kernel, stride, padding, dilation), not a property of the
    weights. Returns ``{"per_layer": {name: (unseen, total)}, "masks": {name: bool tensor shaped
    like the weight, True where unseen}, "unseen": int, "total": int, "fraction": float}`` over
    the layers that `global_magnitude_prune` prunes by default.
    Notebook 03 introduces it.
    """
    sizes, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(
                lambda m, inp, out, name=name: sizes.__setitem__(name, (inp[0].shape[-2:], out.shape[-2:]))))
    try:
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(1, channels, image_size, image_size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    per_layer, masks = {}, {}
    for name, module in _named_prunable(model, DEFAULT_TYPES):
        weight = _effective(module)
        mask = torch.zeros(weight.shape, dtype=torch.bool)
        if isinstance(module, nn.Conv2d) and name in sizes:
            (h, w), (ho, wo) = sizes[name]
            rows, cols = (torch.tensor(_live_taps(size, out, module.kernel_size[axis], module.stride[axis],
                                                  module.padding[axis], module.dilation[axis]))
                          for axis, (size, out) in enumerate(((h, ho), (w, wo))))
            mask[...] = ~(rows[:, None] & cols[None, :])
        masks[name] = mask
        per_layer[name] = (int(mask.sum()), mask.numel())
    unseen = sum(u for u, _ in per_layer.values())
    total = sum(t for _, t in per_layer.values())
    return {"per_layer": per_layer, "masks": masks, "unseen": unseen, "total": total,
            "fraction": unseen / total}
