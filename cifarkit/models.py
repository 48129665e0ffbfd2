"""The networks the notebooks train, and the weight loading they share.

* `ResNetForCifar`: torchvision's ResNet-18 body with a 512-100-10 head (optionally with the
  softmax-in-forward mistake that one notebook studies).
* `resnet152_transfer`: a torchvision ResNet-152 with a new classifier and a frozen backbone,
  and `set_frozen_bn_eval` to keep its frozen BatchNorm statistics fixed.
* `remove_skip_connections` / `unfreeze`: the skip-connection ablation on torchvision ResNets.
* `SmallResNet`: CIFAR-style 3x3-stem nets, plain or residual, for the depth experiment of
  He et al. (2016).
* `GatedBlock` / `GatedCNN`: a CNN whose blocks mix several parallel convolutions with
  input-dependent gates.
* `SpeedrunNet`: the compact residual net of the speedrun notebook, with a whitened stem
  (`patch_whitening_filters`).

Pretrained weights
------------------
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
import threading
import urllib.parse
import urllib.request
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck

from cifarkit.callbacks import atomic_write, safe_load
from cifarkit.freezing import set_frozen_bn_eval, unfreeze  # noqa: F401  (re-exported)

__all__ = [
    "WeightsUnavailableError",
    "DOWNLOAD_TIMEOUT_S",
    "imagenet_weights_path",
    "imagenet_state_dict",
    "apply_weights",
    "ResNetForCifar",
    "resnet152_transfer",
    "set_frozen_bn_eval",
    "remove_skip_connections",
    "NoSkipBasicBlock",
    "NoSkipBottleneck",
    "unfreeze",
    "SmallBlock",
    "SmallResNet",
    "GatedBlock",
    "GatedCNN",
    "SpeedrunStage",
    "SpeedrunNet",
    "patch_whitening_filters",
]

#: Seconds allowed for each network wait (name lookup, connect, each read) of a weights download.
DOWNLOAD_TIMEOUT_S = 15.0

_ARCH_WEIGHTS = "IMAGENET1K_V1"
_AUTO_HINT = " weights='auto' falls back to random initialisation instead of failing."


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights were asked for but are neither cached nor downloadable."""


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------

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


def _resolve_host(host: str, timeout: float) -> None:
    """Look `host` up in a helper thread, so that a dead resolver cannot stall us past `timeout`."""
    import socket

    result: dict = {}

    def work():
        try:
            socket.getaddrinfo(host, 443)
            result["ok"] = True
        except OSError as e:  # socket.gaierror is an OSError
            result["error"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"looking up {host} took more than {timeout:g} s")
    if "error" in result:
        raise result["error"]


