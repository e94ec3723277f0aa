"""The hooks a training loop calls (:class:`Callback`) and its progress bar: a leaf module, so that
variants (which hand the Trainer callbacks of their own) need nothing from the trainer itself."""

from __future__ import annotations

from typing import Any


class Callback:
    """Hooks called by :class:`aekit.train.Trainer`. Override what you need; ``trainer.stop()`` ends
    training after the current epoch, ``trainer.interrupt()`` checkpoints after the current
    step and raises :class:`aekit.train.Interrupted`."""

    def on_train_begin(self, trainer: Any) -> None: ...
    def on_step_end(self, trainer: Any, step: int, losses: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None: ...
    def on_train_end(self, trainer: Any) -> None: ...


def progress_bar(enabled: bool, total: int, initial: int, desc: str) -> Any:
    """A tqdm progress bar over ``total`` steps starting at ``initial``, or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.2)
