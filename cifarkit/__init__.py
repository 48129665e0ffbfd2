"""cifarkit: a CIFAR-10 course kit. Everything a notebook needs, by the name students know it.

Two layers. The teaching library is the modules at the top of the package:

data      load_data, load_cifar10, synthetic_cifar, TensorLoader, CifarData, textbook_loader
training  Trainer (.fit), evaluate, tta_logits, History, seed_everything, trainable_parameters
callbacks Callback, StopAfter, ProgressBar, EpochLog; resume: Checkpoint (what a checkpoint holds)
plots     Animator, show_figure;  timing: Timer
models    ResNetForCifar, GatedCNN, GatedBlock, SpeedrunNet, SmallResNet, resnet152_transfer,
          remove_skip_connections
recipes   get_recipe, train_recipe, Recipe;  optim: MuonSGD, Lookahead
freezing  freeze_initial, unfreeze_all, count_parameters;  features: extract_features, split_head
pruning   global_magnitude_prune, remove_pruning, sparsity, prunable_parameters, SparsityTracker

The course machinery beside it is `cifarkit.course` (it imports the library, never the reverse):
setup (a course notebook's profile), artifact, finetuned_resnet18, Claims, Estimate, run_case
(a lesson's verdicts from its own numbers), record_results, and the runner behind `cifarkit run`.

Every name below is imported on first use (``ck.Trainer`` imports `cifarkit.training`), so that
``import cifarkit`` stays light for the command line, the runner and Dask workers, which need no
torch. The import statements under ``TYPE_CHECKING`` are the one list: editors and type checkers
read them ("go to definition" lands in the module), and `__getattr__` reads the same statements.
"""
from typing import TYPE_CHECKING

from . import settings as _settings
from ._lazy import lazy_exports

_settings.apply_cpu_mode()  # CIFARKIT_CPU=avx2: torch's kernels limited to AVX2 (before its first operation)

if TYPE_CHECKING:
    from .callbacks import Callback, EpochLog, ProgressBar, StopAfter
    from .data import (CorruptDataError, DataUnavailableError, load_cifar10, load_data, prepare_cifar10,
                       textbook_loader, torchvision_dataset)
    from .dataset import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, CifarData, stratified_indices
    from .devices import resolve_device, resolve_precision
    from .features import extract_features, split_head
    from .files import atomic_save, safe_load
    from .freezing import count_parameters, freeze_initial, set_frozen_bn_eval, unfreeze, unfreeze_all
    from .gradients import GradientNormRecorder, gradient_norms
    from .history_files import history_from_json, history_to_csv, history_to_json
    from .loader import FeatureLoader, ProgressiveResize, TensorLoader
    from .models import (GatedBlock, GatedCNN, ResNetForCifar, SmallResNet, SpeedrunNet,
                         remove_skip_connections, resnet152_transfer)
    from .optim import Lookahead, MuonSGD
    from .plotting import Animator, show_figure
    from .pruning import (SparsityTracker, global_magnitude_prune, is_pruned, load_pruned_state_dict,
                          prunable_parameters, remove_pruning, sparsity, unseen_weights)
    from .recipes import (RECIPES, Recipe, TimeToAccuracy, get_recipe, register_model, register_recipe,
                          train_recipe)
    from .resume import Checkpoint
    from .runtime import eval_mode, in_kernel
    from .synthetic import synthetic_cifar
    from .timing import Timer
    from .seeds import seed_everything
    from .training import (History, NonFiniteLossError, Trainer, evaluate,
                           trainable_parameters, tta_logits)

    from . import course  # the machinery, after the library it imports
    from .course import claims  # ck.claims.HOLDS, ...
    from .course.claims import Claim, Claims, Estimate, RunCase, run_case
    from .course.notebooks import artifact, finetuned_resnet18, notebook_profiles, setup
    from .course.profiles import Profile, resolve_profile
    from .course.results import artifacts_dir, record_results

__version__ = "0.1.0"

__all__ = [
    "Animator", "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "Callback", "Checkpoint", "CifarData", "Claim",
    "Claims", "CorruptDataError", "DataUnavailableError", "EpochLog", "Estimate", "FeatureLoader", "GatedBlock",
    "GatedCNN", "GradientNormRecorder", "History", "Lookahead", "MuonSGD", "NonFiniteLossError", "Profile",
    "ProgressBar", "ProgressiveResize", "RECIPES", "Recipe", "ResNetForCifar", "RunCase", "SmallResNet",
    "SparsityTracker", "SpeedrunNet", "StopAfter", "TensorLoader", "TimeToAccuracy", "Timer", "Trainer",
    "artifact", "artifacts_dir", "atomic_save", "count_parameters", "eval_mode", "evaluate", "extract_features",
    "finetuned_resnet18", "freeze_initial", "global_magnitude_prune", "gradient_norms", "history_from_json",
    "history_to_csv", "history_to_json", "in_kernel", "is_pruned",
    "load_cifar10", "load_data", "load_pruned_state_dict", "notebook_profiles", "prepare_cifar10",
    "prunable_parameters", "record_results", "register_model", "register_recipe", "remove_pruning",
    "remove_skip_connections", "resnet152_transfer", "resolve_device", "resolve_precision", "resolve_profile",
    "run_case", "safe_load", "seed_everything", "set_frozen_bn_eval", "setup", "show_figure", "sparsity",
    "split_head", "stratified_indices", "synthetic_cifar", "textbook_loader", "torchvision_dataset",
    "train_recipe", "trainable_parameters", "tta_logits", "unfreeze", "unfreeze_all", "unseen_weights",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
