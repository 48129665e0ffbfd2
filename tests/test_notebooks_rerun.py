"""Every training cell builds, or re-seeds and re-creates, what it trains: re-running it gives the
same result as running it once after the cells above it.

Each course notebook runs on a tiny profile (`TINY`: the quick profile with seconds-sized
settings, added to the kernel's `cifarkit.course.PROFILES`; synthetic data, no download) in one
kernel. Its recorded metrics are kept; then, in the same kernel, every cell from the first cell
tagged ``training`` to the end runs again, and the metrics it records must be the same (timings
aside). The tiny profile is not a case the course was sized for, so the claims that differ are
reported, not raised (`cifarkit.claims.Claims.check`), while every invariant is asserted.
"""
from __future__ import annotations

import json
import re

import nbformat
import pytest

import cifarkit
from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TRAINING = "training"
_SMALL = dict(n_train=64, n_test=64, batch_size=32, epochs=1)
_FINETUNE = dict(cifarkit.course.FINETUNE["quick"], n_train=64, epochs=1, batch_size=32)
#: the tiny profile of each notebook: what it changes in the quick profile
TINY = {
    "01_softmax_vs_logits": dict(_SMALL, grad_steps=2),
    "02_freezing": dict(_SMALL, val_images=32, calibration_images=32, mistake_steps=2, timing_rounds=2),
    "03_pruning": dict(_SMALL, finetune=_FINETUNE),
    "04_unpruning": dict(_SMALL, regrow_batches=1, finetune=_FINETUNE),
    "05_resnet152_transfer": dict(n_train=64, n_test=64, resnet_n_train=16, resnet_n_test=16, image_size=32,
                                  batch_size=8, epochs=1, bn_calibration_images=16, head_epochs=2,
                                  ablation_n_train=8, ablation_batch_size=4, ablation_epochs=1,
                                  depth_blocks=(1, 2), depth_widths=(4, 8, 8), depth_epochs=1, depth_batch_size=32),
    "06_gated_cnn": dict(_SMALL, epochs=3, n_train=1024, n_test=256, val_images=64, widths=(8, 16, 32, 32, 32)),
    "07_speedrun": dict(_SMALL, epochs=2, n_train=512, n_test=256, val_images=64, widths=(8, 16, 16)),
}
#: metrics (flattened names) and claims that measure time, which no two runs share
TIMED = re.compile(r"second|minute|per_s|time|speed|faster")


def tiny_profile_cell(stem: str) -> str:
    """The cell run after the parameters cell: the tiny profile, chosen, on synthetic data."""
    return (f"import cifarkit as ck\n"
            f"ck.course.PROFILES[{stem!r}]['tiny'] = {{**ck.course.PROFILES[{stem!r}]['quick'], **{TINY[stem]!r}}}\n"
            "profile, data_source = 'tiny', 'synthetic'")


def comparable(metrics: dict) -> dict:
    """The recorded metrics and claims that must not change when the training cells run again."""
    def flat(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}
    skip = ("claims", "course_case", "device")  # the claims are compared below, timed ones left out
    out = {k: v for k, v in flat({k: v for k, v in metrics.items() if k not in skip}).items()
           if not TIMED.search(k)}
    out.update({f"claim {c['name']}": (c["verdict"], c["evidence"]) for c in metrics.get("claims", [])
                if not TIMED.search(c["name"] + c["statement"])})
    return out


def test_every_notebook_has_a_tiny_profile_and_tagged_training_cells():
    assert set(TINY) == {p.stem for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        quick = cifarkit.notebook_profiles(path.stem)["quick"]
        assert set(TINY[path.stem]) <= set(quick), f"{path.stem}: the tiny profile sets what quick does not"
        nb = nbformat.read(path, as_version=4)
        assert any(TRAINING in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_rerunning_the_training_cells_gives_the_same_metrics(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("CIFARKIT_OFFLINE", "1")  # no ImageNet weights: random init, and no network
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "artifacts"))
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    cells.insert(1, nbformat.v4.new_code_cell(tiny_profile_cell(path.stem)))
    nb.cells = cells
    first = next(i for i, c in enumerate(cells) if TRAINING in c.metadata.get("tags", []))
    metrics_file = tmp_path / "results" / f"{path.stem}.metrics.json"
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for index, cell in enumerate(cells):
            client.execute_cell(cell, index)
        once = json.loads(metrics_file.read_text())
        metrics_file.unlink()
        for index in range(first, len(cells)):  # the training cells again, and what reads them
            client.execute_cell(cells[index], index)
        again = json.loads(metrics_file.read_text())
    assert once["course_case"]["sized"] is False and "tiny profile" in once["course_case"]["case"]
    before, after = comparable(once), comparable(again)
    assert before.keys() == after.keys()
    changed = {k: (before[k], after[k]) for k in before if not _same(before[k], after[k])}
    assert not changed, f"{path.stem}: running the training cells again changed {changed}"


def _same(a, b) -> bool:
    """Equal, floats (also inside lists) within a relative 1e-5."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-5, abs=1e-7)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
