"""Loading CIFAR-10 (or the synthetic stand-in) as tensors.

Two ways to read the release's python format (`cifar-10-batches-py/`):

* `verify=True` (the default) goes through `torchvision.datasets.CIFAR10`, which checks every
  file's md5 sum against the official release. `download=True` fetches the release archive first
  when none of its files is on disk (with a progress bar, checked against the release's md5, and in
  bounded time: see `DOWNLOAD_DEADLINE_S`).
* `verify=False` reads a copy you trust but whose checksums differ (a re-packed or re-encoded
  copy, for instance). The files are still checked for counts, shapes, dtypes and label range,
  and a warning says, once, that checksums were not verified. Verification is never switched off
  behind your back: only this argument (or `cifarkit data prepare --no-verify`) does it. The
  batches are unpickled by a loader that accepts numpy arrays and plain values only, so a crafted
  file cannot run code.

The first load of a split writes it as one tensor file next to the data (atomically: a failure
leaves the previous file or none), so later loads take a fraction of a second. Where the data
lives: `root`, else `$CIFARKIT_DATA`, else `~/.cache/cifarkit`.

`load_data(source="auto")` is what notebooks call: real CIFAR-10 when a copy is found under the
data root, else downloaded when the network answers (`network_available`), else the generated
stand-in from `cifarkit.synthetic`, announced as such once per process. Environment:

* `CIFARKIT_OFFLINE=1`: never download (auto uses a local copy or the synthetic set).
* `CIFARKIT_NETWORK=1` / `0`: the network check's answer, set by `cifarkit run` for every notebook
  so that the check runs once per run; the run's first line then explains an offline fallback
  and each notebook only refers to it.

For teaching the textbook path (a `Dataset` of PIL images with torchvision transforms, batched by
a `DataLoader`), see `torchvision_dataset` and `textbook_loader`.
"""
from __future__ import annotations

import contextlib
import http.client
import os
import pickle
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch

from . import settings
from .dataset import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, MAX_SEED, CifarData
from .download import DOWNLOAD_TIMEOUT_S, open_url
from .files import atomic_save, atomic_write, safe_load
from .settings import NETWORK_ENV, OFFLINE_ENV  # noqa: F401  (named in messages; data.NETWORK_ENV as before)
from .validation import WrongTypeError, integer, non_negative_int, number_in

RELEASE_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
RELEASE_FILES = TRAIN_FILES + TEST_FILES + (META_FILE,)  # what torchvision md5-checks
SPLIT_SIZES = {True: 50_000, False: 10_000}
DOWNLOAD_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # = torchvision's CIFAR10.url
DOWNLOAD_DEADLINE_S = 600.0  # the whole download (about 163 MB); each network wait: DOWNLOAD_TIMEOUT_S
SLOW_CHECK_AFTER_S = 30.0    # from then on, give up as soon as the pace so far would miss the deadline
PROBE_TIMEOUT_S = 2.0        # `network_available`: DNS lookup plus TCP connect
ANNOUNCED_OFFLINE = "offline: see the run's first line"


class DataUnavailableError(RuntimeError):
    """CIFAR-10 is neither on disk nor downloadable. `reason` is a short form of the message."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


class CorruptDataError(RuntimeError):
    """A data file exists but cannot be read or fails the sanity checks."""


class UnverifiedDataWarning(UserWarning):
    """Data was loaded without md5 verification."""


# --- checking arguments ----------------------------------------------------------------------------

def _brief(e: BaseException) -> str:
    """An exception as one short line: its type and the first sentence of its message."""
    text = next((line.strip() for line in str(e).splitlines() if line.strip()), "").split(". ")[0]
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


def _as_path(name: str, value, allow_none: bool = True) -> Path | None:
    """`value` as an expanded `Path`, or TypeError / ValueError naming `name`."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise WrongTypeError(f"{name} must be a path (str or os.PathLike){' or None' if allow_none else ''}, "
                             f"got {value!r} ({type(value).__name__})")
    if os.fspath(value) == "":
        raise ValueError(f"{name} must not be an empty path")
    return Path(value).expanduser()


