"""cifarkit: a CIFAR-10 course kit. Everything a notebook needs, by the name students know it:

data      load_data, load_cifar10, synthetic_cifar, TensorLoader, CifarData, textbook_loader
training  Trainer (.fit), evaluate, tta_logits, Tester, History, seed_everything;
callbacks Callback, Checkpoint, Lookahead, StopAfter, ProgressBar, EpochLog (resume: what a
          checkpoint holds); files: safe_load, atomic_save; runtime: eval_mode, in_kernel
plots     Animator, show_figure;  timing: Timer
models    ResNetForCifar, GatedCNN, GatedBlock, SpeedrunNet, resnet152_transfer, remove_skip_connections,
          SmallResNet
recipes   get_recipe, train_recipe, Recipe (named recipes shared by notebooks and bench/accuracy.py)
freezing  freeze_initial, unfreeze_all, count_parameters
pruning   global_magnitude_prune, remove_pruning, sparsity, prunable_parameters, SparsityTracker
features  extract_features, split_head (frozen-backbone feature caching)
claims    Claims, Estimate, run_case (a lesson's verdicts from its own numbers)
notebooks setup (a course notebook's profile), artifact, finetuned_resnet18, notebook_profiles (course);
          resolve_profile (any profiles), record_results, artifacts_dir

Names are imported on first use, so `python -m cifarkit run` starts without loading torch.
"""
import importlib

from . import settings as _settings

__version__ = "0.1.0"
_settings.apply_cpu_mode()  # CIFARKIT_CPU=avx2: torch's kernels limited to AVX2 (before its first operation)

_EXPORTS = {
    "callbacks": ["Callback", "Checkpoint", "EpochLog", "Lookahead", "ProgressBar", "StopAfter"],
    "course.claims": ["Claim", "Claims", "Estimate", "RunCase", "run_case"],
    "course.notebooks": ["setup", "artifact", "finetuned_resnet18", "notebook_profiles"],
    "data": ["CorruptDataError", "DataUnavailableError", "load_cifar10", "load_data", "prepare_cifar10",
             "textbook_loader", "torchvision_dataset"],
    "dataset": ["CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "CifarData", "stratified_indices"],
    "devices": ["resolve_device", "resolve_precision"],
    "features": ["extract_features", "split_head"],
    "files": ["atomic_save", "safe_load"],
    "freezing": ["count_parameters", "freeze_initial", "unfreeze_all", "unfreeze", "trainable_parameters",
                 "set_frozen_bn_eval"],
    "gradients": ["gradient_norms", "GradientNormRecorder"],
    "loader": ["FeatureLoader", "TensorLoader"],
    "models": ["ResNetForCifar", "GatedBlock", "GatedCNN", "SmallResNet", "SpeedrunNet",
               "resnet152_transfer", "remove_skip_connections"],
    "plotting": ["Animator", "show_figure"],
    "course.profiles": ["Profile", "resolve_profile"],
    "pruning": ["global_magnitude_prune", "is_pruned", "load_pruned_state_dict", "prunable_parameters",
                "remove_pruning", "sparsity", "SparsityTracker", "unseen_weights"],
    "recipes": ["Recipe", "RECIPES", "get_recipe", "register_recipe", "register_model", "train_recipe",
                "TimeToAccuracy"],
    "optim": ["MuonSGD"],
    "resume": [],
    "runtime": ["eval_mode", "in_kernel"],
    "settings": [],
    "course.results": ["artifacts_dir", "record_results"],
    "synthetic": ["synthetic_cifar"],
    "timing": ["Timer"],
    "training": ["History", "NonFiniteLossError", "Tester", "Trainer", "evaluate", "seed_everything",
                 "tta_logits"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _EXPORTS or name == "course":  # submodules: ck.pruning, ck.models, ck.course ...
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cifarkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_EXPORTS))
