"""Pretrained weights for the kit's networks: torchvision's ImageNet files (cached, or downloaded
in bounded time) and state dict files, loaded into a model by `apply_weights`.

Every builder that can start from ImageNet takes ``weights`` and passes it to `apply_weights`:

* ``None``: random initialisation.
* ``"imagenet"``: torchvision's ``IMAGENET1K_V1`` weights for the backbone. The file is read from
  the torch hub cache (``torch.hub.get_dir()/checkpoints/<file>``) when it is there, and otherwise
  downloaded into that cache. Every network wait (name lookup, connection, each read) is
  bounded by ``DOWNLOAD_TIMEOUT_S`` (15 s), so without network and without the file
  `WeightsUnavailableError` comes within about 30 s at worst (at once when name lookup fails,
  as on an offline machine); its message names the file and the directory to copy it into.
* ``"auto"``: like ``"imagenet"``, but if the weights cannot be had, the model keeps its random
  initialisation and a `UserWarning` gives the reason.
* a path (``str`` or ``os.PathLike``) to a file written with ``torch.save(state_dict)``. Two kinds
  of file are accepted: a state dict of *this whole model* (e.g. ``model.state_dict()`` of a
  `ResNetForCifar` saved after training), which is loaded strictly; or a state dict of the
  plain *torchvision backbone* (e.g. ``torchvision.models.resnet18().state_dict()``, or the
  downloaded ``resnet18-f37072fd.pth`` itself), whose ``fc.*`` entries are ignored and whose other
  entries must match the backbone exactly. A dict that wraps the state dict under ``"model"``
  or ``"state_dict"`` is unwrapped, and ``module.`` / ``_orig_mod.`` prefixes (DataParallel,
  torch.compile) are stripped. Anything else raises `ValueError` listing the mismatched keys.

Every model built this way records what happened in ``model.weights_source``: ``"random"``,
``"imagenet"``, ``"file:<path>"`` or ``"random (imagenet unavailable)"``.
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torchvision

from .download import DOWNLOAD_TIMEOUT_S, open_url
from .files import atomic_write, safe_load

__all__ = ["WeightsUnavailableError", "DOWNLOAD_TIMEOUT_S", "imagenet_weights_path", "imagenet_state_dict",
           "read_state_dict", "apply_weights"]

_ARCH_WEIGHTS = "IMAGENET1K_V1"
_AUTO_HINT = " weights='auto' falls back to random initialisation instead of failing."


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights were asked for but are neither cached nor downloadable."""


def _weights_enum(arch: str):
    """torchvision's IMAGENET1K_V1 weights entry for `arch` (e.g. "resnet18")."""
    if not isinstance(arch, str):
        raise TypeError(f"arch must be a torchvision model name (str), got {type(arch).__name__}")
    try:
        enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError) as e:
        raise ValueError(f"unknown torchvision architecture {arch!r}") from e
    try:
        return enum[_ARCH_WEIGHTS]
    except KeyError as e:
        raise ValueError(f"torchvision has no {_ARCH_WEIGHTS} weights for {arch!r}") from e


