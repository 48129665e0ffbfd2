"""The settings only the course reads from the environment, each read when called:
``CIFARKIT_PROFILE`` (`profile`), ``CIFARKIT_RESULTS_DIR`` (`results_dir`), ``CIFARKIT_ARTIFACTS``
(`artifacts_dir`) and ``CIFARKIT_NOTEBOOK`` (`notebook`). `cifarkit run` sets them for its kernels.
The library's settings are `cifarkit.settings`.
"""
from __future__ import annotations

import os
from pathlib import Path

PROFILE_ENV = "CIFARKIT_PROFILE"
RESULTS_DIR_ENV = "CIFARKIT_RESULTS_DIR"
ARTIFACTS_ENV = "CIFARKIT_ARTIFACTS"
NOTEBOOK_ENV = "CIFARKIT_NOTEBOOK"


def profile() -> str | None:
    """``$CIFARKIT_PROFILE`` (it overrides a notebook's `profile` parameter), or None when unset or empty."""
    return os.environ.get(PROFILE_ENV) or None


def results_dir() -> Path:
    """``$CIFARKIT_RESULTS_DIR`` (set by `cifarkit run` to the run directory), else ``./results``."""
    return Path(os.environ.get(RESULTS_DIR_ENV) or "results")


def notebook() -> str | None:
    """``$CIFARKIT_NOTEBOOK``: the file stem of the notebook the runner is executing (it sets the
    variable for each kernel), so `record_results` writes the file the runner reads even for a
    renamed copy of a course notebook; None outside the runner."""
    return os.environ.get(NOTEBOOK_ENV) or None


def artifacts_dir() -> Path | None:
    """``$CIFARKIT_ARTIFACTS``, or None when it is unset or empty (then ``<results dir>/artifacts``)."""
    value = os.environ.get(ARTIFACTS_ENV)
    return Path(value) if value else None
