"""The callback protocol that `Trainer.fit` calls, and the checkpoint callback.

A callback is any object with some of these methods; subclass `Callback` to get no-op defaults.

    on_fit_start(trainer, model)          before the first epoch (after a resume, too)
    on_train_batch_end(trainer, model)    after each optimizer step (keep it cheap: no host syncs)
    on_epoch_end(trainer, model, record)  after each epoch; `record` is that epoch's metrics dict
                                          and may be extended (e.g. record["sparsity"] = 0.3)
    on_fit_end(trainer, model)            after the last epoch, or after an interruption
    state_dict() / load_state_dict(state) saved in and restored from checkpoints

Callbacks run in ascending `order` (default 0); `Checkpoint` runs last so it saves what the
others added to the record. A callback ends training early by setting ``trainer.should_stop =
True``; the Trainer stops after that epoch (see `StopAfter`).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


class Callback:
    """Base class with no-op hooks. Override the ones you need."""

    order = 0

    def on_fit_start(self, trainer, model):
        pass

    def on_train_batch_end(self, trainer, model):
        pass

    def on_epoch_end(self, trainer, model, record: dict):
        pass

    def on_fit_end(self, trainer, model):
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def atomic_save(obj, path) -> None:
    """`torch.save` to a temporary file in the same folder, then rename it over `path`.

    A rename within one file system is atomic, so a kill at any moment leaves either the old file
    or the new one, never a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class Checkpoint(Callback):
    """Write the whole training state to `path` after every `every` epochs (and the last one).

    The file holds the model, optimizer, scheduler, history, callback and random-number states, and
    the loader's shuffling state; `Trainer.fit(..., resume_from=path)` continues from it exactly.
    Writes are atomic (see `atomic_save`)."""

    order = 100  # after every other callback, so the saved history holds what they added

    def __init__(self, path, every: int = 1):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path, self.every = path, every

    def on_epoch_end(self, trainer, model, record):
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
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {epochs!r}")
        self.epochs = epochs
        self._done = 0

    def on_fit_start(self, trainer, model):
        self._done = 0

    def on_epoch_end(self, trainer, model, record):
        self._done += 1
        if self._done >= self.epochs:
            trainer.should_stop = True


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
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.total_steps, self.every, self.decay = total_steps, every, decay
        self.step = 0
        self.slow: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer, model):
        if self.slow is None:  # a resumed run brings its own copy
            self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer, model):
        self.step += 1
        if self.step % self.every:
            return
        decay = self.decay * min(1.0, self.step / self.total_steps) ** 3
        current = model.state_dict()
        for name, slow in self.slow.items():
            slow.lerp_(current[name], 1.0 - decay)
            current[name].copy_(slow)

    def state_dict(self) -> dict:
        return {"step": self.step, "slow": self.slow}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.slow = int(state["step"]), state["slow"]
