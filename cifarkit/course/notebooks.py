"""What the course's notebooks share, each defined once: their profiles, the files they hand on to
each other, and notebook 01's fine-tuned model.

A notebook's setup cell is one call::

    cfg = ck.setup("03_pruning", profile, epochs=epochs, seed=seed, data=data_source)

`setup` prints both of the notebook's profiles (`PROFILES` below, each size next to its reason),
resolves the chosen one with `resolve_profile` (parameters override it; the seed, device and
precision are resolved) and remembers which notebook is running, so that
``ck.record_results(metrics, cfg)`` writes ``<notebook>.metrics.json`` (the file the runner reads)
and ``artifact(cfg, FINETUNED_CHECKPOINT)`` names a checkpoint the same way in every notebook.

Notebook 01 fine-tunes the ResNet-18 that notebooks 03 and 04 prune: its recipe is `FINETUNE`, and
`finetuned_resnet18` loads 01's checkpoint or, when 01 has not run with this results folder,
fine-tunes one with that recipe. Benchmarks (``bench/memory.py``) read `PROFILES` too, so a number
changed here changes everywhere. Adding a notebook: ``docs/adding-a-notebook.md``.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from .profiles import Profile, resolve_profile
from .results import artifacts_dir

#: notebook 01's fine-tuning recipe for the ResNet-18 with the 512-100-10 head (Adam), which notebooks
#: 03 and 04 reuse when 01's checkpoint is missing (n_train=None: every training image).
#: quick: 1,024 images left the CIFAR-10 gap of notebook 01 inside the noise; 3,072 at batch 64 do not
#: (batch 128, or a learning rate decayed to zero, narrowed it to the noise on some seeds).
#: full: the course run from ImageNet weights, like the original experiment (weights="imagenet" stops
#: with instructions when they cannot be had).
FINETUNE = {
    "quick": dict(n_train=3072, epochs=3, batch_size=64, lr=1e-3, augment=False, weights="auto"),
    "full": dict(n_train=None, epochs=15, batch_size=128, lr=1e-3, augment=True, weights="imagenet"),
}

#: the five ResNet-152 blocks whose skip connections notebook 05 removes (one per stage and two more
#: in the long third stage); ``bench/memory.py`` trains the same ablation
ABLATION_BLOCKS = ("layer1.2", "layer2.5", "layer3.10", "layer3.20", "layer3.30")

#: the checkpoint of notebook 01's logits model, which notebooks 03 and 04 prune
FINETUNED_CHECKPOINT = "resnet18_logits"

#: the seeds on which the lessons sweep (bench/lessons.py) found every claim of the current quick
#: profiles at its expected verdict on both data sources: with these, a profile's own settings and a
#: data source of `SIZED_DATA`, a run is a case the course was sized for (`RunCase.sized`), where its
#: notebooks assert their expected verdicts; under other settings they report the claims that
#: differ (bench/results.md, section 6)
SIZED_SEEDS = (0, 1, 2, 3, 4)
#: the data sources of the lessons sweep, and real CIFAR-10, which the copy stands in for
SIZED_DATA = ("synthetic", "cifar10-unverified", "cifar10")

# Every quick profile was sized with bench/lessons.py so that each claim its notebook states holds
# for seeds 0 to 4 on both the synthetic set and the CIFAR-10 copy; the comments say what a
# smaller size did. Every full profile is the course run on all of CIFAR-10 (n_train=None).
PROFILES: dict[str, dict[str, dict]] = {
    "01_softmax_vs_logits": {
        # scales: the logit scales of the saturation demo; grad_steps: steps of the gradient check
        # quick: scale 10 only beside scale 1 (it fitted best in every run of the lessons sweep; the
        # full profile adds 100)
        "quick": dict(FINETUNE["quick"], n_test=2000, stem="imagenet", scales=(1.0, 10.0), grad_steps=5),
        "full": dict(FINETUNE["full"], n_test=None, stem="imagenet", scales=(1.0, 10.0, 100.0), grad_steps=5),
    },
    "02_freezing": {
        # with 1,024 training and 1,000 test images the CIFAR-10 gap between 0% and 30% frozen was
        # inside the noise for some seeds; at batch 128 (48 steps) it was too, on one seed (4) of five,
        # even on 5,000 test images paired (+1.3 [-0.3, 3.0] points): the model with nothing frozen had
        # too few steps to pull ahead, so batch 64. val_images: the per-epoch curve on a class-balanced
        # sample, the verdicts on all n_test images after the last epoch (paired). full: Adam at 1e-3
        # as in notebook 01, so that the frozen fraction is the only thing that changes
        # quick: 0%, 10% and 30% (its claims compare 0% with 30%, and 10% with 0% under ImageNet weights)
        "quick": dict(n_train=2048, n_test=5000, val_images=500, epochs=3, batch_size=64, lr=1e-3,
                      augment=False, weights="auto", fractions=(0.0, 0.1, 0.3), calibration_images=512,
                      mistake_steps=3, timing_rounds=10),
        "full": dict(n_train=None, n_test=None, val_images=None, epochs=10, batch_size=128, lr=1e-3, augment=True,
                     weights="imagenet", fractions=(0.0, 0.1, 0.2, 0.3), calibration_images=2048,
                     mistake_steps=3, timing_rounds=20),
    },
    "03_pruning": {
        # epochs, lr: retraining with the masks held (Adam; the fine-tuned model at a tenth of the
        # fine-tuning rate, model (b) at the fine-tuning rate itself: it has everything still to learn).
        # margin: how much accuracy a prune may cost and still count as free (see the verdicts).
        # finetune: notebook 01's recipe, used only when its checkpoint is missing.
        # retrain_random_b: retrain model (b) also when it has random weights (pruning at initialisation);
        # with ImageNet weights it is always retrained
        "quick": dict(n_train=1024, n_test=1000, batch_size=64, epochs=2, lr=1e-4, lr_b=1e-3, margin=0.02,
                      retrain_random_b=False, finetune=FINETUNE["quick"]),
        "full": dict(n_train=None, n_test=None, batch_size=128, epochs=5, lr=1e-4, lr_b=1e-3, margin=0.02,
                     retrain_random_b=True, finetune=FINETUNE["full"]),
    },
    "04_unpruning": {
        # epochs, lr, weight_decay: the two retraining runs (Adam); sgd_lr, regrow_batches: the short
        # optimizer comparison at the end. finetune: notebook 01's recipe, used only when neither
        # notebook 03's nor notebook 01's model is there
        "quick": dict(n_train=1024, n_test=1000, batch_size=64, epochs=2, lr=1e-3, weight_decay=5e-4,
                      sgd_lr=0.01, regrow_batches=4, amounts=(0.1, 0.2, 0.3), finetune=FINETUNE["quick"]),
        "full": dict(n_train=None, n_test=None, batch_size=128, epochs=5, lr=1e-3, weight_decay=5e-4,
                     sgd_lr=0.01, regrow_batches=50, amounts=(0.1, 0.2, 0.3), finetune=FINETUNE["full"]),
    },
    "05_resnet152_transfer": {
        # resnet_*: the ResNet-152 sections use a subset; head_epochs: section 4's heads on the
        # cached features; ablation_*: the skip-connection ablation; depth_*: the depth table
        "quick": dict(n_train=500, n_test=500, resnet_n_train=300, resnet_n_test=200,
                      image_size=48, batch_size=50, epochs=3, lr=1e-3, bn_calibration_images=100,
                      head_epochs=20,
                      ablation_n_train=48, ablation_batch_size=16, ablation_epochs=3, ablation_lr=1e-4,
                      depth_blocks=(1, 5), depth_widths=(8, 16, 32), depth_epochs=8, depth_batch_size=32,
                      depth_lr=2e-3),
        "full": dict(n_train=None, n_test=None, resnet_n_train=None, resnet_n_test=None,
                     image_size=224, batch_size=64, epochs=5, lr=1e-3, bn_calibration_images=2000,
                     head_epochs=20,
                     ablation_n_train=None, ablation_batch_size=64, ablation_epochs=5, ablation_lr=1e-4,
                     depth_blocks=(3, 9), depth_widths=(16, 32, 64), depth_epochs=30, depth_batch_size=128,
                     depth_lr=1e-3),
    },
    "06_gated_cnn": {
        # quick: few images, many passes (where memorising shows); with 2,000 images and 5 epochs the
        # original recipe ended ahead. 2,000 test images narrow the interval of the difference.
        # float32: for a network this narrow bfloat16 autocast gains nothing on a CPU (bench/results.md).
        "quick": dict(epochs=16, n_train=1000, n_test=2000, val_images=500, batch_size=64, widths=(8, 16, 32, 64, 64),
                      precision="32"),
        "full": dict(epochs=30, n_train=None, n_test=None, val_images=None, batch_size=128,
                     widths=(64, 128, 256, 512, 512), precision="auto"),
    },
    "07_speedrun": {
        # quick: a narrow copy on 2,000 images; 5,000 test images for the final evaluations because
        # test-time augmentation changes few answers, 2,000 of them after each epoch (val_images)
        "quick": dict(epochs=8, n_train=2000, n_test=5000, val_images=2000, batch_size=128, widths=(32, 64, 64)),
        # full: the recipe `speedrun` as bench/accuracy.py trains it
        "full": dict(epochs=8, n_train=None, n_test=None, val_images=None, batch_size=500, widths=(64, 256, 256)),
    },
}


def notebook_profiles(notebook: str) -> dict[str, dict]:
    """The profiles of `notebook` (its file stem, e.g. ``"03_pruning"``): ``{"quick": ..., "full": ...}``."""
    if notebook not in PROFILES:
        raise ValueError(f"unknown notebook {notebook!r}: the course defines profiles for {', '.join(PROFILES)} "
                         "(cifarkit/course/notebooks.py; docs/adding-a-notebook.md says how to add one)")
    return PROFILES[notebook]


def setup(notebook: str, profile: str, verbose: bool = True, **overrides) -> Profile:
    """Resolve `profile` of `notebook` (see `resolve_profile`; `overrides` are the notebook's
    parameters, None meaning "the profile's choice"), print the other profile for comparison, and
    return the settings with ``cfg.notebook`` set, which `record_results` and `artifact` use, and
    ``cfg.changed``, the settings the parameters changed (`changed_settings`), which `run_case`
    names in the case and which make it a case the course was not sized for.
    Notebook 01 introduces it."""
    profiles = notebook_profiles(notebook)
    cfg = resolve_profile(profile, copy.deepcopy(profiles), verbose=verbose, **overrides)  # nothing shared
    cfg["notebook"] = notebook
    cfg["changed"] = changed_settings(profiles[cfg.name], cfg, overrides)
    if verbose:
        for name, settings in profiles.items():
            if name != cfg.name:
                print(f"(profile {name!r}: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")")
        if cfg["changed"]:
            print(f"Changed from the {cfg.name} profile: " + ", ".join(
                f"{k}={v} (the profile has {d})" for k, (v, d) in cfg["changed"].items())
                + ". The course's expected verdicts are asserted only with the profile's own settings; "
                "the invariants cell reports the claims that come out differently.")
    return cfg


def _plain(value):
    """`value` with its tuples made lists (a parameter arrives as a list, a profile holds a tuple)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def changed_settings(profile: dict, cfg: dict, overrides: dict) -> dict[str, tuple]:
    """``{name: (value, the profile's value)}`` for each of the `overrides` (a notebook's
    parameters, None meaning "the profile's choice") that sets a setting of `profile` to another
    value in the resolved `cfg`: what `RunCase` names as changed."""
    return {key: (cfg[key], profile[key]) for key, value in overrides.items()
            if value is not None and key in profile and _plain(cfg[key]) != _plain(profile[key])}


