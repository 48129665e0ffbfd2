"""The course machinery beside the teaching library: profiles and setup, the parameter schema,
claims, results, the runner, its report, slides, book and command line.

It imports the library (`cifarkit.training`, `cifarkit.data`, ...); the library never imports it.
As in `cifarkit`, the names below are imported on first use (the command line needs no torch).
"""
from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import lesson02, lesson03, notebooks, records
    from .notebooks import (ABLATION_BLOCKS, FINETUNE, FINETUNED_CHECKPOINT, PROFILES, artifact, finetune_start,
                            finetuned_resnet18, notebook_profiles, pruned_artifact, setup)

__all__ = ["ABLATION_BLOCKS", "FINETUNE", "FINETUNED_CHECKPOINT", "PROFILES", "artifact", "finetune_start",
           "finetuned_resnet18", "lesson02", "lesson03", "notebook_profiles", "notebooks", "pruned_artifact",
           "records", "setup"]

__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
