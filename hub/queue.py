"""Job queues: real RQ queues on Redis, or the same job functions run in-process.

Jobs are referenced by dotted name and take plain ids, never ORM objects.

The drain signal is a lease: ``signal_drain`` takes it (if free) and enqueues one drain job,
which holds it while it drains. The job gives it back only after an empty claim, then looks
once more for rows committed meanwhile and takes it again if there are. So a webhook
either finds the lease held by a drain that will still see its row, or takes it itself:
no signal is lost, and a busy hub runs one long drain instead of a job per webhook.
Outbound webhooks are sent by a delivery job signalled the same way, under a lease of its own.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

log = logging.getLogger(__name__)

QUEUE_NAME = "tributary"
DRAIN_JOB = "hub.jobs.drain"
HELPER_JOB = "hub.jobs.drain_helper"
DRAIN_LEASE = "tributary:drain:lease"
DELIVER_JOB = "hub.jobs.deliver"
DELIVER_LEASE = "tributary:outbound:lease"
#: a lease not renewed for this long is free again (its job died); a sweep re-signals
DRAIN_LEASE_TTL = 30


class _Signals:
    """Signalling a job that holds a lease while it runs (``take_lease`` and ``enqueue`` come from the queue)."""

    def signal_drain(self) -> bool:
        """Take the drain lease and queue a drain; a no-op while a drain holds it."""
        return self.signal(DRAIN_JOB, DRAIN_LEASE)

    def signal_deliver(self) -> bool:
        """Take the delivery lease and queue the outbound delivery job; a no-op while one holds it."""
        return self.signal(DELIVER_JOB, DELIVER_LEASE)

    def signal(self, job: str, lease: str) -> bool:
        """Take ``lease`` and queue ``job``, which holds it while it runs; a no-op while it is held."""
        if not self.take_lease(lease):
            return False
        try:
            self.enqueue(job)
        except Exception:
            self.release_lease(lease)
            raise
        return True


class EmbeddedQueue(_Signals):
    """Runs jobs on one background thread of this process (no Redis needed)."""

    def __init__(self, run_in_context: Callable[[Callable[[], Any]], Any]):
        self._run = run_in_context
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-jobs")
        self._leases = {DRAIN_LEASE: threading.Lock(), DELIVER_LEASE: threading.Lock()}

    def enqueue(self, func: str, *args: Any) -> None:
        """Run ``func(*args)`` soon on the job thread."""
        self._pool.submit(self._call, func, args)

    def take_lease(self, name: str = DRAIN_LEASE) -> bool:
        """Take the lease ``name`` if it is free."""
        return self._leases[name].acquire(blocking=False)

    def renew_lease(self, name: str = DRAIN_LEASE) -> None:
        """Nothing expires in-process."""

    def release_lease(self, name: str = DRAIN_LEASE) -> None:
        """Give the lease ``name`` back."""
        if self._leases[name].locked():
            self._leases[name].release()

    def enqueue_helper(self) -> bool:
        """One job thread: a helper drain would only wait behind the main one."""
        return False

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


class RedisQueue(_Signals):
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

    def take_lease(self, name: str = DRAIN_LEASE) -> bool:
        """Take the lease ``name`` if it is free."""
        return bool(self.redis.set(name, "1", nx=True, ex=DRAIN_LEASE_TTL))

    def renew_lease(self, name: str = DRAIN_LEASE) -> None:
        """Keep the lease while a long job runs."""
        self.redis.expire(name, DRAIN_LEASE_TTL)

    def release_lease(self, name: str = DRAIN_LEASE) -> None:
        """Give the lease ``name`` back."""
        self.redis.delete(name)

    def enqueue_helper(self) -> bool:
        """Queue a helper drain for an idle worker, unless jobs already wait in the queue."""
        if len(self.queue):
            return False
        self.enqueue(HELPER_JOB)
        return True

    def ping(self) -> None:
        """Raise if Redis cannot be reached."""
        self.redis.ping()

    def shutdown(self, wait: bool = True) -> None:
        """Close the connection pool."""
        self.redis.connection_pool.disconnect()


def quietly(method: Callable[..., Any], *args: Any) -> Any:
    """Call a queue method; jobs carry on without Redis, so a Redis error is only logged (None)."""
    try:
        return method(*args)
    except Exception as exc:
        log.warning("queue unavailable during a job (%s)", type(exc).__name__)
        return None


def resolve(dotted: str) -> Callable[..., Any]:
    """The function named ``module.function``."""
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)
