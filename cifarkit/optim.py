"""`MuonSGD`: Muon on the convolution filters and Nesterov SGD on everything else, in one optimizer.

Muon (Keller Jordan, 2024) replaces a weight matrix's momentum update by the nearest
semi-orthogonal matrix (all singular values about 1), computed with a few Newton-Schulz
iterations (`newton_schulz`). airbench94_muon, the fastest public CIFAR-10 recipe, trains its
convolution filters this way and everything else with Nesterov SGD; the ``speedrun`` and
``airbench94-muon`` recipes do the same through this class.

Why the kit has its own optimizer instead of ``torch.optim.Muon`` (torch 2.14.1, measured and
read side by side; ``python bench/speedrun_ablation.py --compare-muon`` repeats the measurement):

* ``torch.optim.Muon`` refuses any parameter that is not 2-D, at construction. Conv filters are
  ``out x in x k x k``; training them with it means storing the filters as 2-D parameters (a
  model change that breaks the kit's checkpoints and ``channels_last``) or keeping 2-D proxy
  parameters in sync with the real ones every step. Here the filter is viewed as
  ``out x (in*k*k)`` inside the step, whatever its memory format.
* It does not renormalise the weights. airbench's Muon scales each filter tensor back to a
  Frobenius norm of sqrt(out_channels) (each output filter of unit norm on average) before each
  update. Under BatchNorm the filters are scale-free, so this fixes the step's *relative* size at
  ``lr / sqrt(in*k*k)``-ish for the whole run; without it the weights grow and the effective
  learning rate decays on its own schedule. torch's version would need a step pre-hook for it.
* Its momentum is an exponential average (``buf.lerp_(g, 1 - m)``, then ``g.lerp(buf, m)`` for
  Nesterov), airbench's a plain sum (``buf = m*buf + g``, then ``g + m*buf``). The two differ
  by the constant factor ``1 - m``, which the orthogonalisation removes (it divides by the
  norm first), so the updates agree to bf16 rounding: the test suite checks it.
* ``adjust_lr_fn``: ``None``/``"original"`` multiplies the lr by sqrt(max(1, rows/cols)), which
  is 1 for every filter of the speedrun nets (out <= in*9), so it changes nothing here;
  ``"match_rms_adamw"`` (0.2*sqrt(max(rows, cols))) and ``"spectral_unclamped"``
  (sqrt(rows/cols)) would rescale the tuned lr of 0.24. This class applies no adjustment.
* Its default is 5 Newton-Schulz steps and decoupled weight decay 0.1; airbench uses 3 steps and
  no decay on the filters (renormalisation would undo a decay anyway). Both are settable there.
* The Trainer (and its checkpoint/resume) takes one optimizer and one scheduler. torch's Muon
  would need a second optimizer for the biases and the head; `MuonSGD` holds both kinds of
  group, so one state dict and one `LambdaLR` cover the whole run.

One step takes about as long with either, the orthogonalisation of the same input is
bit-identical, and a few steps from the same start agree to bf16 rounding (``python
bench/speedrun_ablation.py --compare-muon`` measures it; bench/results.md). So speed does not
decide; the 4-D filters, the renormalisation and the single optimizer do.

Precision of the orthogonalisation: airbench runs it in bf16, and so does this class where the
hardware multiplies bf16 natively (GPUs, CPUs with AVX512-BF16 or AMX). On a CPU without them torch
emulates bf16 matrix products, many times slower than float32 ones, so there the products are
done in float32 (``ns_dtype=None``, the default); ``python bench/speedrun_ablation.py
--compare-muon`` times both (bench/results.md).
"""
from __future__ import annotations

import functools
import math

import torch

from .callbacks import Callback
from . import devices
from .validation import int_in, number_in, positive_int

__all__ = ["MuonSGD", "newton_schulz", "NS_COEFFICIENTS", "fast_matmul_dtype", "Lookahead"]

