"""Feature caching: run a frozen backbone once, then train only the head on stored features.

With a frozen backbone (and no augmentation) every epoch recomputes exactly the same features,
so the expensive part of the network can run once per split:

    backbone, head = split_head(model)                    # e.g. a ResNet-152 and its new fc
    train_feats = extract_features(backbone, train_eval_loader)
    test_feats = extract_features(backbone, test_loader)
    Trainer(5).fit(head, train_feats.loader(128, shuffle=True), test_feats.loader(512))

Training the head this way follows the same curve as training the whole model with the frozen
backbone in the loop (same seeds, same batches), at a fraction of the cost. The catch: random
augmentation is impossible, because each image is seen through the backbone only once.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from . import devices
from .loader import FeatureLoader
from .runtime import eval_mode


@dataclass
class Features:
    """Backbone outputs for one split: `features` (N x D, float32) and `labels` (N)."""

    features: torch.Tensor
    labels: torch.Tensor
    seconds: float = 0.0

    def loader(self, batch_size: int = 256, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
               device="auto", tag: str | None = None) -> FeatureLoader:
        """Batches of these features, shuffled reproducibly from `seed` (like `TensorLoader`)."""
        return FeatureLoader(self.features, self.labels, batch_size, shuffle, drop_last, seed, device, tag)

    def __len__(self) -> int:
        return len(self.labels)


@torch.inference_mode()
def extract_features(backbone: nn.Module, loader, device=None, precision: str = "auto",
                     progress: bool = True, channels_last: bool | None = None) -> Features:
    """Run `backbone` in eval mode over `loader` (which must not augment) and collect its outputs,
    flattened to N x D float32 tensors on the loader's device. `precision` defaults to the
    Trainer's choice ("auto"), so cached features match what the uncached loop computes, and
    `channels_last` follows the Trainer's rule (None: `cifarkit.devices.use_channels_last`).
    Notebook 05 introduces it."""
    if getattr(loader, "augment", False):
        raise ValueError("feature caching needs a loader without augmentation: cached features are "
                         "computed once, so random crops/flips would be frozen into them")
    from time import perf_counter

    from tqdm.auto import tqdm

    device = devices.resolve_device(device if device is not None else getattr(loader, "device", "auto"))
    precision = devices.resolve_precision(precision, device)
    channels_last = devices.use_channels_last(precision, device, backbone, channels_last)
    feats, labels = [], []
    start = perf_counter()
    with eval_mode(backbone):
        backbone.to(device)
        if channels_last:
            backbone.to(memory_format=torch.channels_last)
        for x, y in tqdm(loader, desc="extracting features", disable=not progress, leave=False):
            x = x.to(device)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with devices.autocast(precision, device):
                out = backbone(x)
            feats.append(out.float().flatten(1))
            labels.append(y.to(device))
    return Features(torch.cat(feats), torch.cat(labels), perf_counter() - start)


def split_head(model: nn.Module, head_name: str = "fc") -> tuple[nn.Module, nn.Module]:
    """Split a torchvision-style classifier into (backbone, head) sharing the same modules:
    the backbone is the model with `head_name` replaced by `nn.Identity` in a shallow copy.
    Notebook 05 introduces it."""
    import copy

    head = getattr(model, head_name, None)
    if not isinstance(head, nn.Module):
        raise ValueError(f"model has no submodule {head_name!r} to split off")
    backbone = copy.copy(model)
    backbone._modules = dict(model._modules)
    backbone._modules[head_name] = nn.Identity()
    return backbone, head