def _check_flag(name: str, value) -> bool:
    """`value` as a bool, or TypeError naming `name` (`train="no"` would otherwise count as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise WrongTypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def data_root(root=None) -> Path:
    """The data directory: `root`, else `$CIFARKIT_DATA`, else `~/.cache/cifarkit`."""
    root = _as_path("root", root)
    if root is not None:
        return root
    return settings.data_dir() or Path.home() / ".cache" / "cifarkit"


def _cache_path(root: Path, train: bool, verified: bool) -> Path:
    split = "train" if train else "test"
    return root / f"cifar10-{split}{'' if verified else '-unverified'}.pt"


def _ways_out(root: Path) -> str:
    return (f"Either (1) connect to the network and call load_cifar10(download=True) "
            f"(or run `python -m cifarkit data download`), or (2) point CIFARKIT_DATA or root= at a "
            f"directory that already holds {RELEASE_DIR}/ (looked in {root}), or prepare one with "
            f"`python -m cifarkit data prepare --from DIR`.")


def _missing_files(directory: Path, names) -> list[str]:
    """Those of `names` that are not regular files in `directory`."""
    return [name for name in names if not (directory / name).is_file()]


def _missing_message(directory: Path, missing: list[str]) -> str:
    verb = "is" if len(missing) == 1 else "are"
    problem = f"{directory} is incomplete: {', '.join(missing)} {verb} missing (or not a regular file). "
    if any((directory / name).exists() for name in RELEASE_FILES):  # a partial copy: never overwritten
        return problem + (f"Restore them, or delete {directory} and run `python -m cifarkit data download` "
                          "(or `python -m cifarkit data prepare --from DIR` with a complete copy).")
    return problem + _ways_out(directory.parent)


# --- one split ------------------------------------------------------------------------------------

def load_cifar10(root=None, train: bool = True, download: bool = False, verify: bool = True):
    """One CIFAR-10 split as `(images, labels)`: uint8 `N x 3 x 32 x 32` and int64 `N`.

    Args:
        root: data directory (default: `$CIFARKIT_DATA`, else `~/.cache/cifarkit`).
        train: the 50,000-image training split, else the 10,000-image test split.
        download: fetch the release when none of its files is on disk (only with `verify=True`;
            refused while `CIFARKIT_OFFLINE=1`).
        verify: check md5 sums through torchvision; `False` reads a trusted copy unchecked
            (still validating counts, shapes, dtypes and labels) and warns once.

    Raises `DataUnavailableError` (missing and not downloadable, with both ways out in the
    message), `CorruptDataError` (naming the bad file), TypeError / ValueError for bad arguments.
    """
    root = data_root(root)
    train, download, verify = (_check_flag(name, value) for name, value in
                               (("train", train), ("download", download), ("verify", verify)))
    if download and not verify:
        raise ValueError("download=True needs verify=True: a fresh download is always checked")
    for cached_verified in ((True,) if verify else (True, False)):
        cache = _cache_path(root, train, cached_verified)
        if cache.is_file():
            x, y = _read_cache(cache, train, cached_verified)
            if not cached_verified:
                _warn_unverified(cache)
            return x, y
    x, y = _read_split(root, train, verify, download)
    _write_cache(_cache_path(root, train, verify), x, y)
    return x, y


def _read_split(root: Path, train: bool, verify: bool, download: bool = False):
    """One split from the release files under `root`: md5-checked, or read unchecked (and said so)."""
    if verify:
        return _load_verified(root, train, download)
    x, y = _read_release(root / RELEASE_DIR, train)
    _warn_unverified(root / RELEASE_DIR)
    return x, y


_warned_unverified: set[str] = set()


def _warn_unverified(path: Path) -> None:
    key = str(path.resolve())
    if key in _warned_unverified:
        return
    _warned_unverified.add(key)
    msg = (f"CIFAR-10 at {path} was loaded WITHOUT md5 verification (verify=False): counts, shapes "
           "and labels were checked, the files' checksums were not.")
    # once per copy (`load_data` also labels the data); shown at the user's line that loaded it
    warnings.warn(msg, UnverifiedDataWarning, stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The `stacklevel` that makes a warning raised by its caller point at the first frame outside
    this package (Python 3.12's `skip_file_prefixes`, for 3.11 too)."""
    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _read_cache(path: Path, train: bool, verified: bool):
    """A cached split, loaded safely (`files.safe_load`: tensors only, no code runs) and checked
    like the release; any problem is one line naming the file and what to do."""
    try:
        blob = safe_load(path, "cifarkit data cache")
        if not (isinstance(blob, dict) and "x" in blob and "y" in blob):
            raise CorruptDataError(f"{path} is not a cifarkit data cache (no 'x' and 'y' tensors)")
        _check_split(blob["x"], blob["y"], train, path)
    except (OSError, ValueError, CorruptDataError) as e:
        raise CorruptDataError(f"{e}. Delete it; {_rebuild_advice(path.parent, train, verified)}") from None
    return blob["x"], blob["y"]


