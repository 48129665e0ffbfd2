"""The callback protocol that `Trainer.fit` calls, the checkpoint callbacks and `read_checkpoint`.
The file I/O under them (`atomic_save`, `safe_load`) lives in `cifarkit.files`.

A callback is any object with some of these methods; subclass `Callback` to get no-op defaults.

    on_fit_start(trainer, model)          before the first epoch (after a resume, too)
    on_epoch_start(trainer, model)        before each epoch's first batch (``trainer.epoch`` is set)
    on_after_backward(trainer, model)     after each backward pass, before the optimizer step (the
                                          gradients are unscaled and clipped)
    on_train_batch_end(trainer, model)    after each optimizer step (keep it cheap: no host syncs;
                                          ``trainer.batch`` and ``trainer.last_loss`` are set)
    on_epoch_end(trainer, model, record)  after each epoch; `record` is that epoch's metrics dict
                                          and may be extended (e.g. record["sparsity"] = 0.3)
    on_fit_end(trainer, model)            after the last epoch, or after an interruption
    state_dict() / load_state_dict(state) saved in and restored from checkpoints

Callbacks run in ascending `order` (default 0); `Checkpoint` runs late so it saves what the
others added to the record. The progress bar and the one line per epoch are callbacks too,
`ProgressBar` and `EpochLog`, which `Trainer` adds itself (``progress=``, ``log=``). A callback ends training early by setting ``trainer.should_stop =
True``; the Trainer stops after that epoch (see `StopAfter`).
"""
from __future__ import annotations

import torch

from .files import atomic_save, safe_load
from .validation import number_in, output_file, positive_int, positive_ints


