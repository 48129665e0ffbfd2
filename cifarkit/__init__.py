"""cifarkit: a CIFAR-10 course kit. Everything a notebook needs, by the name students know it:

data      load_data, load_cifar10, synthetic_cifar, TensorLoader, CifarData, textbook_loader
training  Trainer (.fit), evaluate, Tester, History, seed_everything, Checkpoint, Callback
plots     Animator, show_figure;  timing: Timer
models    ResNetForCifar, GatedCNN, GatedBlock, resnet152_transfer, remove_skip_connections, SmallResNet
freezing  freeze_initial, unfreeze_all, count_parameters
pruning   global_magnitude_prune, remove_pruning, sparsity, prunable_parameters, SparsityTracker
features  extract_features (frozen-backbone feature caching)
notebooks resolve_profile, record_results, artifacts_dir
"""
from .callbacks import Callback, Checkpoint
from .data import (CorruptDataError, DataUnavailableError, load_cifar10, load_data, textbook_loader,
                   torchvision_dataset)
from .dataset import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, CifarData, stratified_indices
from .devices import resolve_device, resolve_precision
from .loader import TensorLoader
from .plotting import Animator, show_figure
from .profiles import resolve_profile
from .results import artifacts_dir, record_results
from .timing import Timer
from .training import History, NonFiniteLossError, Tester, Trainer, evaluate, seed_everything

__version__ = "0.1.0"