def _download(url: str, dst: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download `url` to `dst` atomically, waiting at most `timeout` s for any network step.

    If the file name carries a hash prefix (torchvision's ``name-<sha256 prefix>.pth``), the
    download is checked against it. Raises an exception on any failure; leaves no partial file.
    """
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in urllib.request.getproxies():  # behind a proxy the proxy resolves names
        _resolve_host(urllib.parse.urlparse(url).hostname or "", timeout)
    dst = Path(dst)
    print(f"cifarkit: downloading {url} to {dst}")
    digest = hashlib.sha256()
    with atomic_write(dst) as f, urllib.request.urlopen(url, timeout=timeout) as response:
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            f.write(chunk)
        m = re.search(r"-([a-f0-9]+)\.", dst.name)
        if m and not digest.hexdigest().startswith(m.group(1)):
            raise RuntimeError(f"the downloaded file does not match the hash prefix {m.group(1)!r} "
                               f"in its name (corrupt or truncated download)")


def _read_state_dict(path) -> dict:
    """torch.load a state dict (tensors only) from `path`, unwrapping common containers.

    Loaded safely (``weights_only=True``, see `cifarkit.callbacks.safe_load`): a file that would
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
        return _read_state_dict(path)
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
    state = _read_state_dict(path)
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


# ----------------------------------------------------------------------------------------------
# ResNet-18 with a 512-100-10 head
# ----------------------------------------------------------------------------------------------

def checkpoint_stem(path) -> str:
    """``"cifar"`` or ``"imagenet"``: the stem of the `ResNetForCifar` saved in the state dict file
    at `path` (a 3x3 or a 7x7 ``conv1``; pruned state dicts with ``weight_orig`` too)."""
    state = _read_state_dict(path)
    conv1 = state.get("body.conv1.weight", state.get("body.conv1.weight_orig"))
    if conv1 is None:
        raise ValueError(f"{str(path)!r} holds no ResNetForCifar (no body.conv1 weight)")
    return "cifar" if conv1.shape[-1] == 3 else "imagenet"


class ResNetForCifar(nn.Module):
    """torchvision's ResNet-18 body (conv1 ... avgpool, flattened) and a 512-100-10 MLP head.

    Submodules, in definition order: ``body`` (an ``nn.Sequential`` whose children keep
    torchvision's names ``conv1, bn1, relu, maxpool, layer1 .. layer4, avgpool`` plus ``flatten``,
    so ``body`` accepts torchvision ResNet-18 state dicts) and ``head`` (``Linear(512, 100)``,
    ``ReLU``, ``Linear(100, 10)``). 11,228,822 parameters (11,176,512 in the body).

    Args:
        softmax_output: if True, `forward` returns softmax probabilities instead of logits. This
            is a deliberate mistake kept for one notebook to study: ``nn.CrossEntropyLoss``
            applies log-softmax itself, so feeding it probabilities squashes the logits into
            [0, 1], the loss can barely move and the gradients shrink; the net learns slowly,
            if at all. Leave it False for real training.
        weights: ``None``, ``"imagenet"``, ``"auto"`` or a state dict path (see `apply_weights`);
            ImageNet weights cover the body only, the head is always freshly initialised.
        stem: ``"imagenet"`` (torchvision's 7x7 stride-2 conv1 and 3x3 max-pool) or ``"cifar"``
            (one 3x3 stride-1 conv1, no max-pool: layer4 then works at 4x4 instead of 1x1, at
            about 16x the compute). With ImageNet weights and the CIFAR stem, conv1 starts fresh.
            ``"auto"``: the stem of the model saved in the `weights` file (`checkpoint_stem`),
            else ImageNet's.

    The ImageNet stem (7x7 stride-2 conv and max-pool) shrinks a 32x32 image to 8x8 before
    ``layer1`` and to 1x1 at ``layer4``; that is known to cost accuracy on CIFAR-10 compared with a
    3x3 stem (see `SmallResNet`), but it is what makes ImageNet weights reusable.
    """

    STEMS = ("imagenet", "cifar", "auto")

    def __init__(self, softmax_output: bool = False, weights=None, stem: str = "imagenet"):
        super().__init__()
        if stem not in self.STEMS:
            raise ValueError(f"stem must be one of {self.STEMS}, got {stem!r}")
        if stem == "auto":  # the stem of the file's model (its conv1 kernel), else ImageNet's
            stem = checkpoint_stem(weights) if isinstance(weights, (str, os.PathLike)) and \
                weights not in ("imagenet", "auto") else "imagenet"
        tv = torchvision.models.resnet18(weights=None)
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                 "avgpool"]
        self.body = nn.Sequential(OrderedDict([(n, getattr(tv, n)) for n in names]
                                              + [("flatten", nn.Flatten(1))]))
        self.head = nn.Sequential(nn.Linear(512, 100), nn.ReLU(inplace=True), nn.Linear(100, 10))
        self.softmax_output = bool(softmax_output)
        self.stem = stem
        from_file = weights is not None and not (isinstance(weights, str) and weights in ("imagenet", "auto"))
        if stem == "cifar" and from_file:  # a file saved from a CIFAR-stem model has its 3x3 conv1
            self._cifar_stem()
        apply_weights(self, weights, "resnet18", backbone=self.body)
        if stem == "cifar" and not from_file:  # ImageNet's 7x7 conv1 does not fit: conv1 starts fresh
            self._cifar_stem()
            if self.weights_source == "imagenet":
                self.weights_source = "imagenet (except conv1: cifar stem)"

    def _cifar_stem(self) -> None:
        """Replace the 7x7 stride-2 conv1 and the max-pool by one 3x3 stride-1 conv (32x32 kept)."""
        self.body.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(self.body.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.body.maxpool = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B x 10), or probabilities when ``softmax_output`` is True."""
        out = self.head(self.body(x))
        return out.softmax(dim=1) if self.softmax_output else out


# ----------------------------------------------------------------------------------------------
# ResNet-152 transfer
# ----------------------------------------------------------------------------------------------

def resnet152_transfer(num_classes: int = 10, weights="auto", freeze_backbone: bool = True,
                       frozen_bn_eval: bool = True) -> nn.Module:
    """torchvision ResNet-152 with a new ``fc = Linear(2048, num_classes)`` for transfer learning.

    Args:
        num_classes: outputs of the new classifier.
        weights: ``"auto"`` (default: ImageNet if available, else random with a warning),
            ``"imagenet"``, ``None`` or a state dict path; see `apply_weights`. The new ``fc`` is
            never taken from ImageNet; a whole-model file (saved from this function's model)
            restores it too.
        freeze_backbone: set ``requires_grad=False`` on every parameter except ``fc``'s.
        frozen_bn_eval: with a frozen backbone, pin its BatchNorm layers to eval mode via
            `set_frozen_bn_eval` (running statistics stay ImageNet's even in ``model.train()``).

    The result is a plain torchvision ``ResNet`` (58,164,298 parameters for 10 classes; 20,490 in
    ``fc``), with ``weights_source`` recorded. Build the optimizer over
    ``[p for p in model.parameters() if p.requires_grad]``.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    model = torchvision.models.resnet152(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    apply_weights(model, weights, "resnet152", backbone=model)
    if freeze_backbone:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("fc."))
        if frozen_bn_eval:
            set_frozen_bn_eval(model)
    return model


# ----------------------------------------------------------------------------------------------
# Skip-connection ablation
# ----------------------------------------------------------------------------------------------

def _main_path(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The residual branch of a torchvision BasicBlock/Bottleneck, before the final ReLU."""
    stages = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    if hasattr(block, "conv3"):  # Bottleneck: 1x1 reduce, 3x3, 1x1 expand
        stages.append((block.conv3, block.bn3))
    for i, (conv, bn) in enumerate(stages):
        x = bn(conv(x))
        if i + 1 < len(stages):
            x = block.relu(x)
    return x


class _NoSkip:
    """Mixin whose forward drops the identity/downsample addition of a residual block."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(_main_path(self, x))


class NoSkipBasicBlock(_NoSkip, BasicBlock):
    """A torchvision BasicBlock computing relu(main path) only (no ``+ identity``)."""


class NoSkipBottleneck(_NoSkip, Bottleneck):
    """A torchvision Bottleneck computing relu(main path) only (no ``+ identity``)."""


_NO_SKIP = {BasicBlock: NoSkipBasicBlock, Bottleneck: NoSkipBottleneck}

_DEFAULT_ABLATION = (("layer1", 2), ("layer2", 5), ("layer3", 10), ("layer3", 20), ("layer3", 30))


def _parse_block(spec) -> tuple:
    if isinstance(spec, str):
        layer, _, idx = spec.rpartition(".")
        if not layer or not idx.isdigit():
            raise ValueError(f"block {spec!r} is not of the form 'layer3.10'")
        return layer, int(idx)
    if (isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str)
            and isinstance(spec[1], int) and not isinstance(spec[1], bool)):
        return spec[0], spec[1]
    raise ValueError(f"block {spec!r} is neither ('layer3', 10) nor 'layer3.10'")


def remove_skip_connections(model: nn.Module, blocks=_DEFAULT_ABLATION,
                            reinit: bool = False) -> list:
    """Remove the residual addition from chosen blocks of a torchvision ResNet, in place.

    Args:
        model: a torchvision ResNet (or a module holding one, e.g. ``("body.layer1", 0)`` for
            `ResNetForCifar`).
        blocks: ``(layer_name, index)`` pairs or ``"layer.index"`` strings. The default is the
            five Bottlenecks of the ResNet-152 experiment: layer1[2], layer2[5], layer3[10],
            layer3[20], layer3[30] (it needs a ResNet-101/152-sized layer3).
        reinit: False (default) keeps the blocks' current (e.g. pretrained) weights, so the
            only change is the missing identity. True re-initialises the blocks' convolutions
            and BatchNorms (``reset_parameters()``, which also resets running statistics), as
            if freshly constructed -- the variant in which the blocks are rebuilt from scratch.

    Each chosen block's class is switched to a subclass (`NoSkipBasicBlock` /
    `NoSkipBottleneck`) whose forward computes ``relu(main_path(x))`` instead of
    ``relu(main_path(x) + identity)``. Nothing else changes: the ``downsample`` module of a
    first-in-layer block stays in place (state dict keys are unchanged) but is no longer used,
    so its parameters get no gradient. ``requires_grad`` flags are left alone; use `unfreeze`
    on the returned names to train the ablated blocks.

    Returns the names of the ablated blocks, e.g. ``["layer1.2", "layer2.5", ...]``.
    Raises ValueError for a missing layer or an out-of-range index, TypeError for a block that
    is not a torchvision BasicBlock/Bottleneck.
    """
    if isinstance(blocks, (str, tuple)) and len(blocks) == 2 and isinstance(blocks[1], int):
        blocks = [blocks]
    if isinstance(blocks, str):
        blocks = [blocks]
    targets = []
    for spec in blocks:
        layer_name, idx = _parse_block(spec)
        try:
            layer = model.get_submodule(layer_name)
        except AttributeError:
            layer = None
        if not isinstance(layer, nn.Sequential):
            raise ValueError(f"model has no layer {layer_name!r} (an nn.Sequential of blocks)")
        if not 0 <= idx < len(layer):
            raise ValueError(f"{layer_name} has {len(layer)} blocks (0..{len(layer) - 1}); "
                             f"block index {idx} is out of range")
        block = layer[idx]
        if not isinstance(block, (BasicBlock, Bottleneck)):
            raise TypeError(f"{layer_name}.{idx} is a {type(block).__name__}, not a torchvision "
                            f"BasicBlock or Bottleneck")
        name = f"{layer_name}.{idx}"
        if name not in [n for n, _ in targets]:
            targets.append((name, block))
    for _, block in targets:
        if not isinstance(block, _NoSkip):
            base = Bottleneck if isinstance(block, Bottleneck) else BasicBlock
            block.__class__ = _NO_SKIP[base]
        if reinit:
            for m in block.modules():
                if m is not block and hasattr(m, "reset_parameters"):
                    m.reset_parameters()
    return [name for name, _ in targets]


# ----------------------------------------------------------------------------------------------
# Plain vs residual CIFAR nets (He et al. 2016, section 4.2)
# ----------------------------------------------------------------------------------------------

class SmallBlock(nn.Module):
    """Two 3x3 conv-BN layers; with ``residual=True`` the input is added before the last ReLU.

    When the block changes shape (stride 2, more channels), the shortcut subsamples the input
    and zero-pads the new channels (He et al.'s option A), so it has no parameters and plain and
    residual nets have exactly the same weights.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, residual: bool = True):
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"SmallBlock cannot shrink channels ({in_ch} -> {out_ch})")
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.stride, self.extra_ch, self.residual = stride, out_ch - in_ch, bool(residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.residual:
            shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
            if self.extra_ch:
                shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_ch))
            out = out + shortcut
        return F.relu(out)


class SmallResNet(nn.Module):
    """CIFAR-style net for the plain-vs-residual depth experiment (He et al. 2016, sec. 4.2).

    Layout: 3x3 conv stem (3 -> widths[0]) + BN + ReLU; one stage per width, each of
    `depth_per_stage` `SmallBlock`s (the first block of every stage after the first has stride
    2); global average pool; ``Linear(widths[-1], num_classes)``. With ``residual=False`` the
    blocks have no shortcut ("plain" net). Weighted layers: ``2 * n * len(widths) + 2``
    (``self.depth``), i.e. 20/32/44/56 for n = 3/5/7/9 with the default three stages.
    Submodule names: ``stem``, ``stage1`` .. ``stageK`` (blocks ``stage1.0`` ...), ``fc``.

    Parameters with widths (16, 32, 64): 269,722 for n=3 (ResNet-20), 853,018 for n=9
    (ResNet-56); identical for plain and residual. Convs use Kaiming-normal initialisation.
    """

    def __init__(self, depth_per_stage: int = 3, residual: bool = True, widths=(16, 32, 64),
                 num_classes: int = 10):
        super().__init__()
        if not isinstance(depth_per_stage, int) or isinstance(depth_per_stage, bool) \
                or depth_per_stage < 1:
            raise ValueError(f"depth_per_stage must be a positive int, got {depth_per_stage!r}")
        widths = tuple(widths)
        if not widths or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(f"widths must be positive ints, got {widths!r}")
        if any(b < a for a, b in zip(widths, widths[1:])):
            raise ValueError(f"widths must not decrease (zero-padding shortcuts), got {widths!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.residual, self.widths = bool(residual), widths
        self.depth = 2 * depth_per_stage * len(widths) + 2
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        in_ch = widths[0]
        for s, w in enumerate(widths):
            blocks = [SmallBlock(in_ch if i == 0 else w, w, stride=2 if (i == 0 and s > 0) else 1,
                                 residual=residual) for i in range(depth_per_stage)]
            self.add_module(f"stage{s + 1}", nn.Sequential(*blocks))
            in_ch = w
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, B x num_classes."""
        x = self.stem(x)
        for s in range(len(self.widths)):
            x = getattr(self, f"stage{s + 1}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ----------------------------------------------------------------------------------------------
# Gated CNN
# ----------------------------------------------------------------------------------------------

class GatedBlock(nn.Module):
    """`n_convs` parallel 3x3 convolutions mixed by gates computed from the input.

    ``gates = relu(Linear(in_ch, n_convs)(flatten(adaptive_avg_pool(x, 1))))`` (B x n_convs);
    ``out = sum_i gates[:, i] * relu(convs[i](x))``. The convs (padding 1, so the spatial size is
    kept) live in ``self.convs`` and the gate layer in ``self.gate``; the forward runs them as one
    wide convolution, which is faster on CPU and gives the same result. The gates of the last
    forward pass are kept, detached, in ``self.last_gates`` (B x n_convs) for plotting.

    ``gate_init`` chooses how the gate layer starts:

    * ``"default"``: PyTorch's Linear initialisation. Each gate then tends to start either open or
      shut (ReLU at 0) for nearly every image, and a block whose gates are all shut passes neither
      signal nor gradient.
    * ``"open"``: weights 0 and bias 1, so every gate starts at exactly 1 for every image (all
      convolutions fully on, equal shares) and learns from there.

    Both draw the same random numbers, so with the same seed the convolutions start identical.
    """

    GATE_INITS = ("default", "open")

    def __init__(self, in_ch: int, out_ch: int, n_convs: int = 3, gate_init: str = "default"):
        super().__init__()
        for name, v in (("in_ch", in_ch), ("out_ch", out_ch), ("n_convs", n_convs)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if gate_init not in self.GATE_INITS:
            raise ValueError(f"gate_init must be one of {self.GATE_INITS}, got {gate_init!r}")
        self.in_ch, self.out_ch, self.n_convs = in_ch, out_ch, n_convs
        self.gate = nn.Linear(in_ch, n_convs)
        self.convs = nn.ModuleList(nn.Conv2d(in_ch, out_ch, 3, padding=1) for _ in range(n_convs))
        if gate_init == "open":
            self.open_gates()
        self.last_gates: torch.Tensor | None = None

    @torch.no_grad()
    def open_gates(self) -> None:
        """Set the gate layer to weights 0, bias 1: every gate becomes exactly 1 for any input."""
        self.gate.weight.zero_()
        self.gate.bias.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = F.relu(self.gate(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))  # B x n
        self.last_gates = gates.detach()
        weight = torch.cat([c.weight for c in self.convs])
        bias = torch.cat([c.bias for c in self.convs])
        branches = F.relu(F.conv2d(x, weight, bias, padding=1))  # B x (n*out) x H x W
        b, _, h, w = branches.shape
        branches = branches.view(b, self.n_convs, self.out_ch, h, w)
        return (branches * gates.to(branches.dtype)[:, :, None, None, None]).sum(dim=1)


class GatedCNN(nn.Module):
    """Five `GatedBlock`s, each followed by BatchNorm2d and 2x2 max-pool, then an MLP head.

    Spatial size 32 -> 16 -> 8 -> 4 -> 2 -> 1. Head: AdaptiveAvgPool2d(1), flatten,
    ``Linear(widths[-1], hidden)``, ReLU, Dropout(dropout), ``Linear(hidden, num_classes)``.
    Submodules: ``features`` (``features.0`` .. ``features.4``, each with ``gate_block``, ``bn``,
    ``pool``) and ``head``.

    Args:
        widths: output channels of the five blocks; exactly five positive ints (the five
            poolings take 32x32 to 1x1). Default (64, 128, 256, 512, 512).
        convs_per_block: parallel convolutions (and gates) per block.
        dropout: dropout probability in the head.
        num_classes: outputs.
        hidden: width of the head's hidden layer (default 256).
        gate_init: ``"default"`` (PyTorch's initialisation, as in the original model) or
            ``"open"`` (every gate starts at 1); see `GatedBlock`.

    Parameter count with the defaults: 11,872,098 (11,735,256 in the gated blocks, 2,944 in
    BatchNorm, 133,898 in the head); about 0.41 GFLOP per 32x32 image forward
    (roughly 1.2 GFLOP per image for a training step).
    """

    def __init__(self, widths=(64, 128, 256, 512, 512), convs_per_block: int = 3,
                 dropout: float = 0.3, num_classes: int = 10, hidden: int = 256,
                 gate_init: str = "default"):
        super().__init__()
        widths = tuple(widths)
        if len(widths) != 5 or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0
                                       for w in widths):
            raise ValueError(f"widths must be exactly 5 positive ints (32x32 -> 1x1 through five "
                             f"2x2 poolings), got {widths!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        for name, v in (("num_classes", num_classes), ("hidden", hidden)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.widths = widths
        stages, in_ch = [], 3
        for w in widths:
            stages.append(nn.Sequential(OrderedDict([
                ("gate_block", GatedBlock(in_ch, w, convs_per_block, gate_init)),
                ("bn", nn.BatchNorm2d(w)),
                ("pool", nn.MaxPool2d(2)),
            ])))
            in_ch = w
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                                  nn.Linear(widths[-1], hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    @property
    def gated_blocks(self) -> list:
        """The five `GatedBlock`s, in order."""
        return [stage.gate_block for stage in self.features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, B x num_classes."""
        return self.head(self.features(x))

    @torch.no_grad()
    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        """Mean gate vector of each block for the batch `x`: a 5 x convs_per_block tensor.

        Runs one forward pass in eval mode (no dropout, no BatchNorm statistics updates), without
        gradients, and restores the previous mode. Row i holds block i's gates averaged over the
        batch; the per-image gates stay in ``block.last_gates`` afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            self(x)
        finally:
            self.train(was_training)
        return torch.stack([blk.last_gates.float().mean(dim=0) for blk in self.gated_blocks])


# --------------------------------------------------------------------------- speedrun network

def _speedrun_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with a fixed scale of 1 (only the shift is learned) and fast-moving statistics.

    The convolutions before it are scale-free under BatchNorm, so a learned scale adds nothing but
    noise in a 15-epoch run; a momentum of 0.4 lets the running statistics keep up with weights
    that change quickly under a high learning rate.
    """
    bn = nn.BatchNorm2d(channels, momentum=0.4, eps=1e-5)
    bn.weight.requires_grad_(False)
    return bn


def _dirac_init(conv: nn.Conv2d) -> None:
    """Make the first ``in_channels`` filters of `conv` pass their input channel through unchanged.

    With as many outputs as inputs the convolution starts as the identity; the remaining filters
    keep their random initialisation.
    """
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(conv.in_channels, conv.out_channels)])


class SpeedrunStage(nn.Module):
    """Conv 3x3 -> 2x2 max-pool -> BN -> GELU, then one residual conv: ``y + GELU(BN(conv(y)))``.

    Pooling right after the first convolution (before BN) lets the residual convolution run at
    a quarter of the pixels, which is where most of the saved compute comes from. Both
    convolutions start close to the identity (`_dirac_init`), so a fresh network already passes
    the whitened image through.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn = _speedrun_norm(out_ch)
        self.res_conv = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.res_bn = _speedrun_norm(out_ch)
        _dirac_init(self.conv)
        _dirac_init(self.res_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.bn(self.pool(self.conv(x))))
        return y + F.gelu(self.res_bn(self.res_conv(y)))


def patch_whitening_filters(images: torch.Tensor, kernel_size: int = 2, eps: float = 5e-4) -> torch.Tensor:
    """Filters that whiten the `kernel_size` x `kernel_size` patches of `images` (N x C x H x W).

    The patch covariance is eigen-decomposed; each eigenvector divided by the square root of its
    eigenvalue (+ `eps`) is one filter, and its negative is another (GELU keeps only one sign, so
    both signs are needed to keep the information). Returns ``2*C*k*k x C x k x k``, the filters
    of the largest-variance directions first.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    c, k = images.shape[1], kernel_size
    patches = images.float().unfold(2, k, 1).unfold(3, k, 1)           # N C H' W' k k
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)  # one row per patch
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)                  # ascending
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).flip(0)
    filters = filters.reshape(c * k * k, c, k, k)
    return torch.cat([filters, -filters])


class SpeedrunNet(nn.Module):
    """A compact residual network for fast CIFAR-10 training (notebook 07, recipe ``speedrun``).

    * Stem: a 2x2 convolution whose filters whiten the image patches (`init_whitening`, from a
      sample of the training images; the filters stay fixed, their biases learn), then GELU.
    * One `SpeedrunStage` per width (each halves the side: 31 -> 15 -> 7 -> 3).
    * A global max-pool and a bias-free linear classifier whose logits are multiplied by
      ``logit_scale`` (a small scale keeps the first softmax soft, which label smoothing and a
      high learning rate like).

    Ideas from the published fast-training work (Page's DAWNBench ResNet; tysam-code's hlb-cifar10
    and Keller Jordan's airbench): whitened patches, identity-initialised convolutions, few wide
    stages, pooling early inside each stage, BN with a fixed scale, GELU, a max-pool head.

    Args:
        widths: channels of each stage; default (64, 256, 256): 1,972,792 parameters, about
            0.12 GMAC per 32x32 image forward.
        num_classes: outputs.
        logit_scale: multiplies the logits (default 1/9).
        whiten_kernel: side of the whitening filters (2: 24 filters of 2x2x3).
    """

    def __init__(self, widths=(64, 256, 256), num_classes: int = 10, logit_scale: float = 1 / 9,
                 whiten_kernel: int = 2):
        super().__init__()
        widths = tuple(widths)
        if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
            raise ValueError(f"widths must be one or more positive ints (one per stage), got {widths!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not isinstance(whiten_kernel, int) or whiten_kernel < 1:
            raise ValueError(f"whiten_kernel must be a positive int, got {whiten_kernel!r}")
        self.widths, self.logit_scale = widths, float(logit_scale)
        stem_width = 2 * 3 * whiten_kernel ** 2
        self.whiten = nn.Conv2d(3, stem_width, whiten_kernel, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        chans = (stem_width, *widths)
        self.stages = nn.Sequential(*[SpeedrunStage(a, b) for a, b in zip(chans, chans[1:])])
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes, bias=False)

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor) -> None:
        """Set the stem's filters from `images`: normalised float images N x 3 x H x W, as the
        network will see them (a few thousand training images are plenty)."""
        filters = patch_whitening_filters(images.to(self.whiten.weight.device), self.whiten.kernel_size[0])
        self.whiten.weight.copy_(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, B x num_classes."""
        x = F.gelu(self.whiten(x))
        x = self.pool(self.stages(x)).flatten(1)
        return self.fc(x) * self.logit_scale