#: the quintic Newton-Schulz coefficients of the public Muon write-up (steepest slope at zero; the
#: singular values end up between about 0.7 and 1.2 rather than exactly 1, which trains as well)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


@functools.lru_cache(maxsize=None)  # asked once per parameter per optimizer step
def fast_matmul_dtype(device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype in which `device` multiplies matrices fastest without losing range, for work that
    chooses its own dtype (`MuonSGD`'s orthogonalisation): `devices.cuda_dtype` on a GPU; on a CPU
    bfloat16 where it is native (`devices.cpu_has_fast_bf16`), else float32, because emulated bf16
    products are slower than float32 ones (`bench/results.md`)."""
    device = devices.resolve_device(device)
    if device.type == "cuda":
        return devices.cuda_dtype(device)
    if device.type == "cpu":
        return torch.bfloat16 if devices.cpu_has_fast_bf16() else torch.float32
    return torch.float32


def newton_schulz(matrix: torch.Tensor, steps: int = 3, dtype: torch.dtype | None = None,
                  eps: float = 1e-7) -> torch.Tensor:
    """An approximately semi-orthogonal matrix with the singular vectors of the 2-D `matrix`.

    The matrix is scaled to a Frobenius norm of 1 (so every singular value is at most 1), then
    each of `steps` iterations maps its singular values s to ``a s + b s^3 + c s^5``
    (`NS_COEFFICIENTS`), which pushes them all toward 1. Works on the wide orientation (fewer
    rows than columns), in `dtype` (None: the fastest safe dtype of the matrix's device,
    `fast_matmul_dtype`); returns the input's shape and dtype.
    """
    if matrix.dim() != 2:
        raise ValueError(f"matrix must be 2-D, got shape {tuple(matrix.shape)}")
    return _orthogonal(matrix, steps, dtype or fast_matmul_dtype(matrix.device), eps).to(matrix.dtype)


def _orthogonal(matrix: torch.Tensor, steps: int, dtype: torch.dtype, eps: float = 1e-7) -> torch.Tensor:
    """`newton_schulz` left in `dtype` (the optimizer adds it to the weights as it is)."""
    a, b, c = NS_COEFFICIENTS
    tall = matrix.shape[0] > matrix.shape[1]
    x = matrix.to(dtype)
    if tall:
        x = x.mT
    x = x / (x.norm() + eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


class MuonSGD(torch.optim.Optimizer):
    """Muon for the parameter groups with ``orthogonalize=True``, Nesterov SGD for the others.

    SGD groups follow ``torch.optim.SGD(nesterov=True, dampening=0)`` exactly: the weight decay
    is added to the gradient (``g + weight_decay * p``), then ``buf = momentum*buf + g`` and the
    step is ``lr * (g + momentum*buf)``.

    Orthogonalised groups (airbench's Muon; see the module docstring for the comparison with
    ``torch.optim.Muon``): ``buf = momentum*buf + g``, ``u = g + momentum*buf`` (Nesterov), the
    filter is first rescaled to a Frobenius norm of sqrt(out_channels) (``renormalize``), then
    moved by ``lr * newton_schulz(u viewed as out x rest)``. They take no weight decay.

    Args:
        params: parameters or parameter groups; a group may set any of the options below.
        lr, momentum, weight_decay, nesterov: as for SGD (defaults for the groups).
        orthogonalize: the default kind of group (False: SGD).
        ns_steps: Newton-Schulz iterations (airbench: 3).
        renormalize: rescale orthogonalised parameters before each update (see above).
        ns_dtype: the precision of the Newton-Schulz products. None (default): the parameter's
            device's `fast_matmul_dtype`: bf16 (as airbench) where it is native,
            float16 on GPUs whose tensor cores lack bf16 (T4, V100), else float32 (emulated bf16
            products are many times slower than float32 ones).
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = True, orthogonalize: bool = False, ns_steps: int = 3,
                 renormalize: bool = True, ns_dtype: torch.dtype | None = None):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                        orthogonalize=orthogonalize, ns_steps=ns_steps, renormalize=renormalize,
                        ns_dtype=ns_dtype)
        super().__init__(params, defaults)
        for group in self.param_groups:
            _check_group(group)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: dict) -> None:
        momentum, orthogonal = group["momentum"], group["orthogonalize"]
        g = p.grad
        if group["weight_decay"] and not orthogonal:
            g = g.add(p, alpha=group["weight_decay"])
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = g.clone()
            buf = state["momentum_buffer"]
        else:
            buf = state["momentum_buffer"].mul_(momentum).add_(g)
        update = g.add(buf, alpha=momentum) if group["nesterov"] else buf
        if orthogonal:
            if group["renormalize"]:
                p.mul_(math.sqrt(p.shape[0]) / p.norm().clamp_min(1e-12))
            dtype = group["ns_dtype"] or fast_matmul_dtype(p.device)
            flat = _orthogonal(update.reshape(p.shape[0], -1), group["ns_steps"], dtype)
            update = flat.reshape(p.shape)
        p.add_(update, alpha=-group["lr"])


