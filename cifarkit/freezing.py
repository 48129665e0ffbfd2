"""Freeze the leading part of a network, and keep frozen BatchNorm layers truly frozen.

"Freezing the first 30% of a network" can mean two things, and the kit supports both:

* ``by="parameters"``: walk the parameter tensors in definition order (the order of
  ``model.named_parameters()``, which follows module registration order) and freeze whole
  tensors until the frozen count reaches 30% of all parameters.
* ``by="layers"``: walk the *layers* -- the modules that directly own at least one parameter --
  in the same order and freeze the first 30% of them.

Rounding rule (both modes): the kit never freezes *more* than requested. It freezes the longest
prefix whose size is at most ``fraction`` times the total (parameter count, or number of
layers). A tensor (or layer) that would take the frozen share past the request is left
trainable, and so is everything after it. So the actual frozen fraction is always ``<=`` the
requested one, and the gap is smaller than the next tensor (layer). ``fraction`` is read as the
decimal it is written as (``0.3`` means exactly 3/10, not the nearest binary float), so a prefix
of exactly 30% counts as "at most 30%". ``fraction=0`` freezes nothing, ``fraction=1`` everything.

Setting ``requires_grad=False`` is not the whole story for BatchNorm: in ``train()`` mode a
BatchNorm layer normalises with batch statistics and keeps updating ``running_mean`` and
``running_var`` even when its weight and bias are frozen. With ``bn_eval=True`` (the default)
every frozen normalisation layer gets a forward pre-hook that sets ``module.training = False``
right before each forward pass, so it always normalises with, and never changes, its running
statistics -- however often ``model.train()`` is called. (Between a ``model.train()`` call and the
next forward pass ``bn.training`` may read ``True``; the forward itself always runs in eval
mode.) The hook is a plain module-level function, so the model can still be deep-copied and
pickled. ``unfreeze_all`` removes the hooks again.

Pinning keeps whatever statistics a layer holds, and a freshly built network holds placeholders
(running mean 0, running variance 1) that match no data: a frozen BatchNorm layer with those
statistics divides by about 1 and subtracts 0, so it normalises nothing. With random (not
pretrained) weights, call `recalibrate_bn` on some training batches *before* freezing, so the
frozen layers normalise the way BatchNorm in train mode did for the same weights. Pretrained
statistics belong to the pretrained weights; keep them. Notebook 02 measures how well the frozen
layers normalise a batch (`cifarkit.course.lesson02.norm_output_spread`).

Freezing a leading part also makes a training step cheaper: autograd does not propagate back
into layers none of whose parameters (or inputs) need a gradient, so their backward pass is
skipped; the forward pass is not. Notebook 02 lists the operations a backward pass runs and times
the saving (`cifarkit.course.lesson02`).
"""
from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass, field
from fractions import Fraction

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm, _NormBase

from .training import trainable_parameters
from .validation import number_in, positive_int

