"""Loading CIFAR-10 (or the synthetic stand-in) as tensors.

Two ways to read the release's python format (`cifar-10-batches-py/`):

* `verify=True` (the default) goes through `torchvision.datasets.CIFAR10`, which checks every
  file's md5 sum against the official release and downloads it when `download=True`.
* `verify=False` reads a copy you trust but whose checksums differ (a re-packed or re-encoded
  copy, for instance). The files are still checked for counts, shapes, dtypes and label range,
  and a warning says, once, that checksums were not verified. Verification is never switched off
  behind your back: only this argument (or `cifarkit data prepare --no-verify`) does it.

The first load of a split writes it as one tensor file next to the data, so later loads take a
fraction of a second. Where the data lives: `root`, else `$CIFARKIT_DATA`, else
`~/.cache/cifarkit`.

`load_data(source="auto")` is what notebooks call: real CIFAR-10 when a copy is found under the
data root, else the generated stand-in from `cifarkit.synthetic`, announced as such.

For teaching the textbook path (a `Dataset` of PIL images with torchvision transforms, batched by
a `DataLoader`), see `torchvision_dataset` and `textbook_loader`.
"""
from __future__ import annotations

import os
import pickle
import socket
import sys
import time
import urllib.error
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .callbacks import atomic_save
from .dataset import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, CifarData

RELEASE_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
SPLIT_SIZES = {True: 50_000, False: 10_000}
DOWNLOAD_TIMEOUT_S = 15.0  # per socket operation; keeps an offline failure well under 30 s


class DataUnavailableError(RuntimeError):
    """CIFAR-10 is neither on disk nor downloadable."""


class CorruptDataError(RuntimeError):
    """A data file exists but cannot be read or fails the sanity checks."""


class UnverifiedDataWarning(UserWarning):
    """Data was loaded without md5 verification."""


