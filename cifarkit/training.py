"""Training and evaluation: `Trainer.fit`, `evaluate`, `History`.

The shape follows PyTorch Lightning, which students meet next:

    trainer = Trainer(max_epochs=10, callbacks=[Animator()])
    history = trainer.fit(model, train_loader, val_loader)
    evaluate(model, test_loader)            # {"loss": ..., "acc": ..., "n": ...}

The loop keeps its running sums on the device and only talks to the host at a few sync points
(every `sync_every` batches and at the end of an epoch), so a GPU is never stalled by a
per-batch `.item()`.
"""
from __future__ import annotations

import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import devices
from .callbacks import METRICS, Callback, EpochLog, ProgressBar
from .resume import restore, trainer_state
from .runtime import eval_mode
from .validation import (WrongTypeError, int_in, non_negative_int, positive_int,
                         positive_number)



class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class History:
    """Per-epoch metrics of a `fit`: a list of records (dicts), viewable by column.

    >>> history["val_acc"]        # one value per epoch
    >>> history.best("val_acc")   # the record of the best epoch
    """

    def __init__(self, records: list[dict] | None = None, meta: dict | None = None):
        self.records: list[dict] = [dict(r) for r in (records or [])]
        self.meta: dict = dict(meta or {})

    def append(self, record: dict) -> None:
        """Add one epoch's record."""
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list:
        """The column `key`: one value per epoch (None where an epoch lacks it)."""
        if not any(key in r for r in self.records):
            raise KeyError(f"no metric {key!r}; have {self.columns}")
        return [r.get(key) for r in self.records]

    @property
    def columns(self) -> list[str]:
        """The metric names, the standard ones (`METRICS`) first."""
        cols = [m for m in METRICS if any(m in r for r in self.records)]
        cols += sorted({k for r in self.records for k in r} - set(cols))
        return cols

    def last(self) -> dict:
        """A copy of the last epoch's record."""
        if not self.records:
            raise ValueError("history is empty")
        return dict(self.records[-1])

    def best(self, metric: str = "val_acc", mode: str = "auto") -> dict:
        """The record with the best `metric`: highest for accuracies, lowest for losses (mode "auto").

        Beware: picking the best epoch by *test* accuracy is selection on the test set; quote the
        last epoch, or select on a validation split."""
        if mode == "auto":
            mode = "min" if "loss" in metric else "max"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        scored = [r for r in self.records if r.get(metric) is not None]
        if not scored:
            raise KeyError(f"no values of {metric!r} in history")
        pick = min if mode == "min" else max
        return dict(pick(scored, key=lambda r: r[metric]))

    def to_dict(self) -> dict:
        """Columns as lists, plus `meta`."""
        return {"meta": self.meta, **{c: self[c] for c in self.columns}}

    def __repr__(self) -> str:
        if not self.records:
            return "History(empty)"
        last = self.records[-1]
        shown = ", ".join(f"{k}={last[k]:.4g}" for k in ("train_loss", "train_acc", "val_acc")
                          if last.get(k) is not None)
        return f"History({len(self)} epochs; last: {shown})"


def _to(batch, device):
    x, y = batch[0], batch[1]
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def tta_logits(model: nn.Module, x: torch.Tensor, flip: bool = False, shift: int = 0) -> torch.Tensor:
    """The logits of `model` for the batch `x`, averaged over test-time augmented views.

    `flip`: average each view with its mirror image. `shift` > 0: also look at the images moved
    by `shift` pixels up-left and down-right (border reflected); those two views together get
    half the weight and the unshifted view the other half. No flags: just ``model(x)``.
    `shift` must be smaller than the image side (the border is mirrored).
    """
    shift = int_in("shift", shift, 0, min(x.shape[-2:]) - 1)

    def view_logits(v):
        return (model(v) + model(v.flip(3))) / 2 if flip else model(v)

    out = view_logits(x)
    if shift:
        h, w = x.shape[-2:]
        padded = F.pad(x, (shift,) * 4, mode="reflect")
        moved = [padded[..., :h, :w], padded[..., 2 * shift:, 2 * shift:]]
        layout = torch.channels_last if x.stride(1) == 1 else torch.contiguous_format  # keep x's layout
        out = out / 2 + sum(view_logits(v.contiguous(memory_format=layout)) for v in moved) / 4
    return out


