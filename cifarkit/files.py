"""Files in and out, safely: `atomic_write` / `atomic_save` (a kill never leaves a cut file or,
after the next save, an orphaned temporary one; a full disk is one line naming the file) and
`safe_load` (no code from the file runs). Checkpoints, data caches, weights, metrics files and run
reports all go through them. Downloads are `cifarkit.download`.
"""
from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import tempfile
import time
import warnings
from pathlib import Path

from .validation import WrongTypeError

__all__ = ["STALE_TEMP_AGE_S", "remove_stale_temps", "atomic_write", "atomic_save", "atomic_write_text",
           "safe_load", "disk_full_error"]

#: This process's umask (read once, at import): `atomic_write` gives a new file the mode a plain
#: ``open(path, "w")`` would, not mkstemp's owner-only 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

#: The errors of a full disk (or of a used-up quota), which `atomic_write` words as one line naming the file.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


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


def disk_full_error(exc: BaseException, path) -> OSError | None:
    """A one-line `OSError` naming `path` when `exc`, or an exception it arose from, is a full disk
    (`DISK_FULL`); else None. (torch.save reports a full disk as a ``RuntimeError`` about a zip
    position, with the `OSError` only in its context.)"""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return OSError(exc.errno, f"{os.strerror(exc.errno)}: could not write {path}")
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def atomic_write(path):
    """Write a file atomically: ``with atomic_write(path) as f: f.write(...)``.

    The data goes to a temporary file in the same folder, is flushed to disk and renamed over
    `path` (`os.replace`), so a kill leaves the old file or the new one, never a cut one; if the
    block raises, `path` is left as it was. Orphans of earlier killed saves are removed first
    (`remove_stale_temps`), missing folders created. A full disk raises one line naming `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise disk_full_error(exc, path) or exc
    try:
        with contextlib.suppress(OSError, AttributeError):  # keep the file's mode, else the usual one
            os.fchmod(fd, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        full = disk_full_error(exc, path)
        if full is not None:
            raise full from None
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through `atomic_write`; return the path."""
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))
    return Path(path)


def atomic_save(obj, path) -> None:
    """`torch.save(obj)` to `path` through `atomic_write`: the file is always either the old
    version or the new one, and no temporary file outlives the next save."""
    import torch

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

    Loads with ``weights_only=True``: tensors, numbers, strings and containers only (with `numpy`,
    NumPy arrays too); a file that asks for anything else (a pickle crafted to call ``os.system``)
    is refused before any of it runs. `trust=True` runs whatever the file contains: only for files
    you made. A missing file raises `FileNotFoundError`; a directory, an empty, damaged or refused
    file one line ("could not read <path> as a <what>: <reason>"). Notebook 04 introduces it.
    """
    import torch

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
