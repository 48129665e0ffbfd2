"""The course machinery beside the teaching library: profiles and setup, the parameter schema,
claims, results, the runner, its report, slides, book and command line.

It imports the library (`cifarkit.training`, `cifarkit.data`, ...); the library never imports it.
"""
from . import lesson02, lesson03, notebooks, records
from .notebooks import (ABLATION_BLOCKS, FINETUNE, FINETUNED_CHECKPOINT, PROFILES, artifact, finetuned_resnet18,
                        notebook_profiles, pruned_artifact, setup)
