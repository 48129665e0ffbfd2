"""The callback protocol that `Trainer.fit` calls, and the checkpoint callback.

A callback is any object with some of these methods; subclass `Callback` to get no-op defaults.

    on_fit_start(trainer, model)          before the first epoch (after a resume, too)
    on_epoch_end(trainer, model, record)  after each epoch; `record` is that epoch's metrics dict
                                          and may be extended (e.g. record["sparsity"] = 0.3)
    on_fit_end(trainer, model)            after the last epoch, or after an interruption
    state_dict() / load_state_dict(state) saved in and restored from checkpoints

Callbacks run in ascending `order` (default 0); `Checkpoint` runs last so it saves what the
others added to the record.
"""
from __future__ import annotations


class Callback:
    """Base class with no-op hooks. Override the ones you need."""

    order = 0

    def on_fit_start(self, trainer, model):
        pass

    def on_epoch_end(self, trainer, model, record: dict):
        pass

    def on_fit_end(self, trainer, model):
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
