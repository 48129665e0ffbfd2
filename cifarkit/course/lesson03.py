"""Notebook 03's own measure (03_pruning): how many of the weights a pruning removes never saw the
image anyway (`unseen_share`). Pruning itself is `cifarkit.pruning`.
"""
from __future__ import annotations

import torch.nn as nn

__all__ = ["unseen_share"]


def unseen_share(model: nn.Module, unseen_masks: dict) -> float:
    """Of the weights the pruning masks of `model` remove, the share that never see the image:
    `unseen_masks` is ``cifarkit.pruning.unseen_weights(model)["masks"]`` (layer name -> bool
    tensor, True where a weight only multiplies zero padding), for layers `model` has pruned."""
    layers = dict(model.named_modules())
    removed = {name: layers[name].weight_mask == 0 for name in unseen_masks}
    total = sum(int(m.sum()) for m in removed.values())
    if total == 0:
        raise ValueError("unseen_share(): the masks of these layers remove no weight")
    return sum(int((removed[name].cpu() & unseen_masks[name]).sum()) for name in removed) / total