@torch.inference_mode()
def evaluate(model: nn.Module, loader, loss_fn=None, device=None, precision: str | None = "auto",
             tta_flip: bool = False, tta_shift: int = 0, per_image: bool = False) -> dict:
    """Average loss and accuracy of `model` over `loader`, in eval mode, without gradients.

    Test-time augmentation (see `tta_logits`): `tta_flip=True` averages the logits of each image
    and its mirror image; `tta_shift=k` adds views moved by k pixels.
    Returns {"loss": float, "acc": float, "n": int}; with `per_image=True` also "correct", a bool
    tensor (on the CPU) saying which images were classified right, in loader order, for paired
    comparisons of two models on the same images (`cifarkit.course.claims.Estimate.paired`).
    The model's train/eval mode is restored.
    Notebook 02 introduces it.
    """
    tta_shift = non_negative_int("tta_shift", tta_shift)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = devices.resolve_device(device) if device is not None else _model_device(model)
    precision = devices.resolve_precision(precision, device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    hits = []
    n = 0
    with eval_mode(model):
        for batch in loader:
            x, y = _to(batch, device)
            with devices.autocast(precision, device):
                out = tta_logits(model, x, tta_flip, tta_shift)
                loss = loss_fn(out.float(), y)
            loss_sum += loss.detach().float() * len(y)
            right = out.argmax(1) == y
            correct += right.sum()
            if per_image:
                hits.append(right)
            n += len(y)
    if n == 0:
        raise ValueError("evaluate() got an empty loader")
    result = {"loss": loss_sum.item() / n, "acc": correct.item() / n, "n": n}
    if per_image:
        result["correct"] = torch.cat(hits).cpu()
    return result


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


STEP_SCHEDULERS = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


class Trainer:
    """Fit a model for `max_epochs` epochs. Arguments are checked, with the accepted range in the
    message. Notebook 01 introduces it.

    Args:
        max_epochs: number of epochs (an int >= 0).
        device: "auto" (GPU when there is one), "cpu", "cuda", ...
        precision: "auto" (bf16 autocast on CPUs with native bf16 and recent GPUs, fp16 on older
            GPUs), "32", "bf16-mixed" or "16-mixed".
        channels_last: True or False forces the layout; None lets `devices.use_channels_last` decide.
        callbacks: `cifarkit.callbacks.Callback` objects, e.g. `Animator()`, `Checkpoint(path)`.
        progress: a `ProgressBar` callback: True, False, or "auto" (only where someone watches).
        log: an `EpochLog` callback: one plain line per epoch (readable in papermill output).
        sync_every: batches between the loop's host syncs (loss check and progress postfix), >= 1.
        scheduler_interval: "epoch", "step", or "auto" (per step for OneCycleLR/CyclicLR).
        grad_clip: clip the global gradient norm to this positive value (None: no clipping).
        limit_train_batches: stop each epoch after this many batches (None: whole epochs).
        micro_batch: forward and backward each batch in chunks of at most this many images, then
            take one optimizer step on the whole batch's gradient (a loss with ``reduction="mean"``
            or ``"sum"``), in less memory; BatchNorm normalises each chunk by its own statistics.

    The loop below is all of training; checkpoints (`cifarkit.resume`), the bar and the log are
    callbacks, called through one dispatcher (`_emit`).
    """

    def __init__(self, max_epochs: int, device="auto", precision="auto", channels_last: bool | None = None,
                 callbacks=None, progress="auto", log: bool = True, sync_every: int = 50,
                 scheduler_interval: str = "auto", grad_clip: float | None = None,
                 limit_train_batches: int | None = None, micro_batch: int | None = None):
        self.max_epochs = non_negative_int("max_epochs", max_epochs)
        self.sync_every = positive_int("sync_every", sync_every)
        self.grad_clip = positive_number("grad_clip", grad_clip, optional=True)
        self.limit_train_batches = positive_int("limit_train_batches", limit_train_batches, optional=True)
        self.micro_batch = positive_int("micro_batch", micro_batch, optional=True)
        if scheduler_interval not in ("auto", "epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'auto', 'epoch' or 'step', got {scheduler_interval!r}")
        defaults = ([ProgressBar(progress)] if progress is not False else []) + ([EpochLog()] if log else [])
        self.device = devices.resolve_device(device)
        self.precision = devices.resolve_precision(precision, self.device)
        self.requested_channels_last = channels_last
        self.channels_last = devices.use_channels_last(self.precision, self.device, requested=channels_last)
        self.callbacks = sorted(list(callbacks or []) + defaults, key=lambda c: getattr(c, "order", 0))
        self.progress, self.log, self.scheduler_interval = progress, log, scheduler_interval
        self.history, self.epoch, self.batch, self.last_loss = History(), 0, 0, None
        self.optimizer = self.scheduler = self.scaler = None
        self.model = self.loss_fn = self.train_loader = self.val_loader = None
        self.interrupted = self.should_stop = False  # a callback sets should_stop to end after this epoch

    def fit(self, model: nn.Module, train_loader, val_loader=None, optimizer=None, loss_fn=None,
            scheduler=None, resume_from=None, trust_checkpoint: bool = False) -> History:
        """Train `model` and return its `History`. Notebook 01 introduces it.

        The default optimizer is Adam (lr 1e-3) over the trainable parameters (`trainable_parameters`).
        `resume_from`: a file written by `Checkpoint`; training goes on after its epoch exactly as an
        uninterrupted run would (`cifarkit.resume.restore` checks it first; `trust_checkpoint=True`
        unpickles a file of your own that the safe path refuses). An interruption (Ctrl-C, the
        notebook's stop button) ends training after the batch in flight and returns the history so far.
        """
        _check_fit_arguments(train_loader, resume_from, trust_checkpoint)
        self._prepare(model, train_loader, val_loader, optimizer, loss_fn, scheduler)
        if resume_from is not None:
            restore(self, resume_from, trust_checkpoint)  # cifarkit.resume: the epoch, weights, RNGs...
        self._emit("on_fit_start")
        try:
            while self.epoch < self.max_epochs:
                self.epoch += 1
                self._emit("on_epoch_start")
                record = self._train_one_epoch()
                record.update(self._validate())
                self.history.append(record)  # callbacks may still add keys to `record`
                self._emit("on_epoch_end", record)
                if self.should_stop:
                    print(f"Stopped by a callback after epoch {self.epoch} of {self.max_epochs}.", flush=True)
                    break
        except KeyboardInterrupt:
            self.interrupted = True
            print(f"Interrupted during epoch {self.epoch}; returning the {len(self.history)} finished "
                  "epochs (the last checkpoint, if any, is intact).", flush=True)
        finally:
            self._emit("on_fit_end")
        return self.history

    def checkpoint_state(self) -> dict:
        """Everything needed to continue this run exactly: see `cifarkit.resume`."""
        return trainer_state(self)

    def _prepare(self, model, train_loader, val_loader, optimizer, loss_fn, scheduler) -> None:
        """Put the model on the device (channels-last where it pays), choose the default optimizer
        and loss, make the fp16 gradient scaler, and start an empty `History`."""
        self.channels_last = devices.use_channels_last(self.precision, self.device, model, self.requested_channels_last)
        self.model = model.to(self.device, memory_format=torch.channels_last if self.channels_last
                              else torch.preserve_format)
        self.optimizer, self.scheduler = _optimizer_for(model, optimizer), scheduler
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()
        self.train_loader, self.val_loader = train_loader, val_loader
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "16-mixed" else None
        self.history = History(meta={"device": devices.describe(self.device, self.precision),
                                     "precision": self.precision, "data": getattr(train_loader, "tag", None)})
        self.epoch, self.interrupted, self.should_stop, self._hooks = 0, False, False, {}

    def _emit(self, hook: str, *args) -> None:
        """Call `hook` (trainer, model, *args) on every callback that defines it, in `order` (the
        base class's no-ops are skipped, which keeps the per-batch hooks cheap)."""
        if hook not in self._hooks:
            self._hooks[hook] = [getattr(cb, hook) for cb in self.callbacks if hasattr(cb, hook)
                                 and getattr(type(cb), hook, None) is not getattr(Callback, hook, None)]
        for fn in self._hooks[hook]:
            fn(self, self.model, *args)

    def _train_one_epoch(self) -> dict:
        """One pass over the training batches: a step per batch, the scheduler, the callbacks.
        Loss and accuracy are summed on the device (`_RunningSums`) and read once, at the end. The
        record's ``lr`` is the (first group's) rate of the epoch's last step, not the next one's."""
        self.model.train()
        sums = _RunningSums(self.device)
        per_batch = _steps_per_batch(self.scheduler, self.scheduler_interval)
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        for i, (x, y) in enumerate(self._batches()):
            lr = self.optimizer.param_groups[0]["lr"]
            out, loss = self._step(x, y)
            if per_batch:
                self.scheduler.step()
            self.batch, self.last_loss = i, loss.detach()
            self._emit("on_train_batch_end")
            sums.add(i, self.last_loss, out, y)
            if (i + 1) % self.sync_every == 0:
                sums.check_finite(self.epoch)  # a host sync, every `sync_every` batches
        sums.check_finite(self.epoch)
        seconds = time.perf_counter() - start
        if self.scheduler is not None and not per_batch:
            self.scheduler.step()
        return {"epoch": self.epoch, "train_loss": sums.loss.item() / max(sums.n, 1),
                "train_acc": sums.correct.item() / max(sums.n, 1), "val_loss": None, "val_acc": None,
                "lr": lr, "seconds": seconds, "images_per_s": sums.n / seconds if seconds > 0 else float("nan")}

    def _batches(self):
        """The epoch's training batches on the device (channels-last when chosen), at most
        `limit_train_batches` of them."""
        for i, batch in enumerate(self.train_loader):
            if self.limit_train_batches is not None and i >= self.limit_train_batches:
                return
            x, y = _to(batch, self.device)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y

    def _validate(self) -> dict:
        """`evaluate` on the validation loader, as ``val_loss`` / ``val_acc`` (nothing without one)."""
        if self.val_loader is None:
            return {}
        val = evaluate(self.model, self.val_loader, self.loss_fn, device=self.device, precision=self.precision)
        return {"val_loss": val["loss"], "val_acc": val["acc"]}

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on the batch `(x, y)`: forward and backward (scaled for fp16), in
        chunks of `micro_batch` images when set, the after-backward hook, clipping, the step.
        Returns the detached outputs and the batch's loss (each chunk's weighted by its size)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.micro_batch is None or len(y) <= self.micro_batch:
            chunks = [(x, y)]
        else:
            chunks = list(zip(x.split(self.micro_batch), y.split(self.micro_batch)))
        # a mean over the batch is the chunks' means weighted by their share; a sum is their sum
        summed = getattr(self.loss_fn, "reduction", "mean") == "sum"
        outs, total = [], None
        for xc, yc in chunks:
            with devices.autocast(self.precision, self.device):
                out = self.model(xc)
                loss = self.loss_fn(out.float(), yc)
            share = len(yc) / len(y)
            part = loss if summed or len(chunks) == 1 else loss * share
            (self.scaler.scale(part) if self.scaler is not None else part).backward()
            outs.append(out.detach())
            total = loss.detach() * share if total is None else total + loss.detach() * share
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self._emit("on_after_backward")
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return (outs[0] if len(outs) == 1 else torch.cat(outs)), total


