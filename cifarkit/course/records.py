"""Recorded runs that notebooks quote as reference figures (never as their own measurements),
shipped inside the package so that a notebook reads them wherever the kit is installed.

``records/speedruns.json`` holds the complete full-data speedruns of ``bench/accuracy.py``, which
writes it (`write_speedrun_records`) each time it records a run in ``bench/accuracy_results.json``;
notebook 07 reads it with `speedrun_records`.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..files import atomic_write_text

__all__ = ["SPEEDRUN_FIELDS", "speedrun_records", "select_speedruns", "write_speedrun_records"]

#: what notebook 07 shows of each recorded speedrun
#: (no dates: when each run was made is in bench/accuracy_results.json and bench/results.md)
SPEEDRUN_FIELDS = ("key", "recipe", "epochs", "train_minutes", "test_acc_tta", "exact_first_1000_acc",
                   "hardware", "data", "val_acc_per_epoch")
SPEEDRUNS_FILE = "speedruns.json"


def select_speedruns(results: dict) -> list[dict]:
    """The runs of ``bench/accuracy_results.json`` (`results`: key -> entry) that notebook 07 quotes:
    complete speedrun and airbench94-muon runs trained on all 50,000 images and scored on all 10,000
    test images, each cut to `SPEEDRUN_FIELDS`, in key order."""
    chosen = [e for _, e in sorted(results.items())
              if (str(e.get("recipe", "")).startswith("speedrun") or e.get("recipe") == "airbench94-muon")
              and e.get("complete") and e.get("n_train") == 50000 and e.get("n_test") == 10000]
    return [{f: e[f] for f in SPEEDRUN_FIELDS if f in e} for e in chosen]


def write_speedrun_records(results: dict, folder=None) -> Path:
    """Write `select_speedruns` of `results` to ``records/speedruns.json`` in this package (or in
    `folder`); returns the path. ``bench/accuracy.py`` calls it."""
    path = Path(folder or Path(__file__).parent / "records") / SPEEDRUNS_FILE
    return atomic_write_text(path, json.dumps(select_speedruns(results), indent=1, sort_keys=True) + "\n")


def speedrun_records() -> list[dict]:
    """The recorded speedruns (see `select_speedruns`), read from the copy shipped in the package.
    Notebook 07 introduces them."""
    text = resources.files(__package__).joinpath("records", SPEEDRUNS_FILE).read_text()
    return json.loads(text)
