"""The settings the library reads from the environment, one function per variable, each read when
called (never at import time) so that ``monkeypatch.setenv`` and the variables `cifarkit run` sets
take effect at once: ``CIFARKIT_DATA`` (`data_dir`), ``CIFARKIT_OFFLINE`` (`offline`),
``CIFARKIT_NETWORK`` (`network`), ``CIFARKIT_HEADLESS`` (`headless`) and ``CIFARKIT_CPU``
(`cpu_mode`, `apply_cpu_mode`). The course's own are in `cifarkit.course.settings`.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "CIFARKIT_DATA"
OFFLINE_ENV = "CIFARKIT_OFFLINE"
NETWORK_ENV = "CIFARKIT_NETWORK"
HEADLESS_ENV = "CIFARKIT_HEADLESS"
CPU_ENV = "CIFARKIT_CPU"
#: what ``CIFARKIT_CPU=avx2`` sets: torch's switches that keep ATen, oneDNN and MKL to AVX2 (read
#: when torch first needs them, so set before the process's first tensor operation)
TORCH_AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def env_flag(name: str) -> bool | None:
    """An on/off environment variable: True (1, true, yes, on), False (0, false, no, off), or None
    when it is unset or empty. Anything else raises a one-line ValueError naming the variable."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"environment variable {name}={os.environ[name]!r}: use 1 or 0")


def data_dir() -> Path | None:
    """``$CIFARKIT_DATA`` as an expanded path, or None when it is unset or empty."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


def offline() -> bool:
    """``CIFARKIT_OFFLINE=1``: never download. Unset means False; a malformed value raises."""
    return bool(env_flag(OFFLINE_ENV))


def network() -> bool | None:
    """``CIFARKIT_NETWORK``: the run's answer to "is the network up?" (True / False), or None when
    it is unset (then `cifarkit.data.network_available` probes). A malformed value raises."""
    return env_flag(NETWORK_ENV)


def headless() -> bool:
    """``CIFARKIT_HEADLESS`` is 1, true or yes (any case): show no live plot or progress bar.

    Lenient on purpose: any other value means False, so a typo never stops a plot being made."""
    return os.environ.get(HEADLESS_ENV, "").lower() in ("1", "true", "yes")


def cpu_mode() -> str:
    """``CIFARKIT_CPU``: ``"avx2"`` to behave exactly as on an AVX2-only CPU (float32 precision, torch's
    kernels limited to AVX2), else ``"native"`` (unset, empty or ``native``). Another value raises a
    one-line ValueError naming the variable."""
    value = os.environ.get(CPU_ENV, "").strip().lower() or "native"
    if value not in ("native", "avx2"):
        raise ValueError(f"environment variable {CPU_ENV}={os.environ[CPU_ENV]!r}: use 'avx2' or 'native'")
    return value


def onednn_max_isa() -> str | None:
    """torch's ``ONEDNN_MAX_CPU_ISA`` in capitals (e.g. ``"AVX2"``), or None when unset or empty."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() or None


def apply_cpu_mode() -> dict[str, str]:
    """In AVX2 mode (`cpu_mode`), set torch's variables (`TORCH_AVX2_ENV`) in this process, so that
    they reach torch and every process started from here (the runner's kernels); returns what it
    set. `import cifarkit` calls it; it imports nothing."""
    if cpu_mode() != "avx2":
        return {}
    os.environ.update(TORCH_AVX2_ENV)
    return dict(TORCH_AVX2_ENV)