def _steps_per_batch(scheduler, interval: str) -> bool:
    """Whether `scheduler` steps after every batch (else after every epoch)."""
    if scheduler is None:
        return False
    return isinstance(scheduler, STEP_SCHEDULERS) if interval == "auto" else interval == "step"


class _RunningSums:
    """An epoch's loss and accuracy sums, kept on the device so no batch waits for the host, and the
    first batch whose loss was not finite (-1: none yet)."""

    def __init__(self, device):
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)
        self.first_bad = torch.full((), -1, device=device, dtype=torch.int64)
        self.n = 0

    def add(self, i: int, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        """Count batch `i`: its `loss` (a non-finite one as 0, remembering `i`), its right answers."""
        bad = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, torch.as_tensor(i, device=self.first_bad.device), self.first_bad)
        self.loss += torch.nan_to_num(loss.float(), nan=0.0, posinf=0.0, neginf=0.0) * len(y)
        self.correct += (out.detach().argmax(1) == y).sum()
        self.n += len(y)

    def check_finite(self, epoch: int) -> None:
        """A host sync: raise when a batch of `epoch` had a non-finite loss."""
        bad = int(self.first_bad.item())
        if bad >= 0:
            raise NonFiniteLossError(
                f"the training loss became non-finite (NaN or inf) at epoch {epoch}, batch {bad}. "
                "Usual causes: a learning rate that is too high, fp16 overflow, or bad input data.")