__all__ = [
    "FreezeSummary",
    "count_parameters",
    "trainable_parameters",
    "freeze_initial",
    "unfreeze_all",
    "frozen_norm_layers",
    "set_frozen_bn_eval",
    "unfreeze",
    "recalibrate_bn",
]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in `model` (shared tensors counted once).

    With ``trainable_only=True`` only parameters with ``requires_grad=True`` are counted.
    Notebook 02 introduces it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters() needs an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class FreezeSummary:
    """What `freeze_initial` did.

    Attributes:
        fraction: the fraction that was asked for.
        by: ``"parameters"`` or ``"layers"``.
        frozen: number of frozen scalar parameters.
        trainable: number of trainable scalar parameters.
        total: ``frozen + trainable``.
        frozen_fraction: ``frozen / total`` (0.0 for a model without parameters).
        frozen_layers: names of the modules all of whose own parameters are frozen, in order.
        partial_layers: names of modules with some, but not all, own parameters frozen (only
            possible with ``by="parameters"``, e.g. a conv whose weight is frozen but not its bias).
        frozen_parameters: names of the frozen parameter tensors, in order.
        eval_norm_layers: names of the frozen normalisation layers pinned to eval mode.
    """

    fraction: float
    by: str
    frozen: int
    trainable: int
    total: int
    frozen_fraction: float
    frozen_layers: list = field(default_factory=list)
    partial_layers: list = field(default_factory=list)
    frozen_parameters: list = field(default_factory=list)
    eval_norm_layers: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """A flat dict (one row of a results table): scalars first, then the layer list."""
        return {
            "requested": float(self.fraction),
            "by": self.by,
            "frozen": self.frozen,
            "trainable": self.trainable,
            "total": self.total,
            "frozen_fraction": self.frozen_fraction,
            "n_frozen_layers": len(self.frozen_layers),
            "last_frozen_layer": self.frozen_layers[-1] if self.frozen_layers else "",
            "n_eval_norm_layers": len(self.eval_norm_layers),
            "frozen_layers": list(self.frozen_layers),
        }

    def __str__(self) -> str:
        lines = [
            f"Frozen {self.frozen_fraction:.1%} of parameters "
            f"(requested {float(self.fraction):.1%}, by {self.by})",
            f"  frozen    {self.frozen:>12,}",
            f"  trainable {self.trainable:>12,}",
            f"  total     {self.total:>12,}",
        ]
        if self.frozen_layers:
            first, last = self.frozen_layers[0], self.frozen_layers[-1]
            span = first if first == last else f"{first} ... {last}"
            lines.append(f"  {len(self.frozen_layers)} layer(s) frozen: {span}")
        else:
            lines.append("  no layer frozen")
        if self.partial_layers:
            lines.append(f"  partly frozen: {', '.join(self.partial_layers)}")
        if self.eval_norm_layers:
            lines.append(f"  {len(self.eval_norm_layers)} norm layer(s) kept in eval mode")
        return "\n".join(lines)


def _keep_in_eval(module: nn.Module, args) -> None:
    """Forward pre-hook installed on frozen norm layers: run this forward in eval mode."""
    module.training = False


def _remove_eval_hooks(module: nn.Module) -> bool:
    """Drop every `_keep_in_eval` pre-hook from `module`; True if there was one."""
    keys = [k for k, hook in module._forward_pre_hooks.items() if hook is _keep_in_eval]
    for k in keys:
        del module._forward_pre_hooks[k]
        # torch keeps optional side tables keyed by hook id; keep them consistent.
        for table in ("_forward_pre_hooks_with_kwargs",):
            getattr(module, table, {}).pop(k, None)
    return bool(keys)


def frozen_norm_layers(model: nn.Module) -> list:
    """Names of the normalisation layers currently pinned to eval mode by `freeze_initial`."""
    return [name for name, m in model.named_modules()
            if any(h is _keep_in_eval for h in m._forward_pre_hooks.values())]


