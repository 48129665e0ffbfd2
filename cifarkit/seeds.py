"""`seed_everything`: one call that seeds every random-number generator a run uses."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from .validation import integer

__all__ = ["seed_everything"]


def seed_everything(seed: int, deterministic: bool = False) -> int:
    """Seed Python, NumPy and torch (CPU and every GPU). With `deterministic=True`, also ask torch
    for deterministic kernels (slower on GPUs; warns instead of failing for ops that have none).
    Returns the seed. Notebook 01 introduces it."""
    seed = integer("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return seed