class Callback:
    """Base class with no-op hooks. Override the ones you need."""

    order = 0

    def on_fit_start(self, trainer, model):
        """Called once before the first epoch (after a resume, too)."""

    def on_epoch_start(self, trainer, model):
        """Called before each epoch's first batch."""

    def on_after_backward(self, trainer, model):
        """Called after each backward pass, before the optimizer step."""

    def on_train_batch_end(self, trainer, model):
        """Called after each optimizer step."""

    def on_epoch_end(self, trainer, model, record: dict):
        """Called after each epoch with that epoch's metrics `record` (which may be extended)."""

    def on_fit_end(self, trainer, model):
        """Called after the last epoch, or after an interruption."""

    def state_dict(self) -> dict:
        """The state to keep in a checkpoint (plain types and tensors only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""


#: The keys of every epoch record the Trainer writes (callbacks may add more).
METRICS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s")


class ProgressBar(Callback):
    """A `tqdm.auto` bar over all the batches still to train, with the loss at each host sync.

    `mode`: True, False, or "auto": only where someone watches (a live notebook or a terminal), not
    in papermill, nbval or CI logs, where a bar would only leave lines of 0%. `Trainer(progress=...)`
    adds one."""

    order = -100  # the bar moves before other callbacks' work of the batch

    def __init__(self, mode="auto"):
        if mode not in (True, False, "auto"):
            raise ValueError(f"progress must be True, False or 'auto', got {mode!r}")
        self.mode, self.bar = mode, None

    def on_fit_start(self, trainer, model):
        """Open the bar, unless nothing is left to train or nobody would see it."""
        import sys

        from .runtime import in_kernel
        self.bar = None
        if not self.mode or trainer.epoch >= trainer.max_epochs:
            return
        if self.mode == "auto" and not in_kernel(live=True) and not sys.stderr.isatty():
            return
        from tqdm.auto import tqdm
        per_epoch = min(len(trainer.train_loader), trainer.limit_train_batches or len(trainer.train_loader))
        self.bar = tqdm(total=(trainer.max_epochs - trainer.epoch) * per_epoch, desc="training", unit="batch",
                        dynamic_ncols=True)

    def on_epoch_start(self, trainer, model):
        if self.bar is not None:
            self.bar.set_description(f"epoch {trainer.epoch}/{trainer.max_epochs}")

    def on_train_batch_end(self, trainer, model):
        if self.bar is not None:
            self.bar.update(1)
            if (trainer.batch + 1) % trainer.sync_every == 0:  # the loop syncs here anyway
                self.bar.set_postfix(loss=f"{trainer.last_loss.item():.4f}", refresh=False)

    def on_fit_end(self, trainer, model):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochLog(Callback):
    """One plain line per epoch, readable in papermill output and logs, after a first line that
    says what the training runs on: ``epoch  3/10  train_loss 0.9120  train_acc 67.80%  ...``.
    Keys that other callbacks add to the record are printed too. `Trainer(log=True)` adds one."""

    order = 1000  # after every other callback, so the line shows what they added to the record

    def on_fit_start(self, trainer, model):
        from . import devices
        tag = getattr(trainer.train_loader, "tag", None)
        print(f"Training on {devices.describe(trainer.device, trainer.precision)}"
              f"{', channels_last' if trainer.channels_last else ''}{'; data: ' + tag if tag else ''}", flush=True)

    def on_epoch_end(self, trainer, model, record):
        print(self.format(record, trainer.max_epochs), flush=True)

    @staticmethod
    def format(r: dict, max_epochs: int) -> str:
        """The line for the epoch record `r` of a run of `max_epochs` epochs."""
        parts = [f"epoch {r['epoch']:>{len(str(max_epochs))}}/{max_epochs}",
                 f"train_loss {r['train_loss']:.4f}", f"train_acc {r['train_acc']:.2%}"]
        if r.get("val_acc") is not None:
            parts += [f"val_loss {r['val_loss']:.4f}", f"val_acc {r['val_acc']:.2%}"]
        parts += [f"lr {r['lr']:.2e}", f"{r['seconds']:.1f}s", f"{r['images_per_s']:.0f} img/s"]
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items() if k not in METRICS]
        return "  ".join(parts)


# --------------------------------------------------------------------------- checkpoints

#: The entries every checkpoint written by `Checkpoint` has.
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "history", "rng")


def read_checkpoint(path, map_location="cpu", trust: bool = False) -> dict:
    """Load a checkpoint written by `Checkpoint` safely (see `safe_load`) and check its layout.

    Older checkpoints, which hold NumPy's random state as a NumPy array, load through the same
    safe path. `trust=True` is the opt-in for a file that needs full unpickling. Raises a one-line
    `ValueError` naming the file when it is no cifarkit checkpoint (e.g. a data cache or a bare
    state dict): ``runs/x.pt is not a cifarkit checkpoint: it has no 'model' entry (keys: x, y)``.
    """
    state = safe_load(path, "cifarkit checkpoint", map_location, trust,
                      opt_in="trust_checkpoint=True to fit()", numpy=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a cifarkit checkpoint: it holds a {type(state).__name__}, not a dict")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        keys = ", ".join(map(str, list(state)[:8])) + (", ..." if len(state) > 8 else "")
        raise ValueError(f"{path} is not a cifarkit checkpoint: it has no {missing[0]!r} entry "
                         f"(keys: {keys or 'none'})")
    model, optimizer = state["model"], state["optimizer"]
    if not (isinstance(model, dict) and all(isinstance(v, torch.Tensor) for v in model.values())):
        raise ValueError(f"{path} is not a cifarkit checkpoint: its 'model' entry is not a state dict")
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("param_groups"), list)):
        raise ValueError(f"{path} is not a cifarkit checkpoint: its 'optimizer' entry is not an "
                         "optimizer state dict")
    history, rng, epoch = state["history"], state["rng"], state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"{path} is damaged: its epoch is {epoch!r}")
    if not (isinstance(history, dict) and isinstance(history.get("records"), list)):
        raise ValueError(f"{path} is damaged: its 'history' entry has no list of records")
    if not (isinstance(rng, dict) and {"python", "numpy", "torch"} <= set(rng)):
        raise ValueError(f"{path} is damaged: its 'rng' entry lacks the python, numpy or torch state")
    return state


class Checkpoint(Callback):
    """Write the whole training state to `path` after every `every` epochs (and the last one).

    The file holds the model, optimizer, scheduler, history, callback and random-number states, and
    the loader's shuffling state; `Trainer.fit(..., resume_from=path)` continues from it exactly.
    Writes are atomic (see `atomic_save`)."""

    order = 100  # after every other callback, so the saved history holds what they added

    def __init__(self, path, every: int = 1):
        self.path = output_file("Checkpoint path", path)
        self.every = positive_int("every", every)

    def on_fit_start(self, trainer, model):
        """Check again that `path` can be written, before the first epoch rather than after it."""
        output_file("Checkpoint path", self.path)

    def on_epoch_end(self, trainer, model, record):
        """Save after every `every`-th epoch and after the last one."""
        if record["epoch"] % self.every == 0 or record["epoch"] == trainer.max_epochs:
            atomic_save(trainer.checkpoint_state(), self.path)


class StopAfter(Callback):
    """End this `fit` call after `epochs` epochs, for work split over several sessions.

    With a `Checkpoint` in the same Trainer, the next ``fit(..., resume_from=path)`` goes on where
    this one stopped, so a 30-epoch run can be done a few epochs at a time. Runs after
    `Checkpoint` (``order = 200``), so the last epoch is saved before stopping. Counts only the
    epochs of the current call, not those restored from a checkpoint.
    """

    order = 200

    def __init__(self, epochs: int):
        self.epochs = positive_int("epochs", epochs)
        self._done = 0

    def on_fit_start(self, trainer, model):
        """Start counting this call's epochs."""
        self._done = 0

    def on_epoch_end(self, trainer, model, record):
        """Ask the trainer to stop once `epochs` epochs of this call are done."""
        self._done += 1
        if self._done >= self.epochs:
            trainer.should_stop = True


class ProgressiveResize(Callback):
    """Progressive resizing: train the first epochs on smaller images, which cost less.

    Epoch e (counting from 1) trains on batches resized to ``sizes[e-1]`` pixels a side (bilinear,
    antialiased: `TensorLoader`'s ``resize``); the epochs after the list use the loader's own size
    again. Only the training loader changes; evaluation sees the full images. The network must
    accept other sizes (a global pool before its head, like `SpeedrunNet`). Pixels cost time
    roughly in proportion to their number, so a 24-pixel epoch costs about (24/32)^2 = 0.56 of a
    full one. Stateless: a resumed run picks the size from the epoch it resumes at.
    """

    def __init__(self, sizes):
        self.sizes = positive_ints("sizes", sizes, what=" (one side length per epoch)")
        self._native = None

    def on_fit_start(self, trainer, model):
        if not hasattr(trainer.train_loader, "resize"):
            raise TypeError("ProgressiveResize needs a training loader with a 'resize' attribute (TensorLoader), "
                            f"got {type(trainer.train_loader).__name__}")
        self._native = trainer.train_loader.resize

    def on_epoch_start(self, trainer, model):
        e = trainer.epoch
        trainer.train_loader.resize = self.sizes[e - 1] if e <= len(self.sizes) else self._native

    def on_fit_end(self, trainer, model):
        if hasattr(trainer.train_loader, "resize"):
            trainer.train_loader.resize = self._native


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
