"""Named training recipes: a model, an optimizer, a schedule and data settings in one object.

The notebooks and `bench/accuracy.py` train the same recipes, so a number in the README and a
curve in a notebook come from the same code. Look a recipe up by name and train it::

    recipe = ck.get_recipe("speedrun")
    result = ck.train_recipe(recipe, data, checkpoint="runs/speedrun.pt")

`Recipe` is a frozen dataclass: ``recipe.replace(epochs=3)`` gives a changed copy.

Recipes (`RECIPES`):

* ``gated-seed``: the gated CNN with the original course settings: Adam, lr 1e-3, weight decay
  1e-4, batch 128, no augmentation, constant learning rate, 30 epochs.
* ``gated-improved``: the same network and optimizer with crop + flip augmentation, a one-cycle
  schedule peaking at 2e-3, and label smoothing 0.1.
* ``airbench94-muon``: the published settings of the record recipe (airbench94_muon) in the
  kit's code: `SpeedrunNet` with plain (not residual) stages, batch 2000, 8 epochs, Muon on the
  conv filters and Nesterov SGD on the rest (`MuonSGD`), lr decaying linearly to zero, the loss
  summed over the batch, the whitening bias trained for 3 epochs, alternating flip, 6-view TTA, the
  head's weights starting at std 1.
* ``speedrun``: that recipe made for a CPU: batch 500 and the first three epochs on smaller
  images (24, 24, 28 pixels), without label smoothing. Each ingredient is a field, so an ablation
  can switch one off (``bench/speedrun_ablation.py``).
* ``speedrun-torch-init``: the previous speedrun, with torch's default initialisation of the
  head and of the whitening bias instead of the record's (`AIRBENCH_INIT`).
* ``speedrun-v2``: the previous speedrun: residual `SpeedrunNet`, Nesterov SGD at batch 1024, a
  triangular schedule, 64x learning rate on biases, lookahead, 18 epochs.
* ``speedrun-wide``: speedrun-v2 with 1.5x wider stages and 14 epochs (the 60-minute budget).

Both gated recipes start every gate at 1 (``gate_init="open"``); see `GatedBlock`.

The registries are open: `register_recipe(Recipe(...))` adds a named recipe (then `get_recipe`,
`bench/accuracy.py` and `--set` work with it), `register_model(name, build)` a model.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from .callbacks import Callback
from .dataset import stratified_indices
from .loader import PAD_MODES, ProgressiveResize, TensorLoader
from .optim import Lookahead, MuonSGD
from .resume import Checkpoint
from .seeds import seed_everything
from .timing import Timer
from .training import History, Trainer, evaluate
from .validation import flag, int_in, non_negative_int, number, number_in, positive_int, positive_ints, positive_number

__all__ = ["Recipe", "RECIPES", "MODELS", "check_recipe", "param_groups", "get_recipe", "register_recipe",
           "register_model", "train_recipe", "RecipeResult", "TimeToAccuracy", "SummedCrossEntropy"]



def _gated_cnn(recipe: "Recipe") -> nn.Module:
    from .models import GatedCNN
    return GatedCNN(**recipe.model_kwargs)


def _speedrun_net(recipe: "Recipe") -> nn.Module:
    from .models import SpeedrunNet
    return SpeedrunNet(**recipe.model_kwargs, **{a: getattr(recipe, a) for a in _SPEEDRUN_NET_FIELDS})


#: The models a recipe can name: name -> a function of the recipe that builds a fresh model.
#: Open: `register_model("mine", lambda recipe: MyNet(**recipe.model_kwargs))`.
MODELS = {"gated": _gated_cnn, "speedrun": _speedrun_net}
_OPTIMIZERS = ("adam", "sgd-nesterov")
_SCHEDULES = ("constant", "one-cycle", "triangular", "linear")
#: Recipe fields that must be True or False
_FLAGS = ("augment", "tta_flip", "decay_norm_and_bias", "lookahead", "muon", "sum_loss", "alternating_flip",
          "freeze_bn_weights", "whitening", "compile")
#: Recipe fields passed to `SpeedrunNet` (so they cannot be in `model_kwargs` as well), with their defaults
_SPEEDRUN_NET_FIELDS = {"freeze_bn_weights": True, "whitening": True}
WHITENING_IMAGES = 5000  # training images that set a whitened stem's filters


def one_cycle_warmup(warmup: float, total_steps: int) -> float:
    """`warmup` (a fraction of `total_steps`) as torch's ``OneCycleLR(pct_start=...)`` can take it.

    torch divides by zero when a phase of its schedule lasts zero steps, which happens when the
    warm-up is exactly one step or all of them (``warmup * total_steps`` is 1 or `total_steps`,
    e.g. a quarter of 4 steps after a student shrinks the data). Such a warm-up moves by half a
    step; every other one is returned unchanged.
    """
    steps = warmup * total_steps
    if steps not in (1, total_steps):
        return warmup
    return (steps + 0.5 if steps + 0.5 < total_steps else steps - 0.5) / total_steps


@dataclass(frozen=True)
class Recipe:
    """Everything needed to train one model the same way twice.

    Attributes:
        name: the recipe's name.
        model: a name in `MODELS`: ``"gated"`` (`GatedCNN`), ``"speedrun"`` (`SpeedrunNet`), or
            one added with `register_model`.
        model_kwargs: keyword arguments for the model's constructor.
        epochs, batch_size: training length and batch size.
        optimizer: ``"adam"`` or ``"sgd-nesterov"`` (momentum `momentum`).
        lr: the constant learning rate, or the peak of a schedule.
        weight_decay: L2 weight decay of the optimizer (not applied to BN and bias parameters
            when `decay_norm_and_bias` is False).
        bias_lr_scale: the 1-D parameters (biases, BatchNorm shifts) learn this many times faster;
            their weight decay is divided by it, so the decay per step stays the same.
        head_lr_scale: the same for the 2-D weights (the linear head), e.g. airbench's head lr.
        schedule: ``"constant"``, ``"one-cycle"`` (torch's cosine OneCycleLR), ``"triangular"``
            (linear from ``lr_start * lr`` up to `lr` over `warmup` of the steps, then linearly
            down to ``lr_end * lr``) or ``"linear"`` (from `lr` at the first step straight down
            to zero after the last: step s of S uses ``lr * (1 - s/S)``).
        warmup: share of the steps spent rising to the peak (schedules only).
        augment: random crop (`crop_padding` pixels, `pad_mode` padding) and horizontal flip, plus
            a `cutout` x `cutout` blanked square per image when `cutout` > 0.
        label_smoothing: passed to ``nn.CrossEntropyLoss``.
        tta_flip, tta_shift: test-time augmentation of the final evaluation (see `tta_logits`).
        lookahead: train with the `Lookahead` callback (a slow average of the weights).
        muon: train the conv filters (4-D parameters) with Muon (`MuonSGD`: lr `muon_lr`,
            Nesterov momentum `muon_momentum`, `muon_steps` Newton-Schulz steps, no weight decay)
            and the rest with Nesterov SGD (momentum `momentum`). Needs ``optimizer="sgd-nesterov"``;
            False: the filters take SGD steps at `lr` like the other weights.
        sum_loss: the gradient is that of the loss summed over the batch, not averaged, so the
            SGD learning rates are per image (airbench's units); the loss *value* that logs and
            histories show stays the mean (see `SummedCrossEntropy`).
        whiten_bias_epochs: the stem's bias (``model.whiten.bias``, speedrun model) gets its own
            group whose schedule runs over this many epochs and then stays at zero, so the bias
            stops training (None: it follows the other biases for the whole run).
        alternating_flip: with `augment`, flip a random half of the training set once, then every
            other epoch flip every image the other way (`TensorLoader`), instead of random flips.
        freeze_bn_weights: speedrun model: BatchNorm scales fixed at 1 (False: they learn).
        whitening: speedrun model: a fixed whitening stem (False: a learnable conv of that shape).
        compile: `torch.compile` the model's forward (``model.compile()``) before training.
        micro_batch: forward and backward each batch in chunks of this many images before its one
            step (`Trainer`'s ``micro_batch``): the same gradient, but on a CPU the smaller chunks'
            activations stay in cache, which is faster; BatchNorm sees each chunk's statistics.
            None: whole batches.
        image_sizes: progressive resizing: the side of the training images in each of the first
            epochs, e.g. ``(24, 24, 28)``; later epochs train on the full images
            (`ProgressiveResize`; sizes past a shorter run's last epoch go unused). Smaller images
            cost less time. None: full images throughout.
        description: one line for tables.
    """

    name: str
    model: str
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "constant"
    warmup: float = 0.25
    augment: bool = False
    label_smoothing: float = 0.0
    tta_flip: bool = False
    tta_shift: int = 0
    decay_norm_and_bias: bool = True
    bias_lr_scale: float = 1.0
    lr_start: float = 0.0
    lr_end: float = 0.0
    crop_padding: int = 4
    pad_mode: str = "zeros"
    cutout: int = 0
    lookahead: bool = False
    head_lr_scale: float = 1.0
    muon: bool = False
    muon_lr: float = 0.24
    muon_momentum: float = 0.6
    muon_steps: int = 3
    sum_loss: bool = False
    whiten_bias_epochs: int | None = None
    alternating_flip: bool = False
    freeze_bn_weights: bool = True
    whitening: bool = True
    compile: bool = False
    micro_batch: int | None = None
    image_sizes: tuple | None = None
    model_kwargs: dict = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        check_recipe(self)

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_model_kwargs(self, **changes) -> "Recipe":
        """A copy whose model gets `changes` on top of the recipe's own model settings (e.g. other
        ``widths`` while ``residual=False`` and the rest stay): ``replace(model_kwargs=...)``
        would drop them."""
        return self.replace(model_kwargs={**self.model_kwargs, **changes})

    def with_batch_size(self, batch_size: int) -> "Recipe":
        """A copy for another batch size, with the learning rate scaled in proportion (the linear
        scaling rule: the same step per training image), e.g. to run the speedrun on a small subset.

        With `sum_loss` the SGD rates are already per image and stay, and the weight decay (per
        step) scales instead. The Muon rate stays too: its step has a fixed size whatever the
        gradient's, so the linear rule does not apply (scaling it down to batch 100 left a
        1-epoch tiny run near chance; unscaled it learned)."""
        ratio = batch_size / self.batch_size
        if self.sum_loss:
            return self.replace(batch_size=batch_size, weight_decay=self.weight_decay * ratio)
        return self.replace(batch_size=batch_size, lr=self.lr * ratio)

    def build_model(self) -> nn.Module:
        """A freshly initialised model (seed the RNG first for reproducible weights): `MODELS`."""
        return MODELS[self.model](self)

    def param_groups(self, model: nn.Module) -> list[dict]:
        """The optimizer's parameter groups over the trainable parameters of `model`: `param_groups`."""
        return param_groups(self, model)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The recipe's optimizer over the trainable parameters of `model` (see `param_groups`)."""
        groups = self.param_groups(model)
        if self.optimizer == "adam":
            return torch.optim.Adam(groups, lr=self.lr)
        if self.muon:
            return MuonSGD(groups, lr=self.lr, momentum=self.momentum, nesterov=True, ns_steps=self.muon_steps)
        return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, nesterov=True)

    def lr_factor(self, step: int, total: int) -> float:
        """The share of the peak rate at `step` (0-based) of a `total`-step schedule."""
        if self.schedule == "constant":
            return 1.0
        if self.schedule == "linear":
            return max(0.0, 1.0 - step / total)
        rise = max(1, round(self.warmup * total))
        start, end = self.lr_start, self.lr_end
        if step < rise:
            return start + (1.0 - start) * step / rise
        return end + (1.0 - end) * max(0.0, (total - step) / max(1, total - rise))

    def build_scheduler(self, optimizer, steps_per_epoch: int):
        """The learning-rate schedule, stepped once per batch (None for a constant rate).

        A ``whiten_bias`` group (see `param_groups`) follows the same shape over its
        `whiten_bias_epochs` and stays at zero afterwards."""
        total = self.epochs * steps_per_epoch
        names = [g.get("name", "") for g in optimizer.param_groups]
        if self.schedule == "constant" and "whiten_bias" not in names:
            return None
        if self.schedule == "one-cycle":
            return torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
                pct_start=one_cycle_warmup(self.warmup, total))
        stop = (self.whiten_bias_epochs or self.epochs) * steps_per_epoch

        def main(step: int) -> float:
            return self.lr_factor(step, total)

        def stem_bias(step: int) -> float:
            return self.lr_factor(step, stop) if step < stop else 0.0

        lambdas = [stem_bias if name == "whiten_bias" else main for name in names]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas if len(lambdas) > 1 else main)

    def loss_fn(self) -> nn.Module:
        """Cross-entropy with the recipe's label smoothing (summed over the batch with `sum_loss`)."""
        if self.sum_loss:
            return SummedCrossEntropy(label_smoothing=self.label_smoothing)
        return nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)

    def train_loader(self, data, device="auto", seed: int = 0) -> TensorLoader:
        """Shuffled training batches of `data` (a `CifarData`), augmented if the recipe says so.

        The last, incomplete batch is dropped (a small last batch adds noise to a tuned schedule)
        unless the split is smaller than one batch.
        """
        return TensorLoader(data.x_train, data.y_train, self.batch_size, shuffle=True,
                            drop_last=len(data.y_train) >= self.batch_size, augment=self.augment,
                            crop_padding=self.crop_padding, pad_mode=self.pad_mode, cutout=self.cutout,
                            alternating_flip=self.alternating_flip, device=device, seed=seed, tag=data.label)

    @property
    def tta(self) -> str:
        """The final evaluation's test-time augmentation in words ("" for none)."""
        views = (["flip"] if self.tta_flip else []) + ([f"shift {self.tta_shift}"] if self.tta_shift else [])
        return " + ".join(views)

    def summary(self) -> str:
        """One line: what the recipe does."""
        sched = "constant lr" if self.schedule == "constant" else f"{self.schedule} schedule"
        if self.muon:  # the base lr trains nothing itself: name each group's rate
            parts = [f"muon lr {self.muon_lr:g} (momentum {self.muon_momentum:g}, {self.muon_steps} Newton-Schulz "
                     f"steps) on the conv filters", f"{self.optimizer} (momentum {self.momentum:g}) on the rest: "
                     f"bias lr {self.lr * self.bias_lr_scale:.3g}, head lr {self.lr * self.head_lr_scale:.3g}",
                     f"decay {self.lr * self.weight_decay:.3g} per step"]
        else:
            parts = [f"{self.optimizer} lr {self.lr:g}", f"wd {self.weight_decay:g}"]
        parts += [sched, f"batch {self.batch_size}", f"{self.epochs} epochs"]
        for what, scale in (("bias", self.bias_lr_scale), ("head", self.head_lr_scale)):
            if scale != 1.0 and not self.muon:
                parts.append(f"{what} lr x{scale:g}")
        if self.sum_loss:
            parts.append("loss summed over the batch")
        if self.whiten_bias_epochs is not None:
            parts.append(f"whitening bias trained {self.whiten_bias_epochs} epochs")
        parts += [words for flag, words in ((not self.whitening, "learnable stem (no whitening)"),
                                            (not self.freeze_bn_weights, "learnable BN scales")) if flag]
        if self.model_kwargs.get("head_init_std") is not None:  # SpeedrunNet's initialisation options
            parts.append(f"head initialised at std {self.model_kwargs['head_init_std']:g}")
        if self.model_kwargs.get("whiten_bias_init", "zeros") != "zeros":
            parts.append(f"whitening bias initialised {self.model_kwargs['whiten_bias_init']}")
        if self.augment:
            crop = "crop+alternating flip" if self.alternating_flip else "crop+flip"
            parts.append(crop if self.pad_mode == "zeros" else f"{self.pad_mode} {crop}")
            if self.cutout:
                parts.append(f"cutout {self.cutout}")
        if self.label_smoothing:
            parts.append(f"label smoothing {self.label_smoothing:g}")
        if self.lookahead:
            parts.append("lookahead")
        if self.tta:
            parts.append(f"TTA {self.tta}")
        if self.image_sizes:
            parts.append("progressive resizing " + "-".join(map(str, self.image_sizes)) + " px, then full size")
        if self.micro_batch is not None and self.micro_batch < self.batch_size:
            parts.append(f"micro-batches of {self.micro_batch}")
        if self.compile:
            parts.append("torch.compile")
        return f"{self.name}: {self.model} model, " + ", ".join(parts)


