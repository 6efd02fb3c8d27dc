"""The one training loop: a unit of work per step (a batch, an epoch), then the callbacks.

Rank pre-training (``rankiqa.train``) steps over batches, MOS fine-tuning (``rankiqa.finetune``)
over epochs; logging, validation, checkpoints, plots and progress bars are callbacks, and so is
anything a caller adds (``train(..., callbacks=[...])``), e.g. a test that stops a run at a step.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence, TypeVar

Unit = TypeVar("Unit")


class Callback:
    """Hooks of ``run_loop``; a subclass overrides those it needs (these do nothing).

    ``state`` is the loop's state object: at least ``step`` (units finished, counting those of an
    earlier run that this one resumes) and ``seconds`` (wall time of the last unit, fetching it
    included, callbacks excluded).
    """

    def on_step_end(self, state: Any) -> None:
        """After every unit, in the order the callbacks were given."""

    def on_interrupt(self, state: Any) -> None:
        """After Ctrl-C (``KeyboardInterrupt``) stopped the loop; the unit in progress is lost."""


def run_loop(units: Iterable[Unit], step: Callable[[Unit], None], state: Any, callbacks: Sequence[Callback]) -> None:
    """For each unit: ``step(unit)``, then ``state.step += 1``, ``state.seconds`` set, and every
    callback's ``on_step_end(state)``. On Ctrl-C every callback's ``on_interrupt(state)`` runs, then
    the ``KeyboardInterrupt`` propagates; any other exception propagates at once."""
    tick = time.perf_counter()
    try:
        for unit in units:
            step(unit)
            state.step += 1
            state.seconds = time.perf_counter() - tick
            for callback in callbacks:
                callback.on_step_end(state)
            tick = time.perf_counter()
    except KeyboardInterrupt:
        for callback in callbacks:
            callback.on_interrupt(state)
        raise