def data_root(root=None) -> Path:
    """The data directory: `root`, else `$CIFARKIT_DATA`, else `~/.cache/cifarkit`."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("CIFARKIT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cifarkit"


def _cache_path(root: Path, train: bool, verified: bool) -> Path:
    split = "train" if train else "test"
    return root / f"cifar10-{split}{'' if verified else '-unverified'}.pt"


def _ways_out(root: Path) -> str:
    return (f"Either (1) connect to the network and call load_cifar10(download=True) "
            f"(or run `python -m cifarkit data download`), or (2) point CIFARKIT_DATA or root= at a "
            f"directory that already holds {RELEASE_DIR}/ (looked in {root}), or prepare one with "
            f"`python -m cifarkit data prepare --from DIR`.")


def load_cifar10(root=None, train: bool = True, download: bool = False, verify: bool = True):
    """One CIFAR-10 split as `(images, labels)`: uint8 `N x 3 x 32 x 32` and int64 `N`.

    Args:
        root: data directory (default: `$CIFARKIT_DATA`, else `~/.cache/cifarkit`).
        train: the 50,000-image training split, else the 10,000-image test split.
        download: fetch the release when it is missing (only with `verify=True`).
        verify: check md5 sums through torchvision; `False` reads a trusted copy unchecked
            (still validating counts, shapes, dtypes and labels) and warns once.

    Raises `DataUnavailableError` (missing and not downloadable, with both ways out in the
    message) or `CorruptDataError` (naming the bad file).
    """
    root = data_root(root)
    if download and not verify:
        raise ValueError("download=True needs verify=True: a fresh download is always checked")
    for cached_verified in ((True,) if verify else (True, False)):
        cache = _cache_path(root, train, cached_verified)
        if cache.is_file():
            x, y = _read_cache(cache, train)
            if not cached_verified:
                _warn_unverified(cache)
            return x, y
    if verify:
        x, y = _load_verified(root, train, download)
    else:
        x, y = _read_release(root / RELEASE_DIR, train)
        _warn_unverified(root / RELEASE_DIR)
    _write_cache(_cache_path(root, train, verify), x, y)
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


def _read_cache(path: Path, train: bool):
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        x, y = blob["x"], blob["y"]
    except Exception as e:
        raise CorruptDataError(f"cannot read the cached split {path} ({type(e).__name__}: {e}). "
                               "Delete it; the next load rebuilds it from the release files.") from e
    _check_split(x, y, train, path)
    return x, y


def _write_cache(path: Path, x, y) -> None:
    try:
        atomic_save({"x": x, "y": y}, path)
    except OSError as e:  # a read-only data directory is fine: we just load slower next time
        warnings.warn(f"could not write the cache {path}: {e}")


def _check_split(x, y, train: bool, source) -> None:
    want = SPLIT_SIZES[train]
    if not (isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and tuple(x.shape) == (want, 3, 32, 32)):
        got = f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}"
        raise CorruptDataError(f"{source}: expected uint8 images of shape ({want}, 3, 32, 32), got {got}")
    if not (isinstance(y, torch.Tensor) and y.dtype == torch.int64 and tuple(y.shape) == (want,)):
        raise CorruptDataError(f"{source}: expected {want} int64 labels, got {tuple(getattr(y, 'shape', ()))}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        raise CorruptDataError(f"{source}: labels outside 0..9 (min {int(y.min())}, max {int(y.max())})")


def _read_batch_file(path: Path):
    if not path.is_file():
        raise DataUnavailableError(f"missing file {path}. " + _ways_out(path.parent.parent))
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = batch[b"data"], batch[b"labels"]
    except Exception as e:
        raise CorruptDataError(f"{path} is corrupted or truncated ({type(e).__name__}: {e}); "
                               "delete it and fetch or build the copy again") from e
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CorruptDataError(f"{path}: expected uint8 rows of 3072 values, got {data.dtype} {data.shape}")
    if len(labels) != len(data):
        raise CorruptDataError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, np.asarray(labels, dtype=np.int64)


def _read_release(directory: Path, train: bool):
    """Read the release's python-format batches without checksums, validating what we can."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataUnavailableError(f"no {RELEASE_DIR}/ directory at {directory.parent}. "
                                   + _ways_out(directory.parent))
    parts = [_read_batch_file(directory / name) for name in (TRAIN_FILES if train else TEST_FILES)]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    y = torch.from_numpy(labels)
    _check_split(x, y, train, directory)
    return x, y


@contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _load_verified(root: Path, train: bool, download: bool):
    from torchvision.datasets import CIFAR10

    root.mkdir(parents=True, exist_ok=True) if download else None
    start = time.monotonic()
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            ds = CIFAR10(str(root), train=train, download=download)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        if isinstance(e, FileNotFoundError) and not download:
            raise DataUnavailableError("CIFAR-10 is not on disk. " + _ways_out(root)) from e
        waited = time.monotonic() - start
        raise DataUnavailableError(f"could not download CIFAR-10 after {waited:.0f} s "
                                   f"({type(e).__name__}: {e}). " + _ways_out(root)) from None
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        present = (root / RELEASE_DIR).is_dir()
        if present:
            raise CorruptDataError(
                f"the files in {root / RELEASE_DIR} fail torchvision's md5 check (a modified or "
                "re-encoded copy, or a broken download). If you trust this copy, load it with "
                "verify=False (or `python -m cifarkit data prepare --from DIR --no-verify`); "
                "otherwise delete it and download again.") from e
        raise DataUnavailableError("CIFAR-10 is not on disk. " + _ways_out(root)) from None
    x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    y = torch.tensor(ds.targets, dtype=torch.int64)
    _check_split(x, y, train, root / RELEASE_DIR)
    return x, y


def cifar10_status(root=None) -> dict:
    """What is available under the data root, without loading anything big."""
    root = data_root(root)
    caches = {p.name: p.stat().st_size for p in sorted(root.glob("cifar10-*.pt"))} if root.is_dir() else {}
    release = root / RELEASE_DIR
    return {"root": str(root), "release_dir": str(release) if release.is_dir() else None, "caches": caches,
            "verified_cache": all(_cache_path(root, t, True).is_file() for t in (True, False)),
            "unverified_cache": all(_cache_path(root, t, False).is_file() for t in (True, False))}