def _rebuild_advice(root: Path, train: bool, verified: bool) -> str:
    """What to do once a broken cache is deleted, given what else is on disk."""
    release = root / RELEASE_DIR
    if not _missing_files(release, TRAIN_FILES if train else TEST_FILES):
        how = "" if verified else " with verify=False"
        return f"the next load{how} rebuilds it from the release files in {release}."
    return (f"there are no release files in {release} to rebuild it from, so get them: "
            f"`python -m cifarkit data download --root {root}` (needs the network) or "
            f"`python -m cifarkit data prepare --from DIR --root {root}`.")


def _write_cache(path: Path, x, y) -> None:
    try:
        atomic_save({"x": x, "y": y}, path)
    except OSError as e:  # a read-only data directory is fine: we just load slower next time
        warnings.warn(f"could not write the cache {path} ({_brief(e)}); the next load reads the release "
                      "files again", stacklevel=_user_stacklevel())


def _write_caches(root: Path, verified: bool, splits: dict) -> None:
    """Write the caches of all `splits` ({train: (x, y)}), all or nothing: each goes to a staged
    file next to its target first (`atomic_save`), and only when all are written are they renamed.
    Raises OSError naming `root` when that fails; the previous caches are then untouched."""
    targets = {train: _cache_path(root, train, verified) for train in splits}
    in_the_way = [t for t in targets.values() if t.exists() and not t.is_file()]
    if in_the_way:
        raise IsADirectoryError(f"cannot write the CIFAR-10 cache: {in_the_way[0]} is in the way (not a file)")
    staged = []
    try:
        for train, (x, y) in splits.items():
            staged.append((targets[train].with_name(f".{targets[train].name}.staged"), targets[train]))
            atomic_save({"x": x, "y": y}, staged[-1][0])
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as e:
        raise OSError(f"cannot write the CIFAR-10 cache in {root} ({_brief(e)}); nothing was changed") from None
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def _check_split(x, y, train: bool, source) -> None:
    want = SPLIT_SIZES[train]
    if not (isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and tuple(x.shape) == (want, 3, 32, 32)):
        got = f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
        raise CorruptDataError(f"{source}: expected uint8 images of shape ({want}, 3, 32, 32), got {got}")
    if not (isinstance(y, torch.Tensor) and y.dtype == torch.int64 and tuple(y.shape) == (want,)):
        got = f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}"
        raise CorruptDataError(f"{source}: expected {want} int64 labels, got {got}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        raise CorruptDataError(f"{source}: labels outside 0..9 (min {int(y.min())}, max {int(y.max())})")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles the release's batches and nothing else: plain values, numpy arrays and scalars.
    (A plain `pickle.load` calls whatever a crafted file names, so it may run any code.)"""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
               *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                 for name in ("_reconstruct", "scalar"))}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 batch never does")
        return super().find_class(module, name)


def _read_batch_file(path: Path):
    try:
        with path.open("rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
        # the release's keys are bytes here; a copy re-packed by Python 3 may use str keys
        data, labels = (np.asarray(batch[k] if k in batch else batch[k.decode()]) for k in (b"data", b"labels"))
    except Exception as e:
        raise CorruptDataError(f"{path} is not a readable CIFAR-10 batch ({_brief(e)}); "
                               "delete it and fetch or build the copy again") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CorruptDataError(f"{path}: expected uint8 rows of 3072 values, got {data.dtype} {data.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise CorruptDataError(f"{path}: expected {len(data)} integer labels, got {labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise CorruptDataError(f"{path}: labels outside 0..9 (min {labels.min()}, max {labels.max()})")
    return data, labels.astype(np.int64)


def _read_release(directory: Path, train: bool):
    """Read the release's python-format batches without checksums, validating what we can."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataUnavailableError(f"no {RELEASE_DIR}/ directory at {directory.parent}. "
                                   + _ways_out(directory.parent))
    names = TRAIN_FILES if train else TEST_FILES
    missing = _missing_files(directory, names)
    if missing:
        raise DataUnavailableError(_missing_message(directory, missing))
    parts = [_read_batch_file(directory / name) for name in names]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    y = torch.from_numpy(labels)
    _check_split(x, y, train, directory)
    return x, y