def _check_fit_arguments(train_loader, resume_from, trust_checkpoint) -> None:
    if resume_from is not None and not isinstance(resume_from, (str, os.PathLike)):
        raise WrongTypeError(f"resume_from must be a checkpoint path or None, got {type(resume_from).__name__}")
    if not isinstance(trust_checkpoint, bool):  # a truthy string must not turn unsafe loading on
        raise WrongTypeError(f"trust_checkpoint must be True or False, got {trust_checkpoint!r}")
    if len(train_loader) == 0:
        raise ValueError("train_loader yields no batches")


def trainable_parameters(model: nn.Module) -> list:
    """The parameters an optimizer should see: those with ``requires_grad=True``, in definition order.

    Pass the result to the optimizer after freezing, e.g.
    ``torch.optim.SGD(trainable_parameters(model), lr=0.1)``. Notebook 02 introduces it.
    """
    return [p for p in model.parameters() if p.requires_grad]


def _optimizer_for(model, optimizer):
    """`optimizer` checked against `model`, or by default Adam (lr 1e-3) over its trainable parameters."""
    if optimizer is None:
        if not trainable_parameters(model):
            raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
        return torch.optim.Adam(trainable_parameters(model), lr=1e-3)
    owned = {id(p) for p in model.parameters()}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if params and not any(id(p) in owned for p in params):
        raise ValueError("the optimizer holds none of this model's parameters: it was built for "
                         "another model, so training would change nothing")
    return optimizer


__all__ = ["Trainer", "History", "evaluate", "tta_logits", "trainable_parameters",
           "NonFiniteLossError", "Callback", "METRICS"]
