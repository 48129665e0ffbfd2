"""The callback protocol that `Trainer.fit` calls: any object with some of the hooks of `Callback`
(subclass it for no-op defaults), run in ascending `order`. A callback ends training early by
setting ``trainer.should_stop = True``. `ProgressBar` and `EpochLog` are the ones `Trainer` adds
itself (``progress=``, ``log=``); `Checkpoint` is `cifarkit.resume`, `Lookahead` `cifarkit.optim`.
"""
from __future__ import annotations

from .validation import positive_int


class Callback:
    """Base class with no-op hooks. Override the ones you need."""

    order = 0

    def on_fit_start(self, trainer, model):
        """Called once before the first epoch (after a resume, too)."""

    def on_epoch_start(self, trainer, model):
        """Called before each epoch's first batch (``trainer.epoch`` is set)."""

    def on_after_backward(self, trainer, model):
        """Called after each backward pass, before the optimizer step (gradients unscaled and clipped)."""

    def on_train_batch_end(self, trainer, model):
        """Called after each optimizer step; keep it cheap, no host syncs (``trainer.batch`` and
        ``trainer.last_loss`` are set)."""

    def on_epoch_end(self, trainer, model, record: dict):
        """Called after each epoch with that epoch's metrics `record`, which it may extend
        (e.g. ``record["sparsity"] = 0.3``)."""

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
    in papermill, nbval or CI logs. `Trainer(progress=...)` adds one."""

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


class StopAfter(Callback):
    """End this `fit` call after `epochs` epochs (of this call, not those restored), for work split
    over sessions: with a `Checkpoint`, which runs first, the next ``fit(..., resume_from=path)``
    goes on where this one stopped. No notebook uses it; ``bench/accuracy.py --stop-after`` does.
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