def check_recipe(recipe: Recipe) -> None:
    """Check every field of `recipe` and the fields that only make sense together, with one-line
    errors naming the field; ``image_sizes`` is normalised to a tuple of ints. `Recipe` calls it."""
    for attr, allowed in (("model", tuple(MODELS)), ("optimizer", _OPTIMIZERS), ("schedule", _SCHEDULES),
                          ("pad_mode", PAD_MODES)):
        if getattr(recipe, attr) not in allowed:
            raise ValueError(f"{attr} must be one of {allowed}, got {getattr(recipe, attr)!r}")
    for attr in ("name", "description"):
        if not isinstance(getattr(recipe, attr), str):
            raise ValueError(f"{attr} must be a string, got {getattr(recipe, attr)!r}")
    for attr in _FLAGS:
        flag(attr, getattr(recipe, attr))
    for attr in ("epochs", "batch_size"):
        positive_int(attr, getattr(recipe, attr))
    for attr in ("crop_padding", "tta_shift", "cutout"):
        non_negative_int(attr, getattr(recipe, attr))
    positive_int("whiten_bias_epochs", recipe.whiten_bias_epochs, optional=True)
    positive_int("micro_batch", recipe.micro_batch, optional=True)
    if recipe.image_sizes is not None:
        object.__setattr__(recipe, "image_sizes", positive_ints(
            "image_sizes", recipe.image_sizes, what=" (one side length per epoch) or None"))
    int_in("muon_steps", recipe.muon_steps, 1, 20)
    for attr in ("lr", "bias_lr_scale", "head_lr_scale", "muon_lr"):
        positive_number(attr, getattr(recipe, attr))
    number_in("warmup", recipe.warmup, 0, 1, lo_open=True, hi_open=True)
    for attr in ("label_smoothing", "momentum", "muon_momentum"):
        number_in(attr, getattr(recipe, attr), 0, 1, hi_open=True)
    for attr in ("lr_start", "lr_end"):  # shares of the peak lr
        number_in(attr, getattr(recipe, attr), 0, 1)
    if number("weight_decay", recipe.weight_decay, "a non-negative number") < 0:
        raise ValueError(f"weight_decay must be a non-negative number, got {recipe.weight_decay!r}")
    # fields that only make sense together
    if not isinstance(recipe.model_kwargs, dict):
        raise ValueError(f"model_kwargs must be a dict, got {recipe.model_kwargs!r}")
    if recipe.muon and recipe.optimizer != "sgd-nesterov":
        raise ValueError(f"muon needs optimizer='sgd-nesterov' for the other parameters, got {recipe.optimizer!r}")
    if recipe.alternating_flip and not recipe.augment:
        raise ValueError("alternating_flip needs augment=True (it replaces the random flip)")
    epochs = recipe.whiten_bias_epochs
    if epochs is not None and recipe.schedule == "one-cycle":
        raise ValueError("whiten_bias_epochs does not work with schedule='one-cycle'; use 'linear' or 'triangular'")
    speedrun_only = [a for a, default in _SPEEDRUN_NET_FIELDS.items() if getattr(recipe, a) != default]
    speedrun_only += ["whiten_bias_epochs"] if epochs is not None else []
    if recipe.model != "speedrun" and speedrun_only:
        raise ValueError(f"{speedrun_only[0]} applies to the speedrun model only, "
                         f"this recipe's model is {recipe.model!r}")
    clash = sorted(set(recipe.model_kwargs) & set(_SPEEDRUN_NET_FIELDS))
    if clash:
        raise ValueError(f"model_kwargs must not hold {clash[0]}: set the recipe field {clash[0]} instead")


