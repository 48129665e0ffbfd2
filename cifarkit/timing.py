"""`Timer`: d2l's stopwatch, plus a context manager and correct GPU timing."""
from __future__ import annotations

import time

import numpy as np
import torch


class Timer:
    """Record several running times.

    >>> timer = Timer()
    >>> with timer:            # or timer.start(); ...; timer.stop()
    ...     work()
    >>> timer.avg(), timer.sum(), timer.cumsum()

    GPU kernels run asynchronously, so a plain wall clock measures only the launch. With
    `sync=True` (the default) the timer waits for the GPU at start and stop whenever CUDA is in use.
    Notebook 05 introduces it.
    """

    def __init__(self, sync: bool = True):
        self.times: list[float] = []
        self.sync = sync
        self._tik: float | None = None

    def _synchronize(self):
        if self.sync and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def start(self) -> "Timer":
        """Start the stopwatch."""
        self._synchronize()
        self._tik = time.perf_counter()
        return self

    def stop(self) -> float:
        """Stop the stopwatch, record the lap and return it in seconds."""
        if self._tik is None:
            raise RuntimeError("Timer.stop() called before start()")
        self._synchronize()
        self.times.append(time.perf_counter() - self._tik)
        self._tik = None
        return self.times[-1]

    def avg(self) -> float:
        """Average lap time (0.0 before the first lap)."""
        return sum(self.times) / len(self.times) if self.times else 0.0

    def sum(self) -> float:
        """Total recorded time."""
        return sum(self.times)

    def cumsum(self) -> list[float]:
        """Running totals, one per lap."""
        return np.cumsum(self.times).tolist()

    def rate(self, n_items: int) -> float:
        """Items per second over all laps, e.g. `timer.rate(n_images)` for images/s."""
        total = self.sum()
        return n_items / total if total > 0 else float("nan")

    def __enter__(self) -> "Timer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Timer(laps={len(self.times)}, sum={self.sum():.3f}s)"
