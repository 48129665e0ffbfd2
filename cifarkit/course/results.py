"""Where notebooks put what they produce: metrics for the runner, checkpoints for later notebooks."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from . import settings
from ..files import atomic_write_text
from .summary import check_claims

#: What `record_results` accepts as a name: a plain file stem, no folders, no "..".
_STEM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def results_dir() -> Path:
    """`$CIFARKIT_RESULTS_DIR` (set by `cifarkit run` to the run directory), else `./results`."""
    return settings.results_dir()


def artifacts_dir() -> Path:
    """Checkpoints shared between notebooks: `$CIFARKIT_ARTIFACTS`, else `<results dir>/artifacts`."""
    path = settings.artifacts_dir() or results_dir() / "artifacts"
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


def _check_name(name) -> str:
    if not isinstance(name, str) or not _STEM.fullmatch(name) or ".." in name:
        raise ValueError(f"record_results: name {name!r} is not a plain file stem (letters, digits, "
                         "'_', '-' and '.'; no folders, no '..'), e.g. '03_pruning'")
    return name


def record_results(name, metrics=None, cfg=None, data=None, claims=None) -> Path:
    """Write `<results dir>/<name>.metrics.json` with `metrics` plus the run's context
    (profile, device, precision, data source, torch version), and return its path.

    In a course notebook the name comes from its settings: ``record_results(metrics, cfg, data=...,
    claims=...)`` with the `cfg` of `ck.setup`, which knows the notebook (``cfg.notebook``; under
    `cifarkit run`, the file stem the runner executes, ``$CIFARKIT_NOTEBOOK``, so a renamed copy
    still writes the file the runner reads).
    Elsewhere name the file: ``record_results("03_pruning", metrics, cfg, ...)``; the name must be a
    plain file stem (ValueError otherwise: nothing is written outside the results folder).
    `claims` is the notebook's lesson as verdicts: a list of dicts (or objects with ``to_dict()``)
    with ``name``, ``statement``, ``verdict`` (one of `cifarkit.course.claims.VERDICTS`), ``case``,
    ``evidence`` and ``reason``; they are checked and stored under ``"claims"``, which the run
    report turns into verdict tables. A `cifarkit.Claims` table also records its case under
    ``"course_case"``: the case in words, whether the course was sized for it (`RunCase.sized`),
    its changes and the claims that came out differently from the course (in a case it was not
    sized for the run reports the notebook as "differs", not failed). The file is written atomically (`cifarkit.files.atomic_write`):
    a kill leaves the old file or the new one, and a full disk raises one line naming it.
    Notebook 01 introduces it.
    """
    from .. import devices

    if isinstance(name, dict) and (metrics is None or hasattr(metrics, "get")):  # (metrics, cfg, ...)
        name, metrics, cfg = None, name, metrics if cfg is None else cfg
        if cfg is None or not cfg.get("notebook"):
            raise ValueError("record_results(metrics, cfg): cfg must come from ck.setup(notebook, ...), which "
                             "names the notebook; otherwise pass the name: record_results('03_pruning', metrics)")
        name = settings.notebook() or cfg["notebook"]  # under the runner: the file it executes
    _check_name(name)
    if not isinstance(metrics, dict):
        raise TypeError(f"record_results: metrics must be a dict, got {type(metrics).__name__}")
    payload = dict(metrics)
    if claims is not None:
        if "claims" in payload:
            raise ValueError("record_results: pass the claims either in metrics['claims'] or as "
                             "claims=..., not both")
        payload["claims"] = check_claims(claims, "record_results claims")
        case = getattr(claims, "case", None)
        if case is not None:  # a ck.Claims table
            payload["course_case"] = {"case": str(case), "sized": case.sized, "changes": case.changes(),
                                      "differs": [c.name for c in claims.differing()]}
    elif "claims" in payload:
        payload["claims"] = check_claims(payload["claims"], "metrics['claims']")
    payload.setdefault("torch_version", torch.__version__)
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
    atomic_write_text(path, json.dumps(_jsonable(payload), indent=1, sort_keys=True))  # never half-written
    n_claims = len(payload.get("claims", []))
    print(f"Recorded {len(metrics) - ('claims' in metrics)} metrics"
          f"{f' and {n_claims} claim(s)' if n_claims else ''} in {path}")
    return path