def unfreeze_all(model: nn.Module) -> int:
    """Make every parameter trainable again and release the norm layers pinned to eval mode.

    Released norm layers get the model's current mode back (``module.train(model.training)``).
    Returns the number of parameter tensors whose ``requires_grad`` went from False to True.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"unfreeze_all() needs an nn.Module, got {type(model).__name__}")
    return _unfreeze_modules(model, [model])


def _unfreeze_modules(model: nn.Module, modules) -> int:
    """Make the parameters of `modules` (submodules of `model`) trainable; release pinned norms."""
    changed = 0
    for module in modules:
        for p in module.parameters():
            if not p.requires_grad:
                p.requires_grad_(True)
                changed += 1
        for m in module.modules():
            if _remove_eval_hooks(m):
                m.train(model.training)
    return changed


def _exact_fraction(fraction) -> Fraction:
    """Validate `fraction` and return it as an exact decimal Fraction."""
    value = number_in("fraction", fraction, 0, 1)
    if isinstance(fraction, (numbers.Rational)):
        return Fraction(fraction)
    return Fraction(repr(value))  # "0.3" -> 3/10 exactly


def freeze_initial(model: nn.Module, fraction: float, by: str = "parameters",
                   bn_eval: bool = True) -> FreezeSummary:
    """Freeze the leading `fraction` of `model` in definition order and report what was frozen.

    Args:
        model: any ``nn.Module``.
        fraction: a number in ``[0, 1]``; anything else raises ``ValueError``.
        by: ``"parameters"`` (share of scalar parameters, whole tensors at a time) or
            ``"layers"`` (share of the modules that directly own parameters).
        bn_eval: keep frozen normalisation layers (BatchNorm & co.) in eval mode even after
            ``model.train()``, so their running statistics stay fixed. A norm layer counts as
            frozen when all its own parameters are frozen; one without parameters
            (``affine=False``) counts as frozen when it comes before the last frozen layer.

    The call first undoes any earlier freezing (`unfreeze_all`), so repeating it with the same
    fraction gives the same result, and a smaller fraction unfreezes layers again. Never freezes
    more than requested; see the module docstring for the exact rounding rule.

    Build (or rebuild) the optimizer afterwards over `trainable_parameters(model)`.
    Notebook 02 introduces it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"freeze_initial() needs an nn.Module, got {type(model).__name__}")
    exact = _exact_fraction(fraction)
    if by not in ("parameters", "layers"):
        raise ValueError(f'by must be "parameters" or "layers", got {by!r}')

    unfreeze_all(model)
    named = list(model.named_parameters())
    total = sum(p.numel() for _, p in named)

    # Modules that own parameters directly, in definition order, with the tensors they own
    # (a tensor shared by two modules belongs to the first one, as in named_parameters()).
    seen: set = set()
    layers: list = []  # (name, module, [params])
    for mname, m in model.named_modules():
        own = [p for p in m.parameters(recurse=False) if id(p) not in seen]
        if own:
            seen.update(id(p) for p in own)
            layers.append((mname, m, own))

    to_freeze: list = []
    if by == "parameters":
        budget = exact * total
        count = 0
        for _, p in named:
            if count + p.numel() > budget:
                break
            count += p.numel()
            to_freeze.append(p)
    else:
        n_layers = math.floor(exact * len(layers))
        for _, _, own in layers[:n_layers]:
            to_freeze.extend(own)
    for p in to_freeze:
        p.requires_grad_(False)

    frozen_ids = {id(p) for p in to_freeze}
    frozen_layers, partial_layers = [], []
    for mname, _, own in layers:
        n = sum(id(p) in frozen_ids for p in own)
        if n == len(own):
            frozen_layers.append(mname)
        elif n:
            partial_layers.append(mname)

    eval_norm: list = []
    if bn_eval and frozen_layers:
        order = {mname: i for i, (mname, _) in enumerate(model.named_modules())}
        last = max(order[n] for n in frozen_layers)
        frozen_set = set(frozen_layers)
        for i, (mname, m) in enumerate(model.named_modules()):
            if not isinstance(m, _NormBase):
                continue
            has_params = any(True for _ in m.parameters(recurse=False))
            if (mname in frozen_set) or (not has_params and i < last):
                m.register_forward_pre_hook(_keep_in_eval)
                m.training = False
                eval_norm.append(mname)

    frozen = sum(p.numel() for p in to_freeze)
    return FreezeSummary(
        fraction=fraction,
        by=by,
        frozen=frozen,
        trainable=total - frozen,
        total=total,
        frozen_fraction=frozen / total if total else 0.0,
        frozen_layers=frozen_layers,
        partial_layers=partial_layers,
        frozen_parameters=[n for n, p in named if id(p) in frozen_ids],
        eval_norm_layers=eval_norm,
    )


