"""Where the code runs and in which mode: `in_kernel` (a Jupyter kernel, live or headless) and
`eval_mode` (a model switched to eval for a block, its train/eval mode restored afterwards).
"""
from __future__ import annotations

import contextlib

from . import settings

__all__ = ["in_kernel", "eval_mode"]


def in_kernel(live: bool = False) -> bool:
    """True inside an IPython kernel: a live Jupyter session or one driven by papermill / nbval.

    With ``live=True``, only in a kernel someone watches: False when ``CIFARKIT_HEADLESS`` is set
    (`settings.headless`, as `cifarkit run` and the tests do), so no live plot or progress bar is
    drawn there."""
    if live and settings.headless():
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


@contextlib.contextmanager
def eval_mode(model):
    """``with eval_mode(model):`` runs the block with `model` in eval mode (no dropout, BatchNorm
    uses and keeps its running statistics), then gives the model back the train/eval mode it had,
    even when the block raises. Yields the model. Gradients are untouched: add
    ``torch.no_grad()`` for that."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