def prepare_cifar10(source_dir, root=None, verify: bool = True) -> dict:
    """Build the tensor caches under the data root from an existing copy at `source_dir`
    (a folder holding `cifar-10-batches-py/`, or that folder itself). Returns the status."""
    source_dir = Path(source_dir).expanduser()
    if source_dir.name == RELEASE_DIR:
        source_dir = source_dir.parent
    if not (source_dir / RELEASE_DIR).is_dir():
        raise DataUnavailableError(f"no {RELEASE_DIR}/ under {source_dir}")
    root = data_root(root)
    for train in (True, False):
        if verify:
            x, y = _load_verified(source_dir, train, download=False)
        else:
            x, y = _read_release(source_dir / RELEASE_DIR, train)
            _warn_unverified(source_dir / RELEASE_DIR)
        _write_cache(_cache_path(root, train, verify), x, y)
    return cifar10_status(root)


def load_data(source: str = "auto", n_train: int | None = None, n_test: int | None = None, seed: int = 0,
              root=None, verbose: bool = True) -> CifarData:
    """Both splits as a `CifarData`, optionally as stratified subsets of `n_train` / `n_test`.

    `source`:
      "auto"      real CIFAR-10 when a copy is found under the data root (a verified copy first,
                  then one prepared with --no-verify, labelled as such), else the synthetic set;
      "cifar10"   real CIFAR-10 (verified), downloading it when missing;
      "cifar10-unverified"  a trusted copy read without checksums;
      "synthetic" the generated stand-in (`cifarkit.synthetic.synthetic_cifar`).
    """
    choices = ("auto", "cifar10", "cifar10-unverified", "synthetic")
    if source not in choices:
        raise ValueError(f"unknown data source {source!r}; choose one of {choices}")
    root_path = data_root(root)
    data = None
    if source == "auto":
        data = _auto_cifar10(root_path, verbose)
    elif source in ("cifar10", "cifar10-unverified"):
        verify = source == "cifar10"
        xtr, ytr = load_cifar10(root_path, True, download=verify, verify=verify)
        xte, yte = load_cifar10(root_path, False, download=verify, verify=verify)
        data = CifarData(xtr, ytr, xte, yte, CIFAR10_CLASSES, source)
    if data is None:
        from .synthetic import synthetic_cifar
        data = synthetic_cifar(n_train if n_train is not None else 5000,
                               n_test if n_test is not None else 1000, seed=seed)
    data = data.subset(n_train, n_test, seed)
    if verbose:
        print(f"Data: {data.label}: {len(data.y_train)} train / {len(data.y_test)} test images"
              f"{' - ' + data.note if data.note else ''}", flush=True)
    return data


def _auto_cifar10(root: Path, verbose: bool) -> CifarData | None:
    status = cifar10_status(root)
    # A verified cache first; then a copy someone prepared explicitly with --no-verify; last, the
    # release files, which torchvision md5-checks (slow, and a modified copy fails it).
    attempts = []
    if status["verified_cache"]:
        attempts.append(True)
    if status["unverified_cache"]:
        attempts.append(False)
    if status["release_dir"] and not attempts:
        attempts.append(True)
    for verify in attempts:
        try:
            xtr, ytr = load_cifar10(root, True, verify=verify)
            xte, yte = load_cifar10(root, False, verify=verify)
        except (DataUnavailableError, CorruptDataError) as e:
            if verbose:
                print(f"Found CIFAR-10 files under {root} but could not use them: {e}", flush=True)
            continue
        return CifarData(xtr, ytr, xte, yte, CIFAR10_CLASSES, "cifar10" if verify else "cifar10-unverified")
    if verbose:
        print(f"No usable CIFAR-10 copy under {root}: using the SYNTHETIC stand-in. For real data see "
              "`python -m cifarkit data --help`.", flush=True)
    return None


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