def param_groups(recipe: Recipe, model: nn.Module) -> list[dict]:
    """The optimizer's parameter groups of `recipe` over the trainable parameters of `model`.

    Each parameter is one of four kinds: conv ``filters`` (4-D; Muon with `muon`), ``linear``
    weights (2-D; `head_lr_scale`), ``biases`` (1-D: biases and BatchNorm parameters;
    `bias_lr_scale`) and, with `whiten_bias_epochs`, the stem's ``whiten_bias``. Kinds with
    the same settings share one group (so ``speedrun`` has the two groups it always had);
    the stem's bias always has its own, for its schedule. Every group is named (``"name"``),
    and SGD groups keep the same decay per step (``lr x weight_decay``).
    """
    stem = getattr(model, "whiten", None) if recipe.whiten_bias_epochs is not None else None
    stem_bias = getattr(stem, "bias", None)

    def sgd(scale: float, decay: bool = True) -> dict:
        return {"lr": recipe.lr * scale, "weight_decay": recipe.weight_decay / scale if decay else 0.0}

    muon = {"lr": recipe.muon_lr, "weight_decay": 0.0, "momentum": recipe.muon_momentum, "orthogonalize": True,
            "ns_steps": recipe.muon_steps}
    settings = {"filters": muon if recipe.muon else sgd(1.0), "linear": sgd(recipe.head_lr_scale),
                "biases": sgd(recipe.bias_lr_scale, recipe.decay_norm_and_bias),
                "whiten_bias": sgd(recipe.bias_lr_scale, recipe.decay_norm_and_bias)}
    slot: dict[str, int] = {}  # kind -> index of its group
    groups: list[dict] = []
    for kind, setting in settings.items():
        same = [slot[k] for k in slot if settings[k] == setting and k != "whiten_bias"]
        if same and kind != "whiten_bias":
            slot[kind] = same[0]
            groups[same[0]]["name"] += f"+{kind}"
        else:
            slot[kind] = len(groups)
            groups.append({"name": kind, "params": [], **setting})

    def kind_of(p) -> str:
        if p is stem_bias:
            return "whiten_bias"
        return "filters" if p.dim() > 2 else "linear" if p.dim() == 2 else "biases"

    for p in model.parameters():
        if p.requires_grad:
            groups[slot[kind_of(p)]]["params"].append(p)
    return [g for g in groups if g["params"]]


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("gated-seed", "gated", epochs=30, batch_size=128, optimizer="adam", lr=1e-3,
           weight_decay=1e-4, model_kwargs={"gate_init": "open"},
           description="the course's original recipe for the gated CNN"),
    Recipe("gated-improved", "gated", epochs=30, batch_size=128, optimizer="adam", lr=2e-3,
           weight_decay=1e-4, schedule="one-cycle", augment=True, label_smoothing=0.1,
           tta_flip=True, model_kwargs={"gate_init": "open"},
           description="gated CNN with augmentation, one-cycle and label smoothing"),
    # lr 1.5 at batch 1024 (mean loss) with momentum 0.85; weight decay 1.33e-3 decays each step by
    # about 0.2% at the peak; biases learn 64x faster (airbench's settings in torch's units).
    Recipe("speedrun-v2", "speedrun", epochs=18, batch_size=1024, optimizer="sgd-nesterov", lr=1.5,
           momentum=0.85, weight_decay=0.0153 / 11.5, bias_lr_scale=64.0, schedule="triangular",
           warmup=0.23, lr_start=0.2, lr_end=0.07, augment=True, crop_padding=2, pad_mode="reflect",
           label_smoothing=0.2, lookahead=True, tta_flip=True, tta_shift=1,
           description="the previous speedrun: whitened residual net, SGD + lookahead, triangular schedule"),
)}
# the same recipe with 1.5x wider stages (about 2.2x the compute per image), for the 60-minute budget
RECIPES["speedrun-wide"] = RECIPES["speedrun-v2"].replace(
    name="speedrun-wide", epochs=14, model_kwargs={"widths": (96, 384, 384)},
    description="speedrun-v2 with 1.5x wider stages, for a 60-minute budget")