def _check_group(group: dict) -> None:
    """Refuse settings a group cannot use, naming the setting."""
    if not (group["lr"] >= 0 and math.isfinite(group["lr"])):
        raise ValueError(f"lr must be a non-negative number, got {group['lr']!r}")
    if not 0.0 <= group["momentum"] < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {group['momentum']!r}")
    if not (group["weight_decay"] >= 0 and math.isfinite(group["weight_decay"])):
        raise ValueError(f"weight_decay must be a non-negative number, got {group['weight_decay']!r}")
    int_in("ns_steps", group["ns_steps"], 1, 20)
    if group["orthogonalize"]:
        if group["weight_decay"]:
            raise ValueError("weight_decay must be 0 in an orthogonalize group (the renormalised "
                             "filters keep their norm, so a decay would do nothing)")
        flat = [tuple(p.shape) for p in group["params"] if p.dim() < 2]
        if flat:
            raise ValueError(f"orthogonalize groups take matrices or filters (2-D or more), got shape {flat[0]}")


class Lookahead(Callback):
    """Every `every` optimizer steps, move a slow copy of the weights a little toward the current
    ones, then put the model back on the slow copy (the "lookahead" / EMA scheme of fast CIFAR-10
    training, after Zhang et al. 2019 and hlb-cifar10).

    The slow copy covers every floating-point tensor of the state dict, BatchNorm statistics
    included. Its decay grows with training progress as ``decay * (step / total_steps) ** 3``:
    early on the model moves freely (decay near 0), late in training it is averaged strongly,
    which smooths out the noise of the last, still large, steps. The step count and the slow
    copy are part of the checkpoint.

    Args:
        total_steps: optimizer steps of the whole run (epochs x batches per epoch).
        every: steps between two updates.
        decay: the final decay per update (default 0.95 per step, over 5 steps).
    """

    def __init__(self, total_steps: int, every: int = 5, decay: float = 0.95 ** 5):
        self.total_steps = positive_int("total_steps", total_steps)
        self.every = positive_int("every", every)
        self.decay = number_in("decay", decay, 0.0, 1.0, hi_open=True)
        self.step = 0
        self.slow: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer, model):
        """Take the slow copy of the starting weights (unless a resumed run brought one)."""
        if self.slow is None:  # a resumed run brings its own copy
            self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer, model):
        """Count the step; every `every` steps, update the slow copy and load it into the model."""
        self.step += 1
        if self.step % self.every:
            return
        decay = self.decay * min(1.0, self.step / self.total_steps) ** 3
        current = model.state_dict()
        for name, slow in self.slow.items():
            slow.lerp_(current[name], 1.0 - decay)
            current[name].copy_(slow)

    def state_dict(self) -> dict:
        """The step count and the slow copy."""
        return {"step": self.step, "slow": self.slow}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.step, self.slow = int(state["step"]), state["slow"]
