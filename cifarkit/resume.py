"""Checkpoints: the `Checkpoint` callback writes what `trainer_state` gathers (model, optimizer,
scheduler, scaler, history, each callback's state, the loader's shuffling, every random generator);
`restore` (``Trainer.fit(resume_from=path)``) checks the file against the run, then puts it all back.
"""
from __future__ import annotations

import random
import warnings

import numpy as np
import torch

from .callbacks import Callback
from .files import atomic_save, safe_load
from .validation import output_file, positive_int

CHECKPOINT_FORMAT = "cifarkit-checkpoint-2"  # 2: NumPy's random state as plain values, class names

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_KEYS", "Checkpoint", "read_checkpoint", "trainer_state", "restore",
           "callback_keys"]


#: The entries every checkpoint written by `Checkpoint` has.
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "history", "rng")


def read_checkpoint(path, map_location="cpu", trust: bool = False) -> dict:
    """Load a checkpoint written by `Checkpoint` safely (`safe_load`; `trust=True` unpickles fully)
    and check its layout: another file (a data cache, a bare state dict) raises one line naming it,
    ``runs/x.pt is not a cifarkit checkpoint: it has no 'model' entry (keys: x, y)``."""
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


def trainer_state(trainer) -> dict:
    """Everything needed to continue `trainer`'s run exactly (see `Checkpoint`)."""
    scheduler, scaler = trainer.scheduler, trainer.scaler
    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "optimizer_class": type(trainer.optimizer).__name__,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scheduler_class": type(scheduler).__name__ if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "history": {"records": trainer.history.records, "meta": trainer.history.meta},
        "callbacks": {key: cb.state_dict() for key, cb in callback_keys(trainer.callbacks)
                      if hasattr(cb, "state_dict")},
        "rng": {"python": random.getstate(), "numpy": _numpy_rng_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
    }
    if hasattr(trainer.train_loader, "state_dict"):
        state["train_loader"] = trainer.train_loader.state_dict()
    return state


def restore(trainer, path, trust: bool = False) -> None:
    """Put the run saved in `path` back into `trainer` (set up by `fit`: model, optimizer,
    scheduler and callbacks in place). A file that does not fit this run (another model, optimizer
    class or parameter groups, another scheduler) is refused, naming it, before anything changes."""
    state = read_checkpoint(path, map_location=trainer.device, trust=trust)
    _check_fits_model(path, state["model"], trainer.model.state_dict())
    _check_fits_optimizer(path, state, trainer.optimizer)
    saved_scheduler, scheduler = state.get("scheduler_class"), type(trainer.scheduler).__name__
    if saved_scheduler and trainer.scheduler is not None and saved_scheduler != scheduler:
        raise ValueError(f"{path} was saved with scheduler {saved_scheduler}, this run uses {scheduler}")
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    for part in ("scheduler", "scaler"):
        if getattr(trainer, part) is not None and state.get(part) is not None:
            getattr(trainer, part).load_state_dict(state[part])
    trainer.history = type(trainer.history)(state["history"]["records"], state["history"]["meta"])
    _restore_callbacks(path, trainer.callbacks, state.get("callbacks", {}))
    rng = state["rng"]
    random.setstate(rng["python"])
    _set_numpy_rng_state(rng["numpy"])
    torch.set_rng_state(rng["torch"].cpu())
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
    if "train_loader" in state and hasattr(trainer.train_loader, "load_state_dict"):
        trainer.train_loader.load_state_dict(state["train_loader"])
    trainer.epoch = state["epoch"]
    print(f"Resumed from {path} after epoch {trainer.epoch}.", flush=True)


def _restore_callbacks(path, callbacks, saved) -> None:
    """Give each callback its saved entry; warn about saved entries no callback of this run owns."""
    owners = dict(callback_keys(callbacks))
    if isinstance(saved, list):  # older checkpoints: one state per callback, in order
        saved = dict(zip(owners, saved))
    for key, cb in owners.items():
        if hasattr(cb, "load_state_dict") and saved.get(key):
            cb.load_state_dict(saved[key])
    unclaimed = sorted(key for key, cb_state in saved.items() if cb_state and key not in owners)
    if unclaimed:
        warnings.warn(f"{path} holds the state of callbacks this run does not have: {', '.join(unclaimed)} "
                      "(resuming without them)", stacklevel=4)


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
    saved_keys, own_keys = list(saved), list(own)
    saved, own = _plain_shapes(saved), _plain_shapes(own)
    missing, unexpected = set(own) - set(saved), set(saved) - set(own)
    if missing or unexpected:
        raise ValueError(f"{path} was saved from another model: "
                         + "; ".join(f"{what} {_few(keys)}" for what, keys in
                                     (("it lacks", missing), ("it has extra", unexpected)) if keys))
    pruned = sorted(k[:-5] for k in set(saved_keys) ^ set(own_keys) if k.endswith("_mask"))
    if pruned:
        raise ValueError(f"{path} was saved from a model pruned differently from this one (e.g. {pruned[0]}): "
                         "prune this model the same way before resuming (`cifarkit.pruning`)")
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


def callback_keys(callbacks) -> list:
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
