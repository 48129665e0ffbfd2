"""The networks the notebooks train.

* `ResNetForCifar`: torchvision's ResNet-18 body with a 512-100-10 head (optionally with the
  softmax-in-forward mistake that one notebook studies).
* `resnet152_transfer`: a torchvision ResNet-152 with a new classifier and a frozen backbone
  (`cifarkit.freezing` freezes it and keeps its frozen BatchNorm statistics fixed).
* `remove_skip_connections`: the skip-connection ablation on torchvision ResNets.
* `SmallResNet`: CIFAR-style 3x3-stem nets, plain or residual, for the depth experiment of
  He et al. (2016).
* `GatedBlock` / `GatedCNN`: a CNN whose blocks mix several parallel convolutions with
  input-dependent gates.
* `SpeedrunNet`: the compact residual net of the speedrun notebook, with a whitened stem
  (`patch_whitening_filters`).
* `CoveringConv2d` / `cover_padding_taps`: convolutions that skip the kernel taps which meet only
  zero padding (``layer4`` of `ResNetForCifar` on 32x32 images), for speed.

Pretrained weights (``weights=None / "imagenet" / "auto" / a path``) are loaded by
`cifarkit.weights.apply_weights`; each model built with them records ``model.weights_source``.
"""
from __future__ import annotations

import os
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck

from .freezing import freeze_initial, unfreeze
from .runtime import eval_mode
from .validation import flag, number_in, positive_int, positive_ints
from .weights import apply_weights, read_state_dict

__all__ = [
    "ResNetForCifar",
    "resnet152_transfer",
    "remove_skip_connections",
    "NoSkipBasicBlock",
    "NoSkipBottleneck",
    "SmallBlock",
    "SmallResNet",
    "GatedBlock",
    "GatedCNN",
    "SpeedrunStage",
    "SpeedrunNet",
    "patch_whitening_filters",
]


# ----------------------------------------------------------------------------------------------
# ResNet-18 with a 512-100-10 head
# ----------------------------------------------------------------------------------------------

def checkpoint_stem(path) -> str:
    """``"cifar"`` or ``"imagenet"``: the stem of the `ResNetForCifar` saved in the state dict file
    at `path` (a 3x3 or a 7x7 ``conv1``; pruned state dicts with ``weight_orig`` too).
    Notebook 04 introduces it."""
    state = read_state_dict(path)
    conv1 = state.get("body.conv1.weight", state.get("body.conv1.weight_orig"))
    if conv1 is None:
        raise ValueError(f"{str(path)!r} holds no ResNetForCifar (no body.conv1 weight)")
    return "cifar" if conv1.shape[-1] == 3 else "imagenet"


class CoveringConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that skips the kernel taps which meet only zero padding, when its window
    covers the whole input and gives one output pixel.

    With the ImageNet stem a 32x32 image reaches ``layer4`` of a ResNet-18 as 1x1 pixels (its first
    convolution sees 2x2 at stride 2). A 3x3 convolution with padding 1 then multiplies 8 of its 9
    taps by padding zeros only: the never-seen weights of notebook 03. Those products are exactly
    zero, so the kernel cropped to the taps that meet the input gives the same output, and the same
    gradients (exactly zero for the skipped taps); on a CPU the full kernel's backward pass costs
    many times more (bench/results.md, section 8). The parameters, the state dict and pruning are
    those of ``nn.Conv2d``; any other input size runs the ordinary convolution.
    `cover_padding_taps` converts a model's convolutions.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.padding_mode == "zeros" and isinstance(self.padding, tuple) and self.dilation == (1, 1):
            (kh, kw), (ph, pw), (sh, sw) = self.kernel_size, self.padding, self.stride
            one_output = 0 <= h + 2 * ph - kh < sh and 0 <= w + 2 * pw - kw < sw
            if one_output and ph + h <= kh and pw + w <= kw:  # the window holds the whole input
                return F.conv2d(x, self.weight[:, :, ph:ph + h, pw:pw + w], self.bias, groups=self.groups)
        return super().forward(x)


