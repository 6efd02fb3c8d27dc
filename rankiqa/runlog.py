"""Collect a run's warnings (skipped images, logistic-fit fallbacks, ...) instead of printing them
in the middle of a table; summarise them once at the end and write them to ``warnings.txt``."""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator


class WarningLog:
    """A callable ``log(line)`` that keeps each distinct line once, with how often it came.

    ``capture()`` also records Python warnings raised inside its block (e.g. the
    ``RuntimeWarning`` of ``rankiqa.metrics.fit_logistic``) instead of letting them print.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, line: str) -> None:
        line = " ".join(str(line).split())  # one line, whatever the message held
        self.counts[line] = self.counts.get(line, 0) + 1

    def __len__(self) -> int:
        return len(self.counts)

    @contextmanager
    def capture(self, category: type[Warning] = Warning) -> Iterator[None]:
        """Record warnings of ``category`` raised in the block (each occurrence counted)."""
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", category)
                yield
        finally:
            for item in caught:  # outside the recording block: re-raised warnings are not caught again
                if issubclass(item.category, category):
                    self(str(item.message))
                else:
                    warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)

    def lines(self) -> list[str]:
        """Every distinct warning, in first-seen order, with ``(N times)`` when it repeated."""
        return [line if count == 1 else f"{line} ({count} times)" for line, count in self.counts.items()]

    def summary(self, limit: int = 5) -> list[str]:
        """Up to ``limit`` lines for a table's notes, plus how many more are in the file."""
        lines = self.lines()
        if not lines:
            return []
        shown = [f"- {line}" for line in lines[:limit]]
        if len(lines) > limit:
            shown.append(f"- ... and {len(lines) - limit} more")
        return shown

    def text(self) -> str:
        """The content of ``warnings.txt``: one line per distinct warning (empty when there was none)."""
        return "".join(f"{line}\n" for line in self.lines())
