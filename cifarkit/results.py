"""Where notebooks put what they produce: metrics for the runner, checkpoints for later notebooks."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch


def results_dir() -> Path:
    """`$CIFARKIT_RESULTS_DIR` (set by `cifarkit run` to the run directory), else `./results`."""
    return Path(os.environ.get("CIFARKIT_RESULTS_DIR") or "results")


def artifacts_dir() -> Path:
    """Checkpoints shared between notebooks: `$CIFARKIT_ARTIFACTS`, else `<results dir>/artifacts`."""
    path = Path(os.environ.get("CIFARKIT_ARTIFACTS") or results_dir() / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def record_results(name: str, metrics: dict, cfg=None, data=None) -> Path:
    """Write `<results dir>/<name>.metrics.json` with `metrics` plus the run's context
    (profile, device, precision, data source), and return its path."""
    from . import devices

    payload = dict(metrics)
    if cfg is not None:
        payload.setdefault("profile", cfg.get("name"))
        payload.setdefault("device", devices.describe(cfg["device"], cfg["precision"]))
        payload.setdefault("precision", cfg.get("precision"))
    if data is not None:
        payload.setdefault("data_source", data.source)
        payload.setdefault("data_label", data.label)
        payload.setdefault("n_train", len(data.y_train))
        payload.setdefault("n_test", len(data.y_test))
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.metrics.json"
    path.write_text(json.dumps(_jsonable(payload), indent=1, sort_keys=True))
    print(f"Recorded {len(metrics)} metrics in {path}")
    return path
