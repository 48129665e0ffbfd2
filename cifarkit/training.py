"""Training and evaluation: `Trainer.fit`, `evaluate`, `Tester`, `History`, `seed_everything`.

The shape follows PyTorch Lightning, which students meet next:

    trainer = Trainer(max_epochs=10, callbacks=[Animator()])
    history = trainer.fit(model, train_loader, val_loader)
    evaluate(model, test_loader)            # {"loss": ..., "acc": ..., "n": ...}

The loop keeps its running sums on the device and only talks to the host at a few sync points
(every `sync_every` batches and at the end of an epoch), so a GPU is never stalled by a
per-batch `.item()`.
"""
from __future__ import annotations

import csv
import json
import os
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import devices
from .callbacks import Callback, read_checkpoint
from .plotting import in_live_kernel
from .validation import (WrongTypeError, int_in, integer, non_negative_int, output_file, positive_int,
                         positive_number)

METRICS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def seed_everything(seed: int, deterministic: bool = False) -> int:
    """Seed Python, NumPy and torch (CPU and every GPU). With `deterministic=True`, also ask torch
    for deterministic kernels (slower on GPUs; warns instead of failing for ops that have none)."""
    seed = integer("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return seed


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

    def to_json(self, path) -> Path:
        """Write records and meta to `path` as JSON; returns the path."""
        path = output_file("path", path)
        path.write_text(json.dumps({"meta": self.meta, "records": self.records}, indent=1))
        return path

    @classmethod
    def from_json(cls, path) -> "History":
        """Read a file written by `to_json`; a missing, unreadable or foreign file raises one line
        naming it (`FileNotFoundError` / `ValueError`)."""
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path} is a directory, not a History file")
        if not path.is_file():
            raise FileNotFoundError(f"no History file at {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"could not read {path} as a History JSON file ({type(e).__name__})") from None
        if not isinstance(data, dict) or not isinstance(data.get("records"), list) \
                or not all(isinstance(r, dict) for r in data["records"]):
            raise ValueError(f"{path} is not a History JSON file: it has no list of 'records'")
        return cls(data["records"], data.get("meta"))

    def to_csv(self, path) -> Path:
        """Write the records to `path` as CSV, one row per epoch; returns the path."""
        path = output_file("path", path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.records)
        return path

    def __repr__(self) -> str:
        if not self.records:
            return "History(empty)"
        last = self.records[-1]
        shown = ", ".join(f"{k}={last[k]:.4g}" for k in ("train_loss", "train_acc", "val_acc")
                          if last.get(k) is not None)
        return f"History({len(self)} epochs; last: {shown})"


def _loader_device(loader, default: torch.device) -> torch.device:
    dev = getattr(loader, "device", None)
    return torch.device(dev) if dev is not None else default


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
    comparisons of two models on the same images (`cifarkit.claims.Estimate.paired`).
    The model's train/eval mode is restored.
    """
    tta_shift = non_negative_int("tta_shift", tta_shift)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = devices.resolve_device(device) if device is not None else _model_device(model)
    precision = devices.resolve_precision(precision, device)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    hits = []
    n = 0
    try:
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
    finally:
        model.train(was_training)
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


class Tester:
    """The course pipeline speaks of a Trainer and a Tester: `Tester(loader).test(model)` is
    `evaluate(model, loader)` with the settings kept in one place."""

    __test__ = False  # tell pytest this is not a test class

    def __init__(self, loader, loss_fn=None, precision: str | None = "auto", tta_flip: bool = False,
                 tta_shift: int = 0):
        tta_shift = non_negative_int("tta_shift", tta_shift)
        self.loader, self.loss_fn, self.precision = loader, loss_fn, precision
        self.tta_flip, self.tta_shift = tta_flip, tta_shift

    def test(self, model: nn.Module) -> dict:
        """`evaluate(model, loader)` with this tester's settings."""
        return evaluate(model, self.loader, self.loss_fn, precision=self.precision,
                        tta_flip=self.tta_flip, tta_shift=self.tta_shift)


STEP_SCHEDULERS = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


class Trainer:
    """Fit a model for `max_epochs` epochs.

    Numeric arguments are checked here, with the accepted range in the message.

    Args:
        max_epochs: number of epochs (an int >= 0).
        device: "auto" (GPU when there is one), "cpu", "cuda", ...
        precision: "auto" (bfloat16 autocast on CPUs with native bf16 and recent GPUs, fp16 mixed
            precision on older GPUs), "32", "bf16-mixed" or "16-mixed". The choice is printed.
        channels_last: store conv weights and batches channels-last (None: on for 4-D image
            batches when autocast is used, where it pays off).
        callbacks: objects with `on_fit_start / on_train_batch_end / on_epoch_end / on_fit_end`
            (see `cifarkit.callbacks`),
            e.g. `Animator()`, `Checkpoint(path)`, `SparsityTracker()`.
        progress: show a tqdm progress bar: True, False, or "auto" (in a live notebook or a terminal,
            not in headless runs such as papermill; the one-line log per epoch is printed either way).
        log: print one plain line per epoch (readable in papermill output).
        sync_every: batches between the loop's host syncs (loss check and progress postfix), >= 1.
        scheduler_interval: "epoch", "step", or "auto" (per step for OneCycleLR/CyclicLR).
        grad_clip: clip the global gradient norm to this positive value (None: no clipping).
        limit_train_batches: stop each epoch after this many batches, >= 1 (quick experiments;
            None: whole epochs).
    """

    def __init__(self, max_epochs: int, device="auto", precision="auto", channels_last: bool | None = None,
                 callbacks=None, progress="auto", log: bool = True, sync_every: int = 50,
                 scheduler_interval: str = "auto", grad_clip: float | None = None,
                 limit_train_batches: int | None = None):
        max_epochs = non_negative_int("max_epochs", max_epochs)
        sync_every = positive_int("sync_every", sync_every)
        grad_clip = positive_number("grad_clip", grad_clip, optional=True)
        limit_train_batches = positive_int("limit_train_batches", limit_train_batches, optional=True)
        if progress not in (True, False, "auto"):
            raise ValueError(f"progress must be True, False or 'auto', got {progress!r}")
        if scheduler_interval not in ("auto", "epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'auto', 'epoch' or 'step', got {scheduler_interval!r}")
        self.max_epochs = max_epochs
        self.device = devices.resolve_device(device)
        self.precision = devices.resolve_precision(precision, self.device)
        self.channels_last = (self.precision != "32") if channels_last is None else channels_last
        self.callbacks = sorted(callbacks or [], key=lambda c: getattr(c, "order", 0))
        self.progress, self.log = progress, log
        self.sync_every = sync_every
        self.scheduler_interval = scheduler_interval
        self.grad_clip, self.limit_train_batches = grad_clip, limit_train_batches
        self.history = History()
        self.epoch = 0
        self.optimizer = self.scheduler = self.scaler = None
        self.model = self.loss_fn = self.train_loader = None
        self.interrupted = False
        self.should_stop = False  # a callback sets it to end training after the current epoch
        self._announced = False

    # --- public API -----------------------------------------------------------------------------
    def fit(self, model: nn.Module, train_loader, val_loader=None, optimizer=None, loss_fn=None,
            scheduler=None, resume_from=None, trust_checkpoint: bool = False) -> History:
        """Train `model` and return its `History`.

        The default optimizer is Adam (lr 1e-3) over the parameters with `requires_grad`, so frozen
        layers are left out. `resume_from` takes a checkpoint written by `Checkpoint`: training goes
        on from the epoch after it, with the model, optimizer, scheduler, history, loader and random
        states restored, so the result equals an uninterrupted run.

        The checkpoint is loaded safely (``torch.load(weights_only=True)``): a file that would run
        code when unpickled is refused, as is one that does not fit this run (another model, another
        optimizer class or parameter groups, another scheduler), each with a one-line `ValueError`
        naming the file, before anything is loaded or trained. `trust_checkpoint=True` is the opt-in
        to unpickle `resume_from` fully, for a file you made yourself that the safe path refuses
        (it runs whatever code the file contains).
        An interruption (Ctrl-C / the notebook's stop button) ends training cleanly after the batch
        in flight and returns the history so far.
        """
        if resume_from is not None and not isinstance(resume_from, (str, os.PathLike)):
            raise WrongTypeError(f"resume_from must be a checkpoint path or None, got {type(resume_from).__name__}")
        if not isinstance(trust_checkpoint, bool):  # a truthy string must not turn unsafe loading on
            raise WrongTypeError(f"trust_checkpoint must be True or False, got {trust_checkpoint!r}")
        if len(train_loader) == 0:
            raise ValueError("train_loader yields no batches")
        self.model = model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if optimizer is None:
            if not trainable:
                raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
            optimizer = torch.optim.Adam(trainable, lr=1e-3)
        self._check_optimizer(optimizer, model)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()
        self.train_loader, self.val_loader = train_loader, val_loader
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "16-mixed" else None
        self.history = History(meta={"device": devices.describe(self.device, self.precision),
                                     "precision": self.precision,
                                     "data": getattr(train_loader, "tag", None)})
        self.epoch, self.interrupted, self.should_stop = 0, False, False
        if resume_from is not None:
            self._restore(resume_from, trust_checkpoint)
        self._announce()
        for cb in self.callbacks:
            _call(cb, "on_fit_start", self, model)
        bar = self._progress_bar(len(train_loader))
        try:
            while self.epoch < self.max_epochs:
                self.epoch += 1
                record = self._run_epoch(bar)
                self.history.append(record)  # callbacks may still add keys to `record`
                for cb in self.callbacks:
                    _call(cb, "on_epoch_end", self, model, record)
                if self.log:
                    print(self._format(record), flush=True)
                if self.should_stop:
                    print(f"Stopped by a callback after epoch {self.epoch} of {self.max_epochs}.", flush=True)
                    break
        except KeyboardInterrupt:
            self.interrupted = True
            print(f"Interrupted during epoch {self.epoch}; returning the {len(self.history)} finished "
                  "epochs (the last checkpoint, if any, is intact).", flush=True)
        finally:
            if bar is not None:
                bar.close()
            for cb in self.callbacks:
                _call(cb, "on_fit_end", self, model)
        return self.history

    def checkpoint_state(self) -> dict:
        """Everything needed to continue this run exactly: see `Checkpoint`."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_class": type(self.optimizer).__name__,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scheduler_class": type(self.scheduler).__name__ if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": {"records": self.history.records, "meta": self.history.meta},
            "callbacks": {key: cb.state_dict() for key, cb in _callback_keys(self.callbacks)
                          if hasattr(cb, "state_dict")},
            "rng": {"python": random.getstate(), "numpy": _numpy_rng_state(),
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }
        if hasattr(self.train_loader, "state_dict"):
            state["train_loader"] = self.train_loader.state_dict()
        return state

    # --- internals ------------------------------------------------------------------------------
    @staticmethod
    def _check_optimizer(optimizer, model):
        owned = {id(p) for p in model.parameters()}
        params = [p for g in optimizer.param_groups for p in g["params"]]
        if params and not any(id(p) in owned for p in params):
            raise ValueError("the optimizer holds none of this model's parameters: it was built for "
                             "another model, so training would change nothing")

    def _restore(self, path, trust: bool = False):
        state = read_checkpoint(path, map_location=self.device, trust=trust)
        _check_fits_model(path, state["model"], self.model.state_dict())
        _check_fits_optimizer(path, state, self.optimizer)
        saved_scheduler, scheduler = state.get("scheduler_class"), type(self.scheduler).__name__
        if saved_scheduler and self.scheduler is not None and saved_scheduler != scheduler:
            raise ValueError(f"{path} was saved with scheduler {saved_scheduler}, this run uses {scheduler}")
        if any(k.endswith("_mask") for k in state["model"]):  # saved while pruned: rebuild the masks
            from .pruning import load_pruned_state_dict
            load_pruned_state_dict(self.model, state["model"])
        else:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.history = History(state["history"]["records"], state["history"]["meta"])
        owners = dict(_callback_keys(self.callbacks))
        saved = state.get("callbacks", {})
        if isinstance(saved, list):  # older checkpoints: one state per callback, in order
            saved = dict(zip(owners, saved))
        for key, cb in owners.items():
            if hasattr(cb, "load_state_dict") and saved.get(key):
                cb.load_state_dict(saved[key])
        unclaimed = sorted(key for key, cb_state in saved.items() if cb_state and key not in owners)
        if unclaimed:
            warnings.warn(f"{path} holds the state of callbacks this run does not have: {', '.join(unclaimed)} "
                          "(resuming without them)", stacklevel=3)
        rng = state["rng"]
        random.setstate(rng["python"])
        _set_numpy_rng_state(rng["numpy"])
        torch.set_rng_state(rng["torch"].cpu())
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        if "train_loader" in state and hasattr(self.train_loader, "load_state_dict"):
            self.train_loader.load_state_dict(state["train_loader"])
        self.epoch = state["epoch"]
        print(f"Resumed from {path} after epoch {self.epoch}.", flush=True)

    def _announce(self):
        if self.log:
            tag = getattr(self.train_loader, "tag", None)
            print(f"Training on {devices.describe(self.device, self.precision)}"
                  f"{', channels_last' if self.channels_last else ''}"
                  f"{'; data: ' + tag if tag else ''}", flush=True)

    def _progress_bar(self, per_epoch):
        if not self.progress or self.epoch >= self.max_epochs:
            return None
        if self.progress == "auto" and not in_live_kernel() and not sys.stderr.isatty():
            return None  # papermill, nbval, CI logs: a bar would only leave 0% lines; the epoch log stays
        from tqdm.auto import tqdm
        per_epoch = min(per_epoch, self.limit_train_batches or per_epoch)
        return tqdm(total=(self.max_epochs - self.epoch) * per_epoch, desc="training", unit="batch",
                    dynamic_ncols=True)

    def _step_scheduler_per_batch(self) -> bool:
        if self.scheduler is None:
            return False
        if self.scheduler_interval == "auto":
            return isinstance(self.scheduler, STEP_SCHEDULERS)
        return self.scheduler_interval == "step"

    def _run_epoch(self, bar) -> dict:
        model, device = self.model, self.device
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        first_bad = torch.full((), -1, device=device, dtype=torch.int64)
        n_seen = 0
        per_batch_sched = self._step_scheduler_per_batch()
        batch_hooks = [cb.on_train_batch_end for cb in self.callbacks
                       if getattr(type(cb), "on_train_batch_end", Callback.on_train_batch_end)
                       is not Callback.on_train_batch_end]  # skip the base class's no-op
        if bar is not None:
            bar.set_description(f"epoch {self.epoch}/{self.max_epochs}")
        start = time.perf_counter()
        for i, batch in enumerate(self.train_loader):
            if self.limit_train_batches is not None and i >= self.limit_train_batches:
                break
            x, y = _to(batch, device)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with devices.autocast(self.precision, device):
                out = model(x)
                loss = self.loss_fn(out.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
                self._clip()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self._clip()
                self.optimizer.step()
            if per_batch_sched:
                self.scheduler.step()
            for hook in batch_hooks:
                hook(self, model)
            loss = loss.detach()
            bad_now = ~torch.isfinite(loss)
            first_bad = torch.where(bad_now & (first_bad < 0), torch.as_tensor(i, device=device), first_bad)
            loss_sum += torch.nan_to_num(loss.float(), nan=0.0, posinf=0.0, neginf=0.0) * len(y)
            correct += (out.detach().argmax(1) == y).sum()
            n_seen += len(y)
            if bar is not None:
                bar.update(1)
            if (i + 1) % self.sync_every == 0:
                self._check_finite(first_bad)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        self._check_finite(first_bad)
        train_loss, train_acc = loss_sum.item() / max(n_seen, 1), correct.item() / max(n_seen, 1)
        seconds = time.perf_counter() - start
        if self.scheduler is not None and not per_batch_sched:
            self.scheduler.step()
        record = {"epoch": self.epoch, "train_loss": train_loss, "train_acc": train_acc,
                  "val_loss": None, "val_acc": None,
                  "lr": self.optimizer.param_groups[0]["lr"],
                  "seconds": seconds, "images_per_s": n_seen / seconds if seconds > 0 else float("nan")}
        if self.val_loader is not None:
            val = evaluate(model, self.val_loader, self.loss_fn, device=device, precision=self.precision)
            record["val_loss"], record["val_acc"] = val["loss"], val["acc"]
        return record

    def _clip(self):
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)

    def _check_finite(self, first_bad: torch.Tensor):
        bad = int(first_bad.item())
        if bad >= 0:
            raise NonFiniteLossError(
                f"the training loss became non-finite (NaN or inf) at epoch {self.epoch}, batch {bad}. "
                "Usual causes: a learning rate that is too high, fp16 overflow, or bad input data.")

    def _format(self, r: dict) -> str:
        parts = [f"epoch {r['epoch']:>{len(str(self.max_epochs))}}/{self.max_epochs}",
                 f"train_loss {r['train_loss']:.4f}", f"train_acc {r['train_acc']:.2%}"]
        if r.get("val_acc") is not None:
            parts += [f"val_loss {r['val_loss']:.4f}", f"val_acc {r['val_acc']:.2%}"]
        parts += [f"lr {r['lr']:.2e}", f"{r['seconds']:.1f}s", f"{r['images_per_s']:.0f} img/s"]
        extra = [k for k in r if k not in METRICS]
        parts += [f"{k} {r[k]:.4g}" if isinstance(r[k], float) else f"{k} {r[k]}" for k in extra]
        return "  ".join(parts)


CHECKPOINT_FORMAT = "cifarkit-checkpoint-2"  # 2: NumPy's random state as plain values, class names


def _numpy_rng_state() -> dict:
    """NumPy's global random state as a tensor and plain numbers, loadable without unpickling NumPy."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_rng_state(state) -> None:
    """Restore `_numpy_rng_state`, or the tuple of `np.random.get_state` in older checkpoints."""
    if isinstance(state, dict):
        keys = np.asarray(state["keys"].cpu().numpy(), dtype=np.uint32)
        state = (state["kind"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    np.random.set_state(state)


def _plain_shapes(state_dict: dict) -> dict:
    """name -> shape, a pruned pair ``x_orig`` / ``x_mask`` counted as the plain tensor ``x``."""
    shapes = {}
    for key, value in state_dict.items():
        base = key[:-5]
        if key.endswith("_mask") and base + "_orig" in state_dict:
            continue
        if key.endswith("_orig") and base + "_mask" in state_dict:
            key = base
        shapes[key] = tuple(value.shape)
    return shapes


def _few(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")


def _check_fits_model(path, saved: dict, own: dict) -> None:
    """Refuse, naming `path`, a saved model state whose names or shapes differ from the model's."""
    saved, own = _plain_shapes(saved), _plain_shapes(own)
    missing, unexpected = set(own) - set(saved), set(saved) - set(own)
    if missing or unexpected:
        raise ValueError(f"{path} was saved from another model: "
                         + "; ".join(f"{what} {_few(keys)}" for what, keys in
                                     (("it lacks", missing), ("it has extra", unexpected)) if keys))
    bad = [k for k in own if own[k] != saved[k]]
    if bad:
        raise ValueError(f"{path} was saved from another model: {bad[0]} has shape {saved[bad[0]]} there, "
                         f"{own[bad[0]]} here ({len(bad)} tensor(s) differ)")


def _check_fits_optimizer(path, state: dict, optimizer) -> None:
    """Refuse, naming `path`, a saved optimizer state of another class or with other parameter groups."""
    saved_groups, groups = state["optimizer"]["param_groups"], optimizer.param_groups
    ours, theirs = type(optimizer).__name__, state.get("optimizer_class")
    if theirs is not None and theirs != ours:
        raise ValueError(f"{path} was saved with optimizer {theirs}, this run uses {ours}")
    if theirs is None and saved_groups:  # older checkpoints: compare the names of the settings
        mine, saved = set(groups[0]) - {"params"}, set(saved_groups[0]) - {"params"}
        if mine - saved and saved - mine:  # one-sided differences come from torch versions
            raise ValueError(f"{path} was saved with another optimizer than this run's {ours} (its settings: "
                             f"{_few(saved)}; this one's: {_few(mine)})")
    sizes = [len(g["params"]) for g in groups]
    saved_sizes = [len(g.get("params", ())) for g in saved_groups]
    if sizes != saved_sizes:
        raise ValueError(f"{path} holds {len(saved_sizes)} optimizer parameter group(s) of sizes {saved_sizes}, "
                         f"this run's optimizer has {len(sizes)} of sizes {sizes}")


def _callback_keys(callbacks) -> list:
    """(key, callback) pairs naming each callback's state in a checkpoint: its class name, with
    ``#2``, ``#3`` ... for further callbacks of the same class. Keys, not positions, so a run can
    be resumed with callbacks added, removed or reordered and each state still finds its owner."""
    seen: dict[str, int] = {}
    pairs = []
    for cb in callbacks:
        name = type(cb).__name__
        seen[name] = seen.get(name, 0) + 1
        pairs.append((name if seen[name] == 1 else f"{name}#{seen[name]}", cb))
    return pairs


def _call(cb, hook, *args):
    fn = getattr(cb, hook, None)
    if fn is not None:
        fn(*args)


__all__ = ["Trainer", "History", "evaluate", "tta_logits", "Tester", "seed_everything", "NonFiniteLossError",
           "Callback", "METRICS"]
