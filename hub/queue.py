"""Job queues: real RQ queues on Redis, or the same job functions run in-process.

Jobs are referenced by dotted name and take plain ids, never ORM objects. The drain
signal is deduplicated: at most one drain job waits in the queue at any time.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

log = logging.getLogger(__name__)

QUEUE_NAME = "tributary"
DRAIN_JOB = "hub.jobs.drain"
DRAIN_FLAG = "tributary:drain:signalled"
#: a signal older than this is forgotten, so a lost job is re-created by the next signal
DRAIN_FLAG_TTL = 30


class EmbeddedQueue:
    """Runs jobs on one background thread of this process (no Redis needed)."""

    def __init__(self, run_in_context: Callable[[Callable[[], Any]], Any]):
        self._run = run_in_context
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-jobs")
        self._drain_waiting = threading.Event()

    def enqueue(self, func: str, *args: Any) -> None:
        """Run ``func(*args)`` soon on the job thread."""
        self._pool.submit(self._call, func, args)

    def signal_drain(self) -> bool:
        """Ask for a drain; a no-op while one is already waiting."""
        if self._drain_waiting.is_set():
            return False
        self._drain_waiting.set()
        self.enqueue(DRAIN_JOB)
        return True

    def drain_started(self) -> None:
        """Called by the drain job as it starts, so later signals queue another drain."""
        self._drain_waiting.clear()

    def ping(self) -> None:
        """Always healthy: nothing outside this process."""

    def _call(self, func: str, args: tuple) -> None:
        try:
            self._run(lambda: resolve(func)(*args))
        except Exception:
            log.exception("job %s failed", func)

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting jobs; with ``wait`` finish those already queued."""
        self._pool.shutdown(wait=wait)


class RedisQueue:
    """Enqueues jobs on an RQ queue served by ``hub worker`` processes."""

    def __init__(self, redis_url: str, default_timeout: int = 600):
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5,
                                    health_check_interval=30)
        self.queue = Queue(QUEUE_NAME, connection=self.redis, default_timeout=default_timeout)

    def enqueue(self, func: str, *args: Any, **options: Any) -> None:
        """Put ``func(*args)`` on the RQ queue."""
        self.queue.enqueue(func, *args, result_ttl=0, failure_ttl=86400, **options)

    def signal_drain(self) -> bool:
        """Ask for a drain; a no-op while one is already waiting in the queue."""
        if not self.redis.set(DRAIN_FLAG, "1", nx=True, ex=DRAIN_FLAG_TTL):
            return False
        try:
            self.enqueue(DRAIN_JOB)
        except Exception:
            self.redis.delete(DRAIN_FLAG)
            raise
        return True

    def drain_started(self) -> None:
        """Called by the drain job as it starts, so later signals queue another drain."""
        self.redis.delete(DRAIN_FLAG)

    def ping(self) -> None:
        """Raise if Redis cannot be reached."""
        self.redis.ping()

    def shutdown(self, wait: bool = True) -> None:
        """Close the connection pool."""
        self.redis.connection_pool.disconnect()


def resolve(dotted: str) -> Callable[..., Any]:
    """The function named ``module.function``."""
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)