def cover_padding_taps(model: nn.Module) -> nn.Module:
    """Turn every plain ``nn.Conv2d`` of `model` into a `CoveringConv2d`, in place, and return it.

    The outputs and gradients stay those of the plain convolutions up to float rounding, but the
    rounding differs, so a training run takes a slightly different path: the course's quick
    profiles were sized without it, and its notebooks do not call it. Use it for speed, e.g.
    ``cover_padding_taps(ResNetForCifar())`` on 32x32 images with the ImageNet stem.
    """
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = CoveringConv2d
    return model


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
    Notebook 01 introduces it.
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
        freeze_backbone: set ``requires_grad=False`` on every parameter except ``fc``'s
            (`cifarkit.freezing.freeze_initial` of all, then `unfreeze` of ``fc``).
        frozen_bn_eval: with a frozen backbone, pin its BatchNorm layers to eval mode, as
            `set_frozen_bn_eval` does (running statistics stay ImageNet's even in ``model.train()``).

    The result is a plain torchvision ``ResNet`` (58,164,298 parameters for 10 classes; 20,490 in
    ``fc``), with ``weights_source`` recorded. Build the optimizer over
    `cifarkit.freezing.trainable_parameters(model)`.
    Notebook 05 introduces it.
    """
    positive_int("num_classes", num_classes)
    model = torchvision.models.resnet152(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    apply_weights(model, weights, "resnet152", backbone=model)
    if freeze_backbone:
        freeze_initial(model, 1.0, bn_eval=frozen_bn_eval)
        unfreeze(model, "fc")
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
    so its parameters get no gradient. ``requires_grad`` flags are left alone; use
    `cifarkit.freezing.unfreeze` on the returned names to train the ablated blocks.

    Returns the names of the ablated blocks, e.g. ``["layer1.2", "layer2.5", ...]``.
    Raises ValueError for a missing layer or an out-of-range index, TypeError for a block that
    is not a torchvision BasicBlock/Bottleneck.
    Notebook 05 introduces it.
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

    is_block = True  # `cifarkit.gradients` groups its parameters as one block

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
    Notebook 05 introduces it.
    """

    def __init__(self, depth_per_stage: int = 3, residual: bool = True, widths=(16, 32, 64),
                 num_classes: int = 10):
        super().__init__()
        positive_int("depth_per_stage", depth_per_stage)
        widths = tuple(widths)
        if not widths or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(f"widths must be positive ints, got {widths!r}")
        if any(b < a for a, b in zip(widths, widths[1:])):
            raise ValueError(f"widths must not decrease (zero-padding shortcuts), got {widths!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.residual, self.widths = bool(residual), widths
        # a net whose first stage is narrower than 16 channels trains faster on a CPU in the default
        # layout than in channels-last (`devices.use_channels_last`; bench/results.md, section 8)
        self.channels_last = widths[0] >= 16
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
    is_block = True  # `cifarkit.gradients` groups its parameters as one block

    def __init__(self, in_ch: int, out_ch: int, n_convs: int = 3, gate_init: str = "default"):
        super().__init__()
        for name, v in (("in_ch", in_ch), ("out_ch", out_ch), ("n_convs", n_convs)):
            positive_int(name, v)
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
    Notebook 06 introduces it.
    """

    #: its gating multiplies many small tensors, which runs faster in the default layout than in
    #: channels-last on a CPU, at every width (`devices.use_channels_last`; bench/results.md, section 8)
    channels_last = False

    def __init__(self, widths=(64, 128, 256, 512, 512), convs_per_block: int = 3,
                 dropout: float = 0.3, num_classes: int = 10, hidden: int = 256,
                 gate_init: str = "default"):
        super().__init__()
        widths = positive_ints("widths", widths, 5, " (32x32 -> 1x1 through five 2x2 poolings)")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        for name, v in (("num_classes", num_classes), ("hidden", hidden)):
            positive_int(name, v)
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
        with eval_mode(self):
            self(x)
        return torch.stack([blk.last_gates.float().mean(dim=0) for blk in self.gated_blocks])


# --------------------------------------------------------------------------- speedrun network

def _speedrun_norm(channels: int, eps: float = 1e-5, frozen_weight: bool = True) -> nn.BatchNorm2d:
    """BatchNorm with fast-moving statistics and, by default, a fixed scale of 1 (only the shift
    is learned).

    The convolutions before it are scale-free under BatchNorm, so a learned scale adds nothing but
    noise in a 15-epoch run; a momentum of 0.4 (airbench's 0.6 in its own convention, the weight
    of the old statistics) lets the running statistics keep up with weights that change quickly
    under a high learning rate. `eps` is added to the variance (airbench uses 1e-12).
    """
    bn = nn.BatchNorm2d(channels, momentum=0.4, eps=eps)
    bn.weight.requires_grad_(not frozen_weight)
    return bn


def _dirac_init(conv: nn.Conv2d) -> None:
    """Make the first ``in_channels`` filters of `conv` pass their input channel through unchanged.

    With as many outputs as inputs the convolution starts as the identity; the remaining filters
    keep their random initialisation.
    """
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(conv.in_channels, conv.out_channels)])


class SpeedrunStage(nn.Module):
    """Conv 3x3 -> 2x2 max-pool -> BN -> GELU, then a second conv 3x3 -> BN -> GELU.

    With ``residual=True`` (the ``speedrun-v2`` recipe) the second convolution is a residual branch,
    ``y + GELU(BN(conv(y)))``; with ``residual=False`` (``speedrun`` and ``airbench94-muon``, airbench's block) the two
    convolutions simply follow each other. Pooling right after the first convolution (before BN)
    lets the second convolution run at a quarter of the pixels, which is where most of the saved
    compute comes from. Both convolutions start close to the identity (`_dirac_init`), so a fresh
    network already passes the whitened image through.

    Args:
        in_ch, out_ch: channels in and out.
        residual: add the second convolution's output to its input (see above).
        bn_eps: the BatchNorms' epsilon.
        freeze_bn_weights: keep the BatchNorms' scales at 1 (only their shifts learn).
    """

    def __init__(self, in_ch: int, out_ch: int, residual: bool = True, bn_eps: float = 1e-5,
                 freeze_bn_weights: bool = True):
        super().__init__()
        self.residual = residual
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn = _speedrun_norm(out_ch, bn_eps, freeze_bn_weights)
        self.res_conv = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.res_bn = _speedrun_norm(out_ch, bn_eps, freeze_bn_weights)
        _dirac_init(self.conv)
        _dirac_init(self.res_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.bn(self.pool(self.conv(x))))
        z = F.gelu(self.res_bn(self.res_conv(y)))
        return y + z if self.residual else z


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
    """A compact network for fast CIFAR-10 training (notebook 07, recipes ``speedrun``,
    ``speedrun-v2`` and ``airbench94-muon``).

    * Stem: a 2x2 convolution whose filters whiten the image patches (`init_whitening`, from a
      sample of the training images; the filters stay fixed, their biases learn), then GELU.
      ``whitening=False`` makes it an ordinary learnable convolution of the same shape
      (default initialisation; `init_whitening` then does nothing), for ablations.
    * One `SpeedrunStage` per width (each halves the side: 31 -> 15 -> 7 -> 3), residual or
      plain (`residual`).
    * A global max-pool and a bias-free linear classifier whose logits are multiplied by
      ``logit_scale`` (a small scale keeps the first softmax soft, which label smoothing and a
      high learning rate like); ``logit_scale=None`` divides by the last width, as airbench does.

    Ideas from the published fast-training work (Page's DAWNBench ResNet; tysam-code's hlb-cifar10
    and Keller Jordan's airbench): whitened patches, identity-initialised convolutions, few wide
    stages, pooling early inside each stage, BN with a fixed scale, GELU, a max-pool head.

    Args:
        widths: channels of each stage; default (64, 256, 256): 1,972,792 parameters, about
            0.12 GMAC per 32x32 image forward.
        num_classes: outputs.
        logit_scale: multiplies the logits (default 1/9; None: 1 / widths[-1]).
        whiten_kernel: side of the whitening filters (2: 24 filters of 2x2x3).
        residual: the stages' second convolution is a residual branch (see `SpeedrunStage`).
        bn_eps: epsilon of every BatchNorm.
        freeze_bn_weights: keep every BatchNorm's scale at 1 (False: the scales learn too).
        whitening: fixed whitening filters in the stem (False: a learnable stem).
        head_init_std: the classifier's starting weights are rescaled to this standard deviation
            (airbench uses 1, with ``logit_scale=None``); None keeps torch's default
            initialisation (std 1/sqrt(3 x width), about 0.036 at width 256).
        whiten_bias_init: ``"zeros"`` starts the stem's bias at 0; ``"uniform"`` keeps torch's
            default convolution bias, uniform in +-1/sqrt(fan_in) (+-0.29 for 2x2x3 filters), as
            airbench does.
    """

    def __init__(self, widths=(64, 256, 256), num_classes: int = 10, logit_scale: float | None = 1 / 9,
                 whiten_kernel: int = 2, residual: bool = True, bn_eps: float = 1e-5,
                 freeze_bn_weights: bool = True, whitening: bool = True, head_init_std: float | None = None,
                 whiten_bias_init: str = "zeros"):
        super().__init__()
        widths = positive_ints("widths", widths, what=" (one per stage)")
        positive_int("num_classes", num_classes)
        positive_int("whiten_kernel", whiten_kernel)
        for name, value in (("residual", residual), ("freeze_bn_weights", freeze_bn_weights),
                            ("whitening", whitening)):
            flag(name, value)
        number_in("bn_eps", bn_eps, 0, 1, lo_open=True, hi_open=True)
        head_init_std = number_in("head_init_std", head_init_std, 0, float("inf"), lo_open=True, hi_open=True,
                                  optional=True)
        if whiten_bias_init not in ("zeros", "uniform"):
            raise ValueError(f"whiten_bias_init must be 'zeros' or 'uniform', got {whiten_bias_init!r}")
        logit_scale = 1.0 / widths[-1] if logit_scale is None else float(logit_scale)
        self.widths, self.logit_scale, self.whitening = widths, logit_scale, whitening
        stem_width = 2 * 3 * whiten_kernel ** 2
        self.whiten = nn.Conv2d(3, stem_width, whiten_kernel, padding=0, bias=True)
        self.whiten.weight.requires_grad_(not whitening)
        if whiten_bias_init == "zeros":
            nn.init.zeros_(self.whiten.bias)
        chans = (stem_width, *widths)
        self.stages = nn.Sequential(*[SpeedrunStage(a, b, residual, bn_eps, freeze_bn_weights)
                                      for a, b in zip(chans, chans[1:])])
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes, bias=False)
        if head_init_std is not None:
            with torch.no_grad():
                self.fc.weight.mul_(head_init_std / self.fc.weight.std())

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor) -> None:
        """Set the stem's filters from `images`: normalised float images N x 3 x H x W, as the
        network will see them (a few thousand training images are plenty). Does nothing when the
        stem is learnable (``whitening=False``)."""
        if not self.whitening:
            return
        filters = patch_whitening_filters(images.to(self.whiten.weight.device), self.whiten.kernel_size[0])
        self.whiten.weight.copy_(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, B x num_classes."""
        x = F.gelu(self.whiten(x))
        x = self.pool(self.stages(x)).flatten(1)
        return self.fc(x) * self.logit_scale