def set_frozen_bn_eval(model: nn.Module) -> list:
    """Pin every frozen BatchNorm layer of `model` to eval mode, now and after ``model.train()``.

    A BatchNorm layer counts as frozen when it has affine parameters and none of them requires
    grad. Each such layer gets the same forward pre-hook that `cifarkit.freezing.freeze_initial`
    installs: right before every forward pass it sets ``layer.training = False``, so the layer
    normalises with its running statistics and never updates them, however often
    ``model.train()`` is called (a Trainer calls it every epoch). `cifarkit.freezing.unfreeze_all`
    and `unfreeze` release the layers again; `cifarkit.freezing.frozen_norm_layers` lists them.
    Calling it twice installs no second hook. Returns the names of the pinned layers.
    Notebook 05 introduces it.
    """
    pinned = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.modules.batchnorm._BatchNorm):
            continue
        params = list(m.parameters(recurse=False))
        if not params or any(p.requires_grad for p in params):
            continue
        if not any(h is _keep_in_eval for h in m._forward_pre_hooks.values()):
            m.register_forward_pre_hook(_keep_in_eval)
        m.training = False
        pinned.append(name)
    return pinned


def unfreeze(model: nn.Module, names) -> int:
    """Make the parameters of the named submodules of `model` trainable.

    `names` is an iterable of dotted module names (``["layer1.2", "fc"]``, e.g. the list
    returned by `remove_skip_connections` plus the classifier) or a single name. Norm layers
    inside them that `set_frozen_bn_eval`/`freeze_initial` pinned to eval mode are released
    (they follow ``model.train()``/``eval()`` again). Returns the number of parameter tensors
    whose ``requires_grad`` went from False to True. Raises ValueError for an unknown name.
    Notebook 05 introduces it.
    """
    if isinstance(names, str):
        names = [names]
    modules = []
    for name in names:
        try:
            modules.append(model.get_submodule(name))
        except AttributeError as e:
            raise ValueError(f"model has no submodule {name!r}") from e
    return _unfreeze_modules(model, modules)


def recalibrate_bn(model: nn.Module, batches, max_batches: int | None = None) -> int:
    """Re-estimate every BatchNorm layer's running mean and variance of `model` from `batches`.

    Uses `torch.optim.swa_utils.update_bn`: the running statistics of every BatchNorm layer
    are reset, then the images of `batches` (an iterable of image tensors or of
    ``(images, labels)`` pairs, e.g. a `cifarkit.TensorLoader`; at most `max_batches` of them)
    go forward once in train mode under ``torch.no_grad()``, and each layer keeps the plain
    average of the batch means and variances it saw. No weight changes; the model's
    train/eval mode is restored afterwards.

    Call it on a randomly initialised network *before* freezing: its placeholder statistics
    (mean 0, variance 1) make frozen BatchNorm layers in eval mode normalise nothing. Layers
    already pinned to eval mode (`freeze_initial`, `set_frozen_bn_eval`) are released for the
    calibration pass and pinned again afterwards; without that, a pinned layer would run the
    pass in eval mode and be left with the reset placeholders.

    Returns the number of images used. Raises ValueError when `batches` yields nothing (the
    statistics are then left untouched) or `max_batches` is not a positive int.
    Notebook 02 introduces it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"recalibrate_bn() needs an nn.Module, got {type(model).__name__}")
    max_batches = positive_int("max_batches", max_batches, optional=True)
    batches = iter(batches)
    if max_batches is not None:
        batches = itertools.islice(batches, max_batches)
    first = next(batches, None)
    if first is None:
        raise ValueError("recalibrate_bn() got no batches; the BatchNorm statistics were left as they were")
    seen = 0

    def images():
        nonlocal seen
        for batch in itertools.chain([first], batches):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"recalibrate_bn() needs image tensors (or (images, labels) pairs), "
                                f"got {type(x).__name__}")
            seen += len(x)
            yield x

    pinned = [m for m in model.modules() if _remove_eval_hooks(m)]
    try:
        torch.optim.swa_utils.update_bn(images(), model)
    finally:
        for m in pinned:
            m.register_forward_pre_hook(_keep_in_eval)
            m.training = False
    return seen