#: the SGD rate for the conv filters when Muon is switched off (``muon=False``): speedrun-v2's 1.5
#: at batch 1024 with a mean loss, in the per-image units of a summed loss; it is also the base
#: that the bias and head scales multiply
V3_SGD_LR = 1.5 / 1024
#: airbench's decay per step in every SGD group: 2e-6 x batch size = lr x weight decay
V3_DECAY_PER_STEP = 2e-6 * 2000
# airbench94_muon's published settings in the kit's terms: biases (BN shifts and the whitening
# bias) at 0.053, the head at 0.67, Muon 0.24 with momentum 0.6 (3 Newton-Schulz steps), SGD
# momentum 0.85; BN momentum 0.4 (torch's convention) and eps 1e-12; logits divided by the width;
# the head's weights start at std 1 and the whitening bias at torch's default (uniform +-0.29).
#: the record recipe's initialisation, which the kit's earlier recipes lacked (torch's default head,
#: std 0.036, and a zero whitening bias); bench/results.md compares `speedrun` with
#: `speedrun-torch-init`, seed by seed
AIRBENCH_INIT = {"head_init_std": 1.0, "whiten_bias_init": "uniform"}
RECIPES["airbench94-muon"] = Recipe(
    "airbench94-muon", "speedrun", epochs=8, batch_size=2000, optimizer="sgd-nesterov", lr=V3_SGD_LR,
    momentum=0.85, weight_decay=V3_DECAY_PER_STEP / V3_SGD_LR, bias_lr_scale=0.053 / V3_SGD_LR,
    head_lr_scale=0.67 / V3_SGD_LR, schedule="linear", augment=True, crop_padding=2, pad_mode="reflect",
    alternating_flip=True, label_smoothing=0.2, sum_loss=True, tta_flip=True, tta_shift=1, muon=True,
    muon_lr=0.24, muon_momentum=0.6, muon_steps=3, whiten_bias_epochs=3,
    model_kwargs={"residual": False, "bn_eps": 1e-12, "logit_scale": None, **AIRBENCH_INIT},
    description="the record recipe's published settings (airbench94_muon), the kit's code")