def imagenet_weights_path(arch: str) -> Path:
    """Where the ImageNet weights file for `arch` lives in the torch hub cache.

    E.g. ``~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth``. Copying the file there by hand
    makes ``weights="imagenet"`` work offline.
    """
    url = _weights_enum(arch).url
    name = os.path.basename(urllib.parse.urlparse(url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _download(url: str, dst: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download `url` to `dst` atomically (`files.atomic_write`), waiting at most `timeout` s for
    any network step (`download.open_url`: name lookup, connection, each read).

    If the file name carries a hash prefix (torchvision's ``name-<sha256 prefix>.pth``), the
    download is checked against it. Raises an exception on any failure; leaves no partial file.
    """
    dst = Path(dst)
    digest = hashlib.sha256()
    with open_url(url, timeout) as response, atomic_write(dst) as f:
        print(f"cifarkit: downloading {url} to {dst}")
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            f.write(chunk)
        m = re.search(r"-([a-f0-9]+)\.", dst.name)
        if m and not digest.hexdigest().startswith(m.group(1)):
            raise RuntimeError(f"the downloaded file does not match the hash prefix {m.group(1)!r} "
                               f"in its name (corrupt or truncated download)")


def read_state_dict(path) -> dict:
    """torch.load a state dict (tensors only) from `path`, unwrapping common containers.

    Loaded safely (``weights_only=True``, see `cifarkit.files.safe_load`): a file that would
    run code when unpickled is refused with a one-line `ValueError`, as is an unreadable one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        obj = safe_load(path, "state dict")
    except ValueError as e:
        raise ValueError(f"{e}; save one with torch.save(model.state_dict(), path)") from None
    for key in ("model", "state_dict", "model_state_dict", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{str(path)!r} does not hold a state dict (a dict of tensors)")
    for prefix in ("module.", "_orig_mod."):
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return obj


def imagenet_state_dict(arch: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> dict:
    """torchvision's ImageNet (IMAGENET1K_V1) state dict for `arch`, from the cache or the network.

    Reads `imagenet_weights_path(arch)` when it exists; otherwise downloads it there, waiting at
    most `timeout` seconds for any single network step. Raises `WeightsUnavailableError`, with
    instructions, when neither works.
    """
    entry = _weights_enum(arch)
    path = imagenet_weights_path(arch)
    if not path.is_file():
        try:
            _download(entry.url, path, timeout)
        except Exception as e:
            raise WeightsUnavailableError(
                f"ImageNet weights for {arch} are not available: {path} does not exist and "
                f"downloading {entry.url} failed ({type(e).__name__}: {e}). To fix it, either "
                f"(1) run this once with internet access (the file is then cached), "
                f"(2) copy the file {path.name} into {path.parent}/ , or "
                f"(3) pass weights='/path/to/{path.name}' (any state dict file works)."
                + _AUTO_HINT
            ) from e
    try:
        return read_state_dict(path)
    except ValueError as e:
        raise WeightsUnavailableError(f"the cached weights file {path} is unreadable; delete it "
                                      f"and try again ({e})") from e


def _load_backbone(backbone: nn.Module, state: dict, what: str) -> None:
    """Load a torchvision-style state dict into `backbone`, ignoring every ``fc.*`` entry."""
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    target = {k: v for k, v in backbone.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    if missing or unexpected:
        raise ValueError(f"{what} does not match the backbone: missing keys {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                         f"{' ...' if len(unexpected) > 5 else ''}")
    bad = [k for k in target if target[k].shape != state[k].shape]
    if bad:
        raise ValueError(f"{what} has wrong shapes for {bad[:5]}, e.g. {bad[0]}: "
                         f"{tuple(state[bad[0]].shape)} vs {tuple(target[bad[0]].shape)}")
    backbone.load_state_dict(state, strict=False)


def _load_file(model: nn.Module, path, backbone: nn.Module | None) -> None:
    """Load a whole-model or a backbone state dict file into `model` (see the module docstring)."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and own[k].shape != state[k].shape]
    if not (missing or unexpected or bad):
        model.load_state_dict(state)
        return
    if missing or unexpected:
        whole = f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
    else:
        whole = (f"wrong shapes, e.g. {bad[0]}: {tuple(state[bad[0]].shape)} vs "
                 f"{tuple(own[bad[0]].shape)} (saved from a model with another num_classes?)")
    if backbone is None:
        raise ValueError(f"{str(path)!r} does not match the model: {whole}")
    try:  # e.g. a torchvision checkpoint with a 1000-class fc for a transfer model
        _load_backbone(backbone, state, "it")
    except ValueError as e:
        raise ValueError(f"{str(path)!r} fits neither the whole model ({whole}) nor the "
                         f"backbone ({e})") from None


def apply_weights(model: nn.Module, weights, arch: str, backbone: nn.Module | None = None) -> str:
    """Initialise `model` (in place) according to `weights`; return and record the source.

    Args:
        model: the freshly built model (randomly initialised).
        weights: ``None``, ``"imagenet"``, ``"auto"`` or a path; see the module docstring.
        arch: the torchvision architecture whose ImageNet weights fit the backbone ("resnet18").
        backbone: the submodule whose parameter names are torchvision's (``model.body`` of
            `ResNetForCifar`; the model itself for `resnet152_transfer`). Defaults to `model`.

    Sets ``model.weights_source`` to ``"random"``, ``"imagenet"``, ``"file:<path>"`` or
    ``"random (imagenet unavailable)"`` and returns it.
    """
    backbone = model if backbone is None else backbone
    if weights is None:
        source = "random"
    elif isinstance(weights, str) and weights in ("imagenet", "auto"):
        try:
            _load_backbone(backbone, imagenet_state_dict(arch), f"the {arch} ImageNet weights")
            source = "imagenet"
        except WeightsUnavailableError as e:
            if weights == "imagenet":
                raise
            reason = str(e).removesuffix(_AUTO_HINT)
            warnings.warn(f"weights='auto': using random initialisation. {reason}",
                          UserWarning, stacklevel=3)
            source = "random (imagenet unavailable)"
    elif isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"weights={str(weights)!r} is neither None, 'imagenet', 'auto' nor an "
                             f"existing state dict file")
        _load_file(model, path, backbone)
        source = f"file:{path}"
    else:
        raise TypeError(f"weights must be None, 'imagenet', 'auto' or a path, got "
                        f"{type(weights).__name__}")
    model.weights_source = source
    return source
