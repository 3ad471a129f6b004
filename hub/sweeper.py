"""The sweeper: re-signals the workers while due work waits (lost signal, killed worker, retry due)."""
from __future__ import annotations

import logging
import threading

from flask import Flask

from hub import jobs

log = logging.getLogger(__name__)


class Sweeper:
    """A daemon thread that runs :func:`hub.jobs.sweep` every ``interval`` seconds."""

    def __init__(self, app: Flask, interval: float):
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-sweeper", daemon=True)

    def start(self) -> "Sweeper":
        """Start sweeping in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current sweep."""
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.app.app_context():
                    jobs.sweep()
            except Exception as exc:  # database or Redis away: try again next round
                log.warning("sweep failed: %s", type(exc).__name__)
