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
* ``speedrun``: `SpeedrunNet` (whitened stem) with Nesterov SGD at batch 1024, a triangular
  schedule, 64x learning rate on biases, lookahead, label smoothing 0.2, reflect-padded
  translate + flip, and flip + translate test-time augmentation.
* ``speedrun-wide``: the same with 1.5x wider stages and 14 epochs (the 60-minute budget).

Both gated recipes start every gate at 1 (``gate_init="open"``); see `GatedBlock`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from .callbacks import Callback, Checkpoint, Lookahead
from .loader import PAD_MODES, TensorLoader
from .timing import Timer
from .training import History, Trainer, evaluate, seed_everything

__all__ = ["Recipe", "RECIPES", "get_recipe", "train_recipe", "RecipeResult", "TimeToAccuracy"]

_MODELS = ("gated", "speedrun")
_OPTIMIZERS = ("adam", "sgd-nesterov")
_SCHEDULES = ("constant", "one-cycle", "triangular")
WHITENING_IMAGES = 5000  # training images that set a whitened stem's filters


@dataclass(frozen=True)
class Recipe:
    """Everything needed to train one model the same way twice.

    Attributes:
        name: the recipe's name.
        model: ``"gated"`` (`GatedCNN`) or ``"speedrun"`` (`SpeedrunNet`).
        model_kwargs: keyword arguments for the model's constructor.
        epochs, batch_size: training length and batch size.
        optimizer: ``"adam"`` or ``"sgd-nesterov"`` (momentum `momentum`).
        lr: the constant learning rate, or the peak of a schedule.
        weight_decay: L2 weight decay of the optimizer (not applied to BN and bias parameters
            when `decay_norm_and_bias` is False).
        bias_lr_scale: the 1-D parameters (biases, BatchNorm shifts) learn this many times faster;
            their weight decay is divided by it, so the decay per step stays the same.
        schedule: ``"constant"``, ``"one-cycle"`` (torch's cosine OneCycleLR) or ``"triangular"``
            (linear from ``lr_start * lr`` up to `lr` over `warmup` of the steps, then linearly
            down to ``lr_end * lr``).
        warmup: share of the steps spent rising to the peak (schedules only).
        augment: random crop (`crop_padding` pixels, `pad_mode` padding) and horizontal flip, plus
            a `cutout` x `cutout` blanked square per image when `cutout` > 0.
        label_smoothing: passed to ``nn.CrossEntropyLoss``.
        tta_flip, tta_shift: test-time augmentation of the final evaluation (see `tta_logits`).
        lookahead: train with the `Lookahead` callback (a slow average of the weights).
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
    model_kwargs: dict = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        for attr, allowed in (("model", _MODELS), ("optimizer", _OPTIMIZERS), ("schedule", _SCHEDULES)):
            if getattr(self, attr) not in allowed:
                raise ValueError(f"{attr} must be one of {allowed}, got {getattr(self, attr)!r}")
        for attr in ("epochs", "batch_size"):
            value = getattr(self, attr)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{attr} must be a positive int, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not 0.0 < self.warmup < 1.0:
            raise ValueError(f"warmup must be in (0, 1), got {self.warmup!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not (self.bias_lr_scale > 0 and math.isfinite(self.bias_lr_scale)):
            raise ValueError(f"bias_lr_scale must be a positive number, got {self.bias_lr_scale!r}")
        for attr in ("lr_start", "lr_end"):
            if not 0.0 <= getattr(self, attr) <= 1.0:
                raise ValueError(f"{attr} must be in [0, 1] (a share of the peak lr), got {getattr(self, attr)!r}")
        for attr in ("crop_padding", "tta_shift", "cutout"):
            value = getattr(self, attr)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{attr} must be a non-negative int, got {value!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_batch_size(self, batch_size: int) -> "Recipe":
        """A copy for another batch size, with the learning rate scaled in proportion (the linear
        scaling rule: the same step per training image), e.g. to run the speedrun on a small subset."""
        return self.replace(batch_size=batch_size, lr=self.lr * batch_size / self.batch_size)

    def build_model(self) -> nn.Module:
        """A freshly initialised model (seed the RNG first for reproducible weights)."""
        from .models import GatedCNN, SpeedrunNet
        cls = GatedCNN if self.model == "gated" else SpeedrunNet
        return cls(**self.model_kwargs)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The recipe's optimizer over the trainable parameters of `model`."""
        params = [p for p in model.parameters() if p.requires_grad]
        if self.decay_norm_and_bias and self.bias_lr_scale == 1.0:
            groups = [{"params": params, "lr": self.lr, "weight_decay": self.weight_decay}]
        else:
            small_decay = self.weight_decay / self.bias_lr_scale if self.decay_norm_and_bias else 0.0
            groups = [{"params": [p for p in params if p.dim() > 1], "lr": self.lr,
                       "weight_decay": self.weight_decay},
                      {"params": [p for p in params if p.dim() <= 1], "lr": self.lr * self.bias_lr_scale,
                       "weight_decay": small_decay}]
        if self.optimizer == "adam":
            return torch.optim.Adam(groups, lr=self.lr)
        return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, nesterov=True)

    def build_scheduler(self, optimizer, steps_per_epoch: int):
        """The learning-rate schedule, stepped once per batch (None for a constant rate)."""
        total = self.epochs * steps_per_epoch
        if self.schedule == "constant":
            return None
        if self.schedule == "one-cycle":
            return torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
                pct_start=self.warmup)
        rise = max(1, round(self.warmup * total))
        start, end = self.lr_start, self.lr_end

        def triangle(step: int) -> float:
            if step < rise:
                return start + (1.0 - start) * step / rise
            return end + (1.0 - end) * max(0.0, (total - step) / max(1, total - rise))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, triangle)

    def loss_fn(self) -> nn.Module:
        """Cross-entropy with the recipe's label smoothing."""
        return nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)

    def train_loader(self, data, device="auto", seed: int = 0) -> TensorLoader:
        """Shuffled training batches of `data` (a `CifarData`), augmented if the recipe says so.

        The last, incomplete batch is dropped (a small last batch adds noise to a tuned schedule)
        unless the split is smaller than one batch.
        """
        return TensorLoader(data.x_train, data.y_train, self.batch_size, shuffle=True,
                            drop_last=len(data.y_train) >= self.batch_size, augment=self.augment,
                            crop_padding=self.crop_padding, pad_mode=self.pad_mode, cutout=self.cutout,
                            device=device, seed=seed, tag=data.label)

    @property
    def tta(self) -> str:
        """The final evaluation's test-time augmentation in words ("" for none)."""
        views = (["flip"] if self.tta_flip else []) + ([f"shift {self.tta_shift}"] if self.tta_shift else [])
        return " + ".join(views)

    def summary(self) -> str:
        """One line: what the recipe does."""
        sched = "constant lr" if self.schedule == "constant" else f"{self.schedule} schedule"
        parts = [f"{self.optimizer} lr {self.lr:g}", f"wd {self.weight_decay:g}", sched,
                 f"batch {self.batch_size}", f"{self.epochs} epochs"]
        if self.bias_lr_scale != 1.0:
            parts.append(f"bias lr x{self.bias_lr_scale:g}")
        if self.augment:
            parts.append("crop+flip" if self.pad_mode == "zeros" else f"{self.pad_mode} crop+flip")
            if self.cutout:
                parts.append(f"cutout {self.cutout}")
        if self.label_smoothing:
            parts.append(f"label smoothing {self.label_smoothing:g}")
        if self.lookahead:
            parts.append("lookahead")
        if self.tta:
            parts.append(f"TTA {self.tta}")
        return f"{self.name}: {self.model} model, " + ", ".join(parts)


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
    Recipe("speedrun", "speedrun", epochs=18, batch_size=1024, optimizer="sgd-nesterov", lr=1.5,
           momentum=0.85, weight_decay=0.0153 / 11.5, bias_lr_scale=64.0, schedule="triangular",
           warmup=0.23, lr_start=0.2, lr_end=0.07, augment=True, crop_padding=2, pad_mode="reflect",
           label_smoothing=0.2, lookahead=True, tta_flip=True, tta_shift=1,
           description="whitened residual net, SGD + lookahead, triangular schedule, flip+shift TTA"),
)}
# the same recipe with 1.5x wider stages (about 2.2x the compute per image), for the 60-minute budget
RECIPES["speedrun-wide"] = RECIPES["speedrun"].replace(
    name="speedrun-wide", epochs=14, model_kwargs={"widths": (96, 384, 384)},
    description="speedrun with 1.5x wider stages, for a 60-minute budget on a 2-core CPU")