def _load_verified(root: Path, train: bool, download: bool):
    """One split through `torchvision.datasets.CIFAR10`, which md5-checks every release file;
    with `download`, the release is fetched first when none of its files is there."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    release = root / RELEASE_DIR
    missing = _missing_files(release, RELEASE_FILES)
    if download and len(missing) == len(RELEASE_FILES):
        _download_release(root)
        missing = _missing_files(release, RELEASE_FILES)
    if not release.is_dir():
        raise DataUnavailableError("CIFAR-10 is not on disk. " + _ways_out(root),
                                   reason=f"no CIFAR-10 copy under {root}")
    if missing:
        raise DataUnavailableError(_missing_message(release, missing))
    try:
        ds = CIFAR10(str(root), train=train, download=False)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        sums = [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], CIFAR10.meta["md5"])]
        bad = [name for name, md5 in sums if not check_integrity(str(release / name), md5)]
        raise CorruptDataError(
            f"{', '.join(bad) or 'the files'} in {release} fail torchvision's md5 check (a modified or "
            "re-encoded copy, or a broken download). If you trust this copy, load it with "
            "verify=False (or `python -m cifarkit data prepare --from DIR --no-verify`); "
            "otherwise delete it and download again.") from None
    x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    y = torch.tensor(ds.targets, dtype=torch.int64)
    _check_split(x, y, train, release)
    return x, y


# --- downloading ------------------------------------------------------------------------------------

def _download_release(root: Path) -> None:
    """Fetch the release archive to `root`, check its md5 and unpack it into `root/cifar-10-batches-py/`.

    The md5 sums are torchvision's (`CIFAR10.tgz_md5`; the unpacked files are checked again when
    loaded); the transfer is ours so that it can keep a deadline. A failure leaves no archive."""
    if settings.offline():
        raise DataUnavailableError(f"{OFFLINE_ENV}=1 is set, so CIFAR-10 is not downloaded. " + _ways_out(root),
                                   reason=f"{OFFLINE_ENV}=1 is set")
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity, extract_archive

    archive = root / CIFAR10.filename
    start = time.monotonic()
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not check_integrity(str(archive), CIFAR10.tgz_md5):
            print(f"Downloading CIFAR-10 (about 163 MB) from {DOWNLOAD_URL} to {root}", flush=True)
            _fetch(DOWNLOAD_URL, archive, DOWNLOAD_DEADLINE_S)
        if not check_integrity(str(archive), CIFAR10.tgz_md5):
            archive.unlink()
            raise CorruptDataError(f"the downloaded {archive.name} fails its md5 check (a broken mirror or "
                                   "proxy); it was deleted, try again later")
        with tempfile.TemporaryDirectory(prefix=".unpack-", dir=root) as tmp:
            extract_archive(str(archive), tmp)
            (root / RELEASE_DIR).mkdir(exist_ok=True)
            for f in (Path(tmp) / RELEASE_DIR).iterdir():
                os.replace(f, root / RELEASE_DIR / f.name)
        archive.unlink()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:  # TimeoutError is an OSError
        reason = f"could not download CIFAR-10 after {time.monotonic() - start:.0f} s ({_brief(e)})"
        raise DataUnavailableError(f"{reason}. " + _ways_out(root), reason=reason) from None


def _fetch(url: str, dst: Path, deadline: float) -> None:
    """Download `url` to `dst` atomically (`files.atomic_write`), with a progress bar, in at most
    about `deadline` seconds.

    Each network wait (name lookup, connection, each read) takes at most `DOWNLOAD_TIMEOUT_S`
    (`download.open_url`); after `SLOW_CHECK_AFTER_S` the transfer stops as soon as its pace so far
    would miss the deadline. Raises TimeoutError (an OSError, like the network's own errors) then;
    a failed download leaves no file behind."""
    from tqdm.auto import tqdm

    start, done = time.monotonic(), 0
    with atomic_write(dst) as f, open_url(url, DOWNLOAD_TIMEOUT_S) as response, \
            tqdm(total=response.length, unit="B", unit_scale=True, desc="CIFAR-10", mininterval=1.0) as bar:
        total = response.length
        while chunk := response.read1(1 << 16):
            f.write(chunk)
            bar.update(len(chunk))
            done += len(chunk)
            _check_pace(done, total, time.monotonic() - start, deadline)
        if total and done < total:
            raise ConnectionError(f"the server closed the connection after {done / 1e6:.1f} of {total / 1e6:.0f} MB")


def _check_pace(done: int, total: int | None, elapsed: float, deadline: float) -> None:
    """TimeoutError when a download is past its deadline or, judged by its pace so far, will be."""
    if elapsed > deadline:
        raise TimeoutError(f"the download passed its {deadline:.0f} s limit with {done / 1e6:.1f} MB received")
    if total and elapsed > SLOW_CHECK_AFTER_S and elapsed * total / max(done, 1) > deadline:
        raise TimeoutError(f"the download is too slow ({done / 1e6 / elapsed:.2f} MB/s): {total / 1e6:.0f} MB "
                           f"would take longer than the {deadline:.0f} s limit")


_network: dict = {}  # this process's probe result: {"up": bool, "why": str | None}


def network_available(timeout: float = PROBE_TIMEOUT_S, refresh: bool = False) -> bool:
    """Whether CIFAR-10 can be downloaded now, decided in at most `timeout` seconds.

    In order: `CIFARKIT_OFFLINE=1` -> False; `CIFARKIT_NETWORK=1` / `0` (set by `cifarkit run` for
    its notebooks) -> that answer, no probe; else a probe, cached for the process (`refresh=True`
    probes again): a DNS lookup and a TCP connection to the download host (or to the proxy, when
    one is configured for https), abandoned after `timeout` s. Never raises for a network problem;
    raises ValueError for a malformed environment variable or timeout."""
    return _network_state(timeout, refresh)[0]


def _network_state(timeout: float = PROBE_TIMEOUT_S, refresh: bool = False) -> tuple[bool, str | None]:
    """`network_available`'s answer and, when it is False, why (one phrase)."""
    timeout = number_in("timeout", timeout, 0, 60, lo_open=True)
    refresh = _check_flag("refresh", refresh)
    announced = settings.network()
    if settings.offline():
        return False, ANNOUNCED_OFFLINE if announced is not None else f"{OFFLINE_ENV}=1 is set"
    if announced is not None:
        return announced, ANNOUNCED_OFFLINE
    if refresh or not _network:
        why = _probe(DOWNLOAD_URL, timeout)
        _network.update(up=why is None, why=why and f"offline ({why})")
    return _network["up"], _network["why"]


def _probe_target(url: str) -> tuple[str, int]:
    """Where a download of `url` first connects: the proxy for its scheme when one is set, else its host."""
    parts = urllib.parse.urlparse(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _probe(url: str, timeout: float) -> str | None:
    """None when a TCP connection towards `url` (DNS lookup included) opens within `timeout` s,
    else why not. Runs in a daemon thread, since a DNS lookup cannot be given a timeout."""
    outcome = {}

    def attempt():
        try:
            host, port = _probe_target(url)
            outcome["target"] = f"{host}:{port}"
            socket.create_connection((host, port), timeout=timeout).close()
            outcome["ok"] = True
        except (OSError, ValueError) as e:
            outcome["error"] = _brief(e)

    thread = threading.Thread(target=attempt, name="cifarkit-network-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if outcome.get("ok"):
        return None
    error = outcome.get("error")
    return (f"could not reach {outcome.get('target', urllib.parse.urlparse(url).hostname)}"
            + (f": {error}" if error else f" within {timeout:g} s"))


# --- both splits ------------------------------------------------------------------------------------

def cifar10_status(root=None) -> dict:
    """What is available under the data root, without loading anything big. `release_files` lists
    the release's files that are present (`release_dir` is set when its folder exists at all)."""
    root = data_root(root)
    caches = {p.name: p.stat().st_size for p in sorted(root.glob("cifar10-*.pt")) if p.is_file()} \
        if root.is_dir() else {}
    release = root / RELEASE_DIR
    return {"root": str(root), "release_dir": str(release) if release.is_dir() else None,
            "release_files": [n for n in RELEASE_FILES if n not in _missing_files(release, RELEASE_FILES)],
            "caches": caches,
            "verified_cache": all(_cache_path(root, t, True).is_file() for t in (True, False)),
            "unverified_cache": all(_cache_path(root, t, False).is_file() for t in (True, False))}


def describe_auto(root=None) -> str:
    """What `load_data("auto")` will use, as one phrase (for a run's first line or `data info`).

    May probe the network (`network_available`, cached); call it before setting `CIFARKIT_NETWORK`."""
    root = data_root(root)
    status = cifar10_status(root)
    if status["verified_cache"]:
        return f"CIFAR-10 (verified cache in {root})"
    if status["unverified_cache"]:
        return f"CIFAR-10, checksums not verified (prepared with --no-verify, in {root})"
    if status["release_files"]:
        return f"CIFAR-10 from the release files in {root / RELEASE_DIR}, if they pass the md5 check"
    up, why = _network_state()
    if up:
        return (f"CIFAR-10, downloaded on first use to {root} (about 163 MB, md5-checked, "
                f"at most {DOWNLOAD_DEADLINE_S:.0f} s)")
    return (f"the SYNTHETIC stand-in (not CIFAR-10): no CIFAR-10 copy under {root} and {why}. "
            "For real data see `python -m cifarkit data --help`")


def prepare_cifar10(source_dir, root=None, verify: bool = True) -> dict:
    """Build the tensor caches under the data root from an existing copy at `source_dir`
    (a folder holding `cifar-10-batches-py/`, or that folder itself). Returns the status.

    Both splits are read and checked before anything is written, and both caches are written or
    neither (see `_write_caches`): a failure leaves the data root as it was. Raises
    `DataUnavailableError` / `CorruptDataError` naming the missing or bad file, OSError when the
    data root cannot be written."""
    source_dir = _as_path("source_dir", source_dir, allow_none=False)
    verify = _check_flag("verify", verify)
    root = data_root(root)
    if source_dir.name == RELEASE_DIR:
        source_dir = source_dir.parent
    if not (source_dir / RELEASE_DIR).is_dir():
        raise DataUnavailableError(f"no {RELEASE_DIR}/ folder under {source_dir}")
    splits = {train: _read_split(source_dir, train, verify) for train in (True, False)}
    _write_caches(root, verify, splits)
    return cifar10_status(root)


SOURCES = ("auto", "cifar10", "cifar10-unverified", "synthetic")


def load_data(source: str = "auto", n_train: int | None = None, n_test: int | None = None, seed: int = 0,
              root=None, verbose: bool = True) -> CifarData:
    """Both splits as a `CifarData`, optionally as stratified subsets of `n_train` / `n_test`.

    `source`:
      "auto"      real CIFAR-10 when a copy is found under the data root (a verified copy first,
                  then one prepared with --no-verify, labelled as such); else, when the network
                  answers (`network_available`), downloaded; else the synthetic set, with one line
                  saying why (once per process; only a pointer when `cifarkit run` announced it);
      "cifar10"   real CIFAR-10 (verified), downloading it when missing;
      "cifar10-unverified"  a trusted copy read without checksums;
      "synthetic" the generated stand-in (`cifarkit.synthetic.synthetic_cifar`).

    Arguments are checked before anything is loaded: counts and the seed must be ints >= 0 (not
    bools), `root` a path; TypeError / ValueError name the bad one.
    Notebook 01 introduces it.
    """
    if not isinstance(source, str) or source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose one of {SOURCES}")
    n_train = non_negative_int("n_train", n_train, optional=True)
    n_test = non_negative_int("n_test", n_test, optional=True)
    seed = integer("seed", seed, lo=0, hi=MAX_SEED)
    root_path = data_root(root)
    data, why = None, None
    if source == "auto":
        data, why = _auto_cifar10(root_path, verbose)
    elif source in ("cifar10", "cifar10-unverified"):
        verify = source == "cifar10"
        xtr, ytr = load_cifar10(root_path, True, download=verify, verify=verify)
        xte, yte = load_cifar10(root_path, False, download=verify, verify=verify)
        data = CifarData(xtr, ytr, xte, yte, CIFAR10_CLASSES, source)
    pointer = ""
    if data is None:
        from .synthetic import synthetic_cifar
        data = synthetic_cifar(n_train if n_train is not None else 5000,
                               n_test if n_test is not None else 1000, seed=seed)
        pointer = _synthetic_notice(why) if why and verbose else ""
    data = data.subset(n_train, n_test, seed)
    if verbose:
        print(f"Data: {data.label}: {len(data.y_train)} train / {len(data.y_test)} test images{pointer}"
              f"{' - ' + data.note if data.note else ''}", flush=True)
    return data


_told: set[str] = set()  # reasons for using the synthetic set that this process printed in full
_failed_downloads: dict[str, str] = {}  # data root -> why its download failed (not retried)


def _synthetic_notice(why: str) -> str:
    """Print why `auto` uses the synthetic set, in full once per process (not at all when the run
    announced it); returns the pointer for the "Data:" line."""
    if why == ANNOUNCED_OFFLINE:
        return f" ({why})"
    if why in _told:
        return " (no CIFAR-10: see above)"
    _told.add(why)
    print(f"Using the SYNTHETIC stand-in: {why}. For real data see `python -m cifarkit data --help`.",
          flush=True)
    return ""


def _auto_cifar10(root: Path, verbose: bool) -> tuple[CifarData | None, str | None]:
    """Real CIFAR-10 for `load_data("auto")`, or None and why not."""
    status = cifar10_status(root)
    # A verified cache first; then a copy someone prepared explicitly with --no-verify; then the
    # release files, which torchvision md5-checks (slow, and a modified copy fails it); last, a
    # download, when nothing is on disk and the network answers.
    attempts = [verified for verified, found in ((True, status["verified_cache"]),
                                                 (False, status["unverified_cache"])) if found]
    if status["release_files"] and not attempts:
        attempts.append(True)
    for verify in attempts:
        try:
            xtr, ytr = load_cifar10(root, True, verify=verify)
            xte, yte = load_cifar10(root, False, verify=verify)
        except (DataUnavailableError, CorruptDataError) as e:
            if verbose:
                print(f"Found CIFAR-10 files under {root} but could not use them: {e}", flush=True)
            continue
        return CifarData(xtr, ytr, xte, yte, CIFAR10_CLASSES, "cifar10" if verify else "cifar10-unverified"), None
    if attempts:
        return None, f"the CIFAR-10 files under {root} could not be used (see above)"
    up, why = _network_state()
    if not up:
        return None, why if why == ANNOUNCED_OFFLINE else f"no CIFAR-10 copy under {root} and {why}"
    if str(root) in _failed_downloads:
        return None, _failed_downloads[str(root)]
    try:
        xtr, ytr = load_cifar10(root, True, download=True)
        xte, yte = load_cifar10(root, False, download=True)
    except (DataUnavailableError, CorruptDataError) as e:
        _failed_downloads[str(root)] = getattr(e, "reason", str(e))
        return None, _failed_downloads[str(root)]
    return CifarData(xtr, ytr, xte, yte, CIFAR10_CLASSES, "cifar10"), None


# --- the textbook path ---------------------------------------------------------------------------

def textbook_transforms(train: bool = True, resize: int | None = None):
    """torchvision transforms of the classic recipe: (random crop + flip,) to tensor, normalise."""
    from torchvision import transforms as T

    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
    if resize:
        steps.append(T.Resize(resize))
    steps += [T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    return T.Compose(steps)


class TensorImageDataset(torch.utils.data.Dataset):
    """A standard `Dataset` over uint8 image tensors that hands each image to `transform` as a PIL
    image, exactly like `torchvision.datasets.CIFAR10` does. Useful for teaching the textbook
    pipeline with any `CifarData` (synthetic included) and for benchmarking against it."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform=None):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.x[i].permute(1, 2, 0).numpy())
        return (self.transform(img) if self.transform else img), int(self.y[i])


def torchvision_dataset(root=None, train: bool = True, download: bool = False, transform=None):
    """The real `torchvision.datasets.CIFAR10` (md5-verified), with the kit's clear errors."""
    from torchvision.datasets import CIFAR10

    root = data_root(root)
    load_cifar10(root, train, download=download, verify=True)  # clear errors, fills the release dir
    return CIFAR10(str(root), train=train, download=False, transform=transform)


def textbook_loader(data: CifarData, train: bool = True, batch_size: int = 128, num_workers: int = 0,
                    resize: int | None = None):
    """A plain `DataLoader` over PIL images with torchvision transforms: the classic, slower path."""
    x, y = (data.x_train, data.y_train) if train else (data.x_test, data.y_test)
    ds = TensorImageDataset(x, y, textbook_transforms(train, resize))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=train, num_workers=num_workers)