def artifact(cfg, name: str) -> Path:
    """The checkpoint `name` of this profile in the shared artifacts folder,
    ``<artifacts>/<name>_<profile>.pt``: what one notebook saves and a later one loads.
    Notebook 01 introduces it."""
    return artifacts_dir() / f"{name}_{cfg['name']}.pt"


def pruned_artifact(cfg, amount: float) -> Path:
    """Notebook 03's pruned, mask-held, retrained model at `amount` (a fraction), for notebook 04.
    Notebook 03 introduces it."""
    return artifact(cfg, f"resnet18_pruned{round(100 * amount)}")


def finetune_start(cfg) -> str:
    """Where notebook 01's recipe (``cfg["finetune"]``, `FINETUNE`) starts on this machine, in a
    case's words: "ImageNet weights" when its ``weights`` resolve to them here, else "random init".
    Notebook 04 names the start of the 01 -> 03 -> 04 chain with it in its case."""
    from ..weights import WeightsUnavailableError, imagenet_state_dict

    if cfg["finetune"]["weights"] in ("imagenet", "auto"):
        try:
            imagenet_state_dict("resnet18")
            return "ImageNet weights"
        except WeightsUnavailableError:  # "auto" falls back to random weights, as in notebook 01
            pass
    return "random init"


def finetuned_resnet18(cfg, data, test_loader, title: str = "fine-tuning"):
    """Notebook 01's fine-tuned `ResNetForCifar` and where it came from: ``(model, "notebook 01")``
    when 01's checkpoint is in the artifacts folder, else ``(model, "fine-tuned here")``, trained
    here with notebook 01's recipe ``cfg.finetune`` (`FINETUNE`), with live curves titled `title`.
    Notebook 03 introduces it."""
    from ..loader import TensorLoader
    from ..models import ResNetForCifar
    from ..plotting import Animator
    from ..training import Trainer

    checkpoint = artifact(cfg, FINETUNED_CHECKPOINT)
    if checkpoint.is_file():
        print(f"Loaded the model notebook 01 fine-tuned, from {checkpoint}")
        return ResNetForCifar(weights=checkpoint, stem="auto"), "notebook 01"  # the stem 01 used
    recipe = cfg["finetune"]
    print(f"{checkpoint} is missing (notebook 01 has not run with this results folder), so a model is "
          f"fine-tuned here first with notebook 01's recipe: {recipe}")
    model = ResNetForCifar(weights=recipe["weights"])
    loader = TensorLoader(data.x_train, data.y_train, recipe["batch_size"], shuffle=True, augment=recipe["augment"],
                          drop_last=True, device=cfg["device"], seed=cfg["seed"], n=recipe["n_train"],
                          tag=data.label)
    Trainer(recipe["epochs"], device=cfg["device"], precision=cfg["precision"],
            callbacks=[Animator(title=f"{title}: {data.label}")]
            ).fit(model, loader, test_loader, optimizer=torch.optim.Adam(model.parameters(), lr=recipe["lr"]))
    return model, "fine-tuned here"