def get_recipe(name: str, **changes) -> Recipe:
    """The recipe called `name` from `RECIPES`, with `changes` applied; a clear error otherwise."""
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
                 per_image: bool = False) -> RecipeResult:
    """Train `recipe` on `data` (a `CifarData`) and evaluate it on the test split.

    With `checkpoint` (a path) the whole training state is written there after every epoch, and
    an existing file is resumed from, so an interrupted run loses at most one epoch. The test
    split is evaluated after every epoch (``val_acc`` in the history, no TTA); at the end it is
    evaluated once more, with the recipe's test-time augmentation too when it has one.
    `per_image=True` keeps which test images the final evaluations got right (``"correct"`` in
    ``test`` and ``test_tta``, see `evaluate`), for paired comparisons (`Estimate.paired`)
    without evaluating the model again; the accuracies are the same either way.
    """
    seed_everything(seed)
    model = recipe.build_model()
    train_loader = recipe.train_loader(data, device=device, seed=seed)
    test_loader = TensorLoader(data.x_test, data.y_test, eval_batch_size, device=device, tag=data.label)
    if hasattr(model, "init_whitening"):
        model.init_whitening(train_loader.transform(train_loader.x[:WHITENING_IMAGES], train=False))
    optimizer = recipe.build_optimizer(model)
    scheduler = recipe.build_scheduler(optimizer, len(train_loader))
    cbs = list(callbacks)
    if recipe.lookahead:
        cbs.append(Lookahead(recipe.epochs * len(train_loader)))
    resume = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        cbs.append(Checkpoint(checkpoint))
        resume = checkpoint if checkpoint.exists() else None
    trainer = Trainer(recipe.epochs, device=device, precision=precision, callbacks=cbs,
                      progress=progress, log=log, scheduler_interval="step")
    timer = Timer()
    with timer:
        history = trainer.fit(model, train_loader, test_loader, optimizer=optimizer,
                              loss_fn=recipe.loss_fn(), scheduler=scheduler, resume_from=resume)
        test = evaluate(model, test_loader, precision=trainer.precision, per_image=per_image)
        test_tta = (evaluate(model, test_loader, precision=trainer.precision, tta_flip=recipe.tta_flip,
                             tta_shift=recipe.tta_shift, per_image=per_image) if recipe.tta else None)
    train_seconds = float(sum(history["seconds"])) if len(history) else 0.0
    images = len(train_loader) * recipe.batch_size * len(history)
    reached = TimeToAccuracy.from_history(history, targets).reached
    return RecipeResult(recipe, model, history, test, test_tta, timer.sum(), train_seconds,
                        images / train_seconds if train_seconds else 0.0, reached)