#: the speedrun: airbench94_muon's recipe with two CPU changes and one setting measured again. Batch
#: 500 (four times the steps per epoch for the same work; smaller activations stay in a CPU's cache;
#: the per-image SGD rates and decay stay, Muon's fixed-size step follows the square-root rule,
#: 0.24 x sqrt(500 / 2000) = 0.12), and the first three epochs on 24, 24 and 28-pixel images
#: (progressive resizing). No label smoothing: at batch 500 the record's 0.2 ended lower on every
#: seed tried (bench/results.md, keys speedrun[-torch-init]+label-smoothing-0.2-8ep[-seedN])
RECIPES["speedrun"] = RECIPES["airbench94-muon"].with_batch_size(500).replace(
    name="speedrun", muon_lr=0.12, image_sizes=(24, 24, 28), label_smoothing=0.0,
    description="airbench94_muon's recipe at batch 500 with progressive resizing, without label smoothing")
#: the previous speedrun: the same with torch's default initialisation of the head and of the
#: whitening bias (its runs, its ablation and the changes tried on it are recorded under this name)
RECIPES["speedrun-torch-init"] = RECIPES["speedrun"].replace(
    name="speedrun-torch-init",
    model_kwargs={k: v for k, v in RECIPES["speedrun"].model_kwargs.items() if k not in AIRBENCH_INIT},
    description="the previous speedrun: torch's default head and whitening-bias initialisation")


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by `scale`."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class SummedCrossEntropy(nn.Module):
    """Cross-entropy whose gradient is that of the loss *summed* over the batch (airbench's
    ``reduction="sum"``) while the value it returns is the *mean*.

    The gradient is what trains, so the learning rates are per image, as in airbench. The value
    is what the Trainer and `evaluate` average into ``train_loss`` and ``val_loss`` (they weight
    each batch's value by its size), so it stays the per-image mean there, comparable with every
    other recipe's curves; a value B times larger would not change training but would make those
    curves wrong.
    """

    #: the gradient's reduction (its value is the mean): `Trainer`'s micro-batches add up unscaled
    reduction = "sum"

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.mean = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.mean(logits, target)
        if not torch.is_grad_enabled():
            return loss
        return _ScaleGradient.apply(loss, float(len(target)))


