"""Occasional work of a long-running process (the sweeper's): each at most once per interval."""
from __future__ import annotations

from time import monotonic


class Every:
    """A per-process timer: :meth:`due` says yes at most once per interval."""

    def __init__(self) -> None:
        self.last = float("-inf")

    def due(self, seconds: float) -> bool:
        """True (and restart the interval) if ``seconds`` have passed since the last yes."""
        now = monotonic()
        if now - self.last < seconds:
            return False
        self.last = now
        return True
