"""`CifarData`: one train/test split pair held as tensors, plus the CIFAR-10 constants.

Every data source in the kit (the real CIFAR-10 release, an unverified copy of it, the synthetic
stand-in) comes back as a `CifarData`, so notebooks never need to know which one they got. The
`label` says it plainly, and plots and result files carry it, so a synthetic run can never be
passed off as CIFAR-10.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .validation import integer, non_negative_int

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
# Per-channel statistics of the CIFAR-10 training split, on the 0..1 scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MAX_SEED = 2**63 - 2  # the largest seed `subset` takes (torch generators; the test split uses seed + 1)


@dataclass
class CifarData:
    """Images as uint8 tensors `N x 3 x 32 x 32`, labels as int64 tensors `N`.

    `source` is one of "cifar10" (checksums verified), "cifar10-unverified" or "synthetic".
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple
    source: str
    note: str = ""

    @property
    def synthetic(self) -> bool:
        """Whether this is the generated stand-in rather than CIFAR-10."""
        return self.source == "synthetic"

    @property
    def label(self) -> str:
        """Short human-readable name of the data, used in plot titles and result files."""
        return {
            "cifar10": "CIFAR-10",
            "cifar10-unverified": "CIFAR-10 (checksums not verified)",
            "synthetic": "SYNTHETIC stand-in (not CIFAR-10)",
        }.get(self.source, self.source)

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> "CifarData":
        """A stratified subset: the same number of images from each class (see `stratified_indices`).

        `None`, or a count at least the split's size, keeps the whole split. Counts and the seed must
        be ints >= 0 (not bools): anything else raises TypeError / ValueError naming the argument.
        """
        n_train = non_negative_int("n_train", n_train, optional=True)
        n_test = non_negative_int("n_test", n_test, optional=True)
        seed = integer("seed", seed, lo=0, hi=MAX_SEED)
        xtr, ytr, xte, yte = self.x_train, self.y_train, self.x_test, self.y_test
        if n_train is not None and n_train < len(ytr):
            idx = stratified_indices(ytr, n_train, seed)
            xtr, ytr = xtr[idx], ytr[idx]
        if n_test is not None and n_test < len(yte):
            idx = stratified_indices(yte, n_test, seed + 1)
            xte, yte = xte[idx], yte[idx]
        return CifarData(xtr, ytr, xte, yte, self.classes, self.source, self.note)

    def __repr__(self) -> str:
        return (f"CifarData({self.label}: train {tuple(self.x_train.shape)}, "
                f"test {tuple(self.x_test.shape)}, {len(self.classes)} classes)")


def stratified_indices(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of `n` items drawn without replacement so that every class gets an equal share.

    When `n` is not a multiple of the number of classes, the remainder goes to the first classes.
    A class with too few items contributes all it has and the rest is filled from the others.
    The result is sorted, so the subset keeps the original order. Deterministic for a given seed.
    """
    labels = torch.as_tensor(labels).cpu()
    n = non_negative_int("n", n)
    if n >= len(labels):
        return torch.arange(len(labels))
    gen = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels)
    per_class = [labels.eq(c).nonzero().squeeze(1) for c in classes]
    per_class = [ix[torch.randperm(len(ix), generator=gen)] for ix in per_class]
    quota, extra = divmod(n, len(classes))
    chosen, leftovers = [], []
    for k, ix in enumerate(per_class):
        take = min(quota + (1 if k < extra else 0), len(ix))
        chosen.append(ix[:take])
        leftovers.append(ix[take:])
    picked = torch.cat(chosen)
    missing = n - len(picked)
    if missing > 0:
        rest = torch.cat(leftovers)
        picked = torch.cat([picked, rest[torch.randperm(len(rest), generator=gen)[:missing]]])
    return picked.sort().values