def register_model(name: str, build) -> None:
    """Make `build` (a function of a `Recipe` returning a fresh model) the model called `name`."""
    if not isinstance(name, str) or not callable(build):
        raise ValueError(f"register_model wants a name and a function of the recipe, got {name!r}, {build!r}")
    MODELS[name] = build


def register_recipe(recipe: Recipe, replace: bool = False) -> Recipe:
    """Add `recipe` to `RECIPES` under its name (an existing name needs ``replace=True``)."""
    if not isinstance(recipe, Recipe):
        raise ValueError(f"register_recipe wants a Recipe, got {type(recipe).__name__}")
    if recipe.name in RECIPES and not replace:
        raise ValueError(f"a recipe called {recipe.name!r} exists; pass replace=True to replace it")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str, **changes) -> Recipe:
    """The recipe called `name` from `RECIPES`, with `changes` applied; a clear error otherwise.
    Notebook 06 introduces it."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name].replace(**changes) if changes else RECIPES[name]


class TimeToAccuracy(Callback):
    """Records the training time (seconds, evaluation excluded) when ``val_acc`` first reaches
    each of `targets`; ``reached`` maps target -> (epoch, seconds)."""

    def __init__(self, targets=(0.93, 0.94)):
        self.targets = tuple(sorted(targets))
        self.reached: dict[float, tuple[int, float]] = {}
        self._seconds = 0.0

    def on_epoch_end(self, trainer, model, record):
        self._seconds += record.get("seconds", 0.0)
        for t in self.targets:
            if t not in self.reached and record.get("val_acc", 0.0) >= t:
                self.reached[t] = (record["epoch"], self._seconds)

    @classmethod
    def from_history(cls, history: History, targets=(0.93, 0.94)) -> "TimeToAccuracy":
        """The same record, replayed from a finished run's `History` (e.g. a run resumed from a
        checkpoint written before the callback was part of it)."""
        replay = cls(targets)
        for record in history.records:
            replay.on_epoch_end(None, None, record)
        return replay

    def state_dict(self) -> dict:
        return {"reached": dict(self.reached), "seconds": self._seconds}

    def load_state_dict(self, state: dict) -> None:
        self.reached = dict(state.get("reached", {}))
        self._seconds = float(state.get("seconds", 0.0))


@dataclass
class RecipeResult:
    """What `train_recipe` returns: the model, its history and the final evaluations."""

    recipe: Recipe
    model: nn.Module
    history: History
    test: dict
    test_tta: dict | None
    seconds: float
    train_seconds: float
    images_per_s: float
    time_to_accuracy: dict

    @property
    def final_acc(self) -> float:
        """Test accuracy of the last epoch, with flip TTA when the recipe uses it."""
        return (self.test_tta or self.test)["acc"]


def train_recipe(recipe: Recipe, data, device="auto", precision="auto", seed: int = 0,
                 callbacks=(), checkpoint=None, progress="auto", log: bool = True,
                 eval_batch_size: int = 1000, targets=(0.93, 0.94),
                 per_image: bool = False, channels_last: bool | None = None,
                 val_images: int | None = None) -> RecipeResult:
    """Train `recipe` on `data` (a `CifarData`) and evaluate it on the test split.

    With `checkpoint` (a path) the whole training state is written there after every epoch, and
    an existing file is resumed from, so an interrupted run loses at most one epoch. The test
    split is evaluated after every epoch (``val_acc`` in the history, no TTA); at the end it is
    evaluated once more, with the recipe's test-time augmentation too when it has one.
    `per_image=True` keeps which test images the final evaluations got right (``"correct"`` in
    ``test`` and ``test_tta``, see `evaluate`), for paired comparisons (`Estimate.paired`)
    without evaluating the model again; the accuracies are the same either way.
    `precision` and `channels_last` go to the `Trainer` (None: its rule, `devices.use_channels_last`), so a
    benchmark can switch each off alone (``bench/precision.py``). `val_images` evaluates each
    epoch on a class-balanced sample of that many test images (None: all), the final evaluations
    always on the whole test split: a cheaper curve where evaluation would cost more than training.
    Notebook 06 introduces it.
    """
    seed_everything(seed)
    model = recipe.build_model()
    train_loader = recipe.train_loader(data, device=device, seed=seed)
    test_loader = TensorLoader(data.x_test, data.y_test, eval_batch_size, device=device, tag=data.label)
    val_loader = test_loader
    if val_images is not None and positive_int("val_images", val_images) < len(data.y_test):
        keep = stratified_indices(data.y_test, val_images, seed)
        val_loader = TensorLoader(data.x_test[keep], data.y_test[keep], eval_batch_size, device=device, tag=data.label)
    if hasattr(model, "init_whitening"):
        model.init_whitening(train_loader.transform(train_loader.x[:WHITENING_IMAGES], train=False))
    if recipe.compile:  # static shapes: training, evaluation and TTA batches each get their own graph
        model.compile(dynamic=False)
    optimizer = recipe.build_optimizer(model)
    scheduler = recipe.build_scheduler(optimizer, len(train_loader))
    cbs = list(callbacks)
    if recipe.lookahead:
        cbs.append(Lookahead(recipe.epochs * len(train_loader)))
    if recipe.image_sizes:
        cbs.append(ProgressiveResize(recipe.image_sizes))
    resume = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        cbs.append(Checkpoint(checkpoint))
        resume = checkpoint if checkpoint.exists() else None
    trainer = Trainer(recipe.epochs, device=device, precision=precision, channels_last=channels_last, callbacks=cbs,
                      progress=progress, log=log, scheduler_interval="step", micro_batch=recipe.micro_batch)
    timer = Timer()
    with timer:
        history = trainer.fit(model, train_loader, val_loader, optimizer=optimizer,
                              loss_fn=recipe.loss_fn(), scheduler=scheduler, resume_from=resume)
        test = evaluate(model, test_loader, precision=trainer.precision, per_image=per_image)
        test_tta = (evaluate(model, test_loader, precision=trainer.precision, tta_flip=recipe.tta_flip,
                             tta_shift=recipe.tta_shift, per_image=per_image) if recipe.tta else None)
    train_seconds = float(sum(history["seconds"])) if len(history) else 0.0
    images = len(train_loader) * recipe.batch_size * len(history)
    reached = TimeToAccuracy.from_history(history, targets).reached
    return RecipeResult(recipe, model, history, test, test_tta, timer.sum(), train_seconds,
                        images / train_seconds if train_seconds else 0.0, reached)
