"""`TensorLoader`: batches straight from in-memory tensors, augmented on the device.

The textbook pipeline (`Dataset` -> PIL transforms per image -> `DataLoader` workers) spends most of
a small model's training time moving single images around. CIFAR-10 is only 150 MB as uint8, so
the fast path keeps the whole split on the device and does the random crop, flip, normalisation
and optional resize on whole batches at once.

Randomness (shuffling, crop offsets, flips) comes from one explicit CPU generator seeded by `seed`,
so a run is reproducible on any device, and its state is part of the checkpoint (`state_dict`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .callbacks import Callback
from .dataset import CIFAR10_MEAN, CIFAR10_STD, stratified_indices
from .devices import resolve_device
from .validation import WrongTypeError, int_in, integer, non_negative_int, number, positive_int, positive_ints


PAD_MODES = ("zeros", "reflect")


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator, pad_mode: str = "zeros") -> torch.Tensor:
    """Pad a batch `B x C x H x W` and cut a random `H x W` window per image.

    Equivalent to torchvision's `RandomCrop(H, padding=padding, padding_mode=...)` applied image by
    image; `pad_mode` is ``"zeros"`` or ``"reflect"`` (mirror the border, so no black frame).
    """
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    b, c, h, w = x.shape
    padding = int_in("padding", padding, 0, min(h, w) - 1)
    pad = (padding, padding, padding, padding)
    if pad_mode == "reflect":  # reflection padding has no integer kernel on the CPU
        padded = F.pad(x.float(), pad, mode="reflect").to(x.dtype)
    else:
        padded = F.pad(x, pad)
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator).to(x.device)
    rows = (offsets[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of a batch left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_cutout(x: torch.Tensor, size: int, generator: torch.Generator, fill: float = 0.0) -> torch.Tensor:
    """Set a `size` x `size` square of each image of a batch `B x C x H x W` to `fill`.

    Each square has a random centre anywhere in the image and is clipped at the border, so some
    images lose less than a full square (cutout, DeVries & Taylor 2017). On normalised images the
    default fill 0 is the dataset's mean colour.
    """
    b, _, h, w = x.shape
    size = int_in("size", size, 0, min(h, w))
    top = torch.randint(0, h, (b,), generator=generator).to(x.device) - size // 2
    left = torch.randint(0, w, (b,), generator=generator).to(x.device) - size // 2
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)   # B x H
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)  # B x W
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], fill)


class Batches:
    """Shuffled (or not) mini-batches of `(x, y)` tensors held in memory, with a reproducible,
    checkpointable generator. `TensorLoader` and `FeatureLoader` build on it.

    Labels must be integers (a float dtype is refused rather than rounded), and with `num_classes`
    lie in ``[0, num_classes)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, drop_last: bool,
                 seed: int, device, num_classes: int | None = None):
        check_labels(y, len(x), num_classes)
        batch_size = positive_int("batch_size", batch_size)
        seed = integer("seed", seed)
        self.device = resolve_device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device, torch.int64)
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def num_samples(self) -> int:
        """Items per epoch (before `drop_last`)."""
        return len(self.y)

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def transform(self, xb: torch.Tensor) -> torch.Tensor:
        """What a batch of `x` becomes before it is yielded (here: unchanged)."""
        return xb

    def __iter__(self):
        n = self.num_samples
        order = torch.randperm(n, generator=self.generator).to(self.device) if self.shuffle else None
        self._start_pass()
        for i in range(len(self)):
            sl = slice(i * self.batch_size, min((i + 1) * self.batch_size, n))
            idx = order[sl] if order is not None else sl
            yield self._batch(idx)

    def _start_pass(self) -> None:
        """Called once at the start of every pass over the data (after the shuffle is drawn)."""

    def _batch(self, idx) -> tuple:
        """The batch of the items `idx` (indices or a slice)."""
        return self.transform(self.x[idx]), self.y[idx]

    def state_dict(self) -> dict:
        """The generator state, so a resumed run draws the same batches as an uninterrupted one."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.generator.set_state(state["generator"])


def check_labels(y, n: int, num_classes: int | None = None) -> None:
    """Refuse labels that are not `n` integers (1-D), or, with `num_classes`, lie outside
    ``[0, num_classes)``: a float label would be truncated silently (2.7 -> 2) and a label of
    42 for 10 classes would fail deep inside the loss at the first batch."""
    if not isinstance(y, torch.Tensor):
        raise WrongTypeError(f"y must be a tensor of labels, got {type(y).__name__}")
    if y.dim() != 1 or len(y) != n:
        raise ValueError(f"y must be a 1-D tensor with {n} labels, got shape {tuple(y.shape)}")
    if y.dtype == torch.bool or y.dtype.is_floating_point or y.dtype.is_complex:
        raise WrongTypeError(f"y must hold integer class labels, got dtype {y.dtype} "
                             "(convert on purpose, e.g. y.long(), if the values are whole numbers)")
    num_classes = positive_int("num_classes", num_classes, optional=True)
    if num_classes is not None and len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"y holds label {bad}, outside 0 to {num_classes - 1} for num_classes={num_classes}")


class FeatureLoader(Batches):
    """Batches of precomputed feature vectors (see `cifarkit.features.extract_features`)."""

    def __init__(self, features, labels, batch_size: int = 256, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0, device="auto", tag: str | None = None,
                 num_classes: int | None = None):
        super().__init__(_tensor("features", features), _tensor("labels", labels), batch_size, shuffle, drop_last,
                         seed, device, num_classes)
        self.tag = tag

    def __repr__(self) -> str:
        return f"FeatureLoader({self.num_samples} x {tuple(self.x.shape[1:])}, batch_size={self.batch_size})"


class TensorLoader(Batches):
    """Iterate over `(images, labels)` batches of tensors that already live on `device`.

    Args:
        x: uint8 images `N x 3 x H x W` (as returned by `load_cifar10` / `load_data`).
        y: integer labels `N`, each in ``[0, num_classes)`` (float labels are refused, not rounded).
        batch_size: images per batch.
        shuffle: draw a new permutation every epoch.
        drop_last: skip the final short batch (keeps BatchNorm statistics clean in training).
        augment: random crop with `crop_padding` pixels of padding (``pad_mode`` "zeros" or
            "reflect"), then random horizontal flip, then (when `cutout` > 0) a `cutout` x `cutout`
            square set to the mean colour (`random_cutout`).
        alternating_flip: with `augment`, replace the random flip by airbench's alternating
            flip: a random half of the images is chosen once (``flip_base``, drawn here from the
            loader's generator); odd passes (the 1st, 3rd, ...) flip that half, even passes
            flip the other half, so every image is seen both ways in turn.
        normalize: subtract `mean` and divide by `std` (on the 0..1 scale); else just scale to 0..1.
        resize: output side length (e.g. 224 for ImageNet models), bilinear, after augmentation.
        device: where the data and batches live ("auto" picks the GPU when there is one).
        seed: seeds the loader's own generator (shuffling, augmentation, and the subset below).
        n: keep a stratified subset of `n` images (equal share per class).
        memory_format: e.g. `torch.channels_last` for the batches.
        tag: a label such as `data.label`, shown in logs and plot titles.
        crop_padding: pixels of padding for the random crop, from 0 to the image side - 1.
        cutout: side of the cutout square, from 0 (off) to the image side.
        num_classes: the number of classes the labels are checked against (default 10; None
            checks only that they are integers, e.g. for item indices used as labels).

    Every numeric argument is checked here, with the accepted range in the message.
    Notebook 01 introduces it.
    """

    def __init__(self, x, y, batch_size: int = 128, shuffle: bool = False, drop_last: bool = False,
                 augment: bool = False, normalize: bool = True, resize: int | None = None,
                 device="auto", seed: int = 0, n: int | None = None, crop_padding: int = 4,
                 pad_mode: str = "zeros", mean=CIFAR10_MEAN, std=CIFAR10_STD, memory_format=torch.contiguous_format,
                 tag: str | None = None, cutout: int = 0, num_classes: int | None = 10,
                 alternating_flip: bool = False):
        x, y = _tensor("x", x), _tensor("y", y)
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise TypeError(f"x must be a uint8 tensor N x C x H x W, got {x.dtype} {tuple(x.shape)}")
        check_labels(y, len(x), num_classes)
        side = min(x.shape[-2:])
        crop_padding = int_in("crop_padding", crop_padding, 0, max(side - 1, 0))
        cutout = int_in("cutout", cutout, 0, side)
        resize = positive_int("resize", resize, optional=True)
        n = non_negative_int("n", n, optional=True)
        mean, std = _per_channel("mean", mean, x.shape[1]), _per_channel("std", std, x.shape[1])
        if min(std) <= 0:
            raise ValueError(f"std must be positive for every channel, got {std}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        if not isinstance(alternating_flip, bool):
            raise WrongTypeError(f"alternating_flip must be True or False, got {alternating_flip!r}")
        if alternating_flip and not augment:
            raise ValueError("alternating_flip needs augment=True (it replaces the random flip)")
        if n is not None:
            idx = stratified_indices(y, n, integer("seed", seed))
            x, y = x[idx], y[idx]
        super().__init__(x, y, batch_size, shuffle, drop_last, seed, device, num_classes)
        self.pad_mode, self.cutout = pad_mode, cutout
        self.augment, self.normalize, self.resize = augment, normalize, resize
        self.crop_padding, self.memory_format, self.tag = crop_padding, memory_format, tag
        scale = 255.0
        self._mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * scale
        self._inv_std = 1.0 / (torch.tensor(std, device=self.device).view(1, -1, 1, 1) * scale)
        self.alternating_flip, self.passes = alternating_flip, 0
        self.flip_base = ((torch.rand(len(self.y), generator=self.generator) < 0.5).to(self.device)
                          if alternating_flip else None)

    def _start_pass(self) -> None:
        self.passes += 1

    def _batch(self, idx) -> tuple:
        flip = None
        if self.alternating_flip:
            flip = self.flip_base[idx] if self.passes % 2 else ~self.flip_base[idx]
        return self.transform(self.x[idx], flip=flip), self.y[idx]

    def state_dict(self) -> dict:
        """The generator state, and with `alternating_flip` the pass count and the flipped half."""
        state = super().state_dict()
        if self.alternating_flip:
            state.update(passes=self.passes, flip_base=self.flip_base.cpu())
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.alternating_flip and "flip_base" in state:
            if len(state["flip_base"]) != len(self.y):
                raise ValueError(f"the saved alternating flip covers {len(state['flip_base'])} images, "
                                 f"this loader has {len(self.y)}")
            self.passes, self.flip_base = int(state["passes"]), state["flip_base"].to(self.device, torch.bool)

    def transform(self, xb: torch.Tensor, train: bool | None = None, flip: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 batch -> float batch: (augment), normalise, (resize), memory format.

        `flip`: a bool per image, which images to mirror (instead of a random half) when augmenting."""
        augment = self.augment if train is None else train
        if augment:
            if self.crop_padding:
                xb = random_crop(xb, self.crop_padding, self.generator, self.pad_mode)
            if flip is None:
                xb = random_flip(xb, self.generator)
            else:
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        xb = xb.float()
        xb = (xb - self._mean) * self._inv_std if self.normalize else xb / 255.0
        if augment and self.cutout:
            xb = random_cutout(xb, self.cutout, self.generator)
        if self.resize is not None and xb.shape[-1] != self.resize:
            xb = F.interpolate(xb, size=(self.resize, self.resize), mode="bilinear", align_corners=False,
                               antialias=self.resize < xb.shape[-1])  # smaller: average, do not alias
        return xb.contiguous(memory_format=self.memory_format)


    def __repr__(self) -> str:
        flags = [f for f, on in (("shuffle", self.shuffle), ("augment", self.augment),
                                 ("drop_last", self.drop_last)) if on]
        size = f", resize={self.resize}" if self.resize else ""
        return (f"TensorLoader({self.num_samples} images, batch_size={self.batch_size}, {len(self)} batches, "
                f"device={self.device}{size}{', ' + ', '.join(flags) if flags else ''})")


def _tensor(name: str, value) -> torch.Tensor:
    """`value` (a tensor, array or nested list) as a tensor; anything else is refused naming `name`."""
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise WrongTypeError(f"{name} must be a tensor or an array, got {type(value).__name__}") from None


def _per_channel(name: str, values, channels: int) -> tuple:
    """`values` as a tuple of `channels` finite floats (one per image channel)."""
    try:
        values = tuple(values)
    except TypeError:
        raise WrongTypeError(f"{name} must be a sequence of {channels} numbers, got {values!r}") from None
    if len(values) != channels:
        raise ValueError(f"{name} must have one number per channel ({channels}), got {len(values)}")
    return tuple(number(f"{name}[{i}]", v) for i, v in enumerate(values))


class ProgressiveResize(Callback):
    """Progressive resizing: train the first epochs on smaller images, which cost less.

    Epoch e (counting from 1) trains on batches resized to ``sizes[e-1]`` pixels a side (bilinear,
    antialiased: `TensorLoader`'s ``resize``); the epochs after the list use the loader's own size
    again. Only the training loader changes; evaluation sees the full images. The network must
    accept other sizes (a global pool before its head, like `SpeedrunNet`). Pixels cost time
    roughly in proportion to their number, so a 24-pixel epoch costs about (24/32)^2 = 0.56 of a
    full one. Stateless: a resumed run picks the size from the epoch it resumes at.
    """

    def __init__(self, sizes):
        self.sizes = positive_ints("sizes", sizes, what=" (one side length per epoch)")
        self._native = None

    def on_fit_start(self, trainer, model):
        if not hasattr(trainer.train_loader, "resize"):
            raise TypeError("ProgressiveResize needs a training loader with a 'resize' attribute (TensorLoader), "
                            f"got {type(trainer.train_loader).__name__}")
        self._native = trainer.train_loader.resize

    def on_epoch_start(self, trainer, model):
        e = trainer.epoch
        trainer.train_loader.resize = self.sizes[e - 1] if e <= len(self.sizes) else self._native

    def on_fit_end(self, trainer, model):
        if hasattr(trainer.train_loader, "resize"):
            trainer.train_loader.resize = self._native
