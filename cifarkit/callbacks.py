"""The callback protocol that `Trainer.fit` calls, the checkpoint callbacks, and the file I/O under
them: `atomic_write` / `atomic_save` (a kill never leaves a cut file or, after the next save, an
orphaned temporary one) and `safe_load` / `read_checkpoint` (no code from the file runs).

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

import contextlib
import os
import pickle
import re
import tempfile
import time
import warnings
from pathlib import Path

import torch

from .validation import WrongTypeError, number_in, output_file, positive_int


class Callback:
    """Base class with no-op hooks. Override the ones you need."""

    order = 0

    def on_fit_start(self, trainer, model):
        """Called once before the first epoch (after a resume, too)."""

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


# --------------------------------------------------------------------------- saving and loading

#: A temporary file of a save older than this (in seconds) is stale even if its writer's pid is in use.
STALE_TEMP_AGE_S = 3600.0


def _writer_gone(tmp: Path, pid: str | None) -> bool:
    """Whether the save that left `tmp` is over: its process `pid` no longer exists, or it is old."""
    try:
        if time.time() - tmp.stat().st_mtime > STALE_TEMP_AGE_S:
            return True
    except OSError:  # already gone
        return False
    if pid is None or os.name == "nt" or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def remove_stale_temps(path) -> int:
    """Delete the temporary files that saves to `path` left behind when they were killed mid-write.

    `atomic_write` names its temporary file ``.<name>.<pid>-<random>.tmp`` next to `path`; one whose
    process no longer exists (or older than `STALE_TEMP_AGE_S`) is an orphan. Saves still running
    in other processes keep theirs. Returns the number of files removed.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)-)?[A-Za-z0-9_]+\.tmp")
    removed = 0
    with contextlib.suppress(OSError):
        for tmp in path.parent.iterdir():
            match = pattern.fullmatch(tmp.name)
            if match and _writer_gone(tmp, match.group(1)):
                with contextlib.suppress(OSError):
                    tmp.unlink()
                    removed += 1
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path):
    """Write a file atomically: ``with atomic_write(path) as f: f.write(...)``.

    The data goes to a uniquely named temporary file in the same folder, is flushed to disk
    (fsync) and then renamed over `path` (`os.replace`, atomic within one file system), so a kill
    at any moment leaves either the old file or the new one, never a truncated one. If the block
    raises, the temporary file is removed and `path` is left as it was. Orphans of earlier,
    killed saves to the same `path` are removed first (`remove_stale_temps`). Missing folders are
    created. `OSError`s (a read-only folder, a full disk) propagate unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_save(obj, path) -> None:
    """`torch.save(obj)` to `path` through `atomic_write`: the file is always either the old
    version or the new one, and no temporary file outlives the next save."""
    with atomic_write(path) as f:
        torch.save(obj, f)


def _numpy_globals() -> list:
    """The NumPy names that a checkpoint holding NumPy arrays or scalars (the NumPy random state of
    older checkpoints, a metric stored as a NumPy float) needs; they only rebuild arrays."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    rebuild, scalar = core.multiarray._reconstruct, core.multiarray.scalar
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.uint32, np.bool_)]
    return [rebuild, (rebuild, "numpy.core.multiarray._reconstruct"), scalar,
            (scalar, "numpy.core.multiarray.scalar"), np.ndarray, np.dtype, *dtypes]


def safe_load(path, what: str = "file", map_location="cpu", trust: bool = False, opt_in: str | None = None,
              numpy: bool = False):
    """`torch.load(path)` without running code from the file, with one-line errors naming it.

    Loads with ``weights_only=True``: tensors, numbers, strings and containers only (and, with
    `numpy`, NumPy arrays and scalars). A file that asks for anything else -- a pickle crafted to
    call ``os.system``, say -- is refused before any of it runs. `trust=True` loads with
    ``weights_only=False``, which runs whatever the file contains: only for files you made.

    Raises `FileNotFoundError` for a missing file and a one-line `ValueError` ("could not read
    <path> as a <what>: <reason>") for a directory, an empty, truncated or damaged file, and a
    refused one (naming what it asked to import and, when given, the `opt_in` that would load it
    anyway).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise WrongTypeError(f"the {what} path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)

    def refused(reason: str) -> ValueError:
        return ValueError(f"could not read {path} as a {what}: {reason}")

    if path.is_dir():
        raise refused("it is a directory")
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    if path.stat().st_size == 0:
        raise refused("it is empty (0 bytes); a save that never finished?")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            if trust:
                return torch.load(path, map_location=map_location, weights_only=False)
            with torch.serialization.safe_globals(_numpy_globals() if numpy else []):
                return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(e))
        if wanted is None:
            raise refused("it was not written by torch.save, or it is damaged") from None
        hint = f"; pass {opt_in} only for a file you made yourself" if opt_in else ""
        raise refused(f"it asks to import {wanted.group(1)}, which a {what} never needs and which "
                      f"could run code{hint}") from None
    except Exception as e:  # truncated zip archives, random bytes, I/O errors
        reason = (str(e).strip().splitlines() or [""])[0][:150]
        raise refused(f"it is truncated, damaged or not a torch file ({type(e).__name__}: {reason})") from None


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
