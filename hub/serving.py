"""Running processes: the web server (gunicorn) and the RQ drain worker."""
from __future__ import annotations

import gc
import logging
import os
import tempfile
import time

log = logging.getLogger(__name__)


def _ensure_metrics_dir() -> None:
    """Share metrics between worker processes (must happen before prometheus_client loads)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tributary-metrics-")


def serve(host: str, port: int, workers: int, threads: int, debug: bool, migrate: bool) -> None:
    """Migrate (embedded mode), then serve with gunicorn, or Flask's server with ``debug``."""
    if not debug:
        _ensure_metrics_dir()
    from hub import migrate as migrations
    from hub.cli import load_app

    app = load_app()  # validates the configuration before any process is forked
    hub = app.extensions["tributary"]
    if migrate and hub.config.embedded:
        migrations.upgrade(hub.engine)
    mode = "embedded (in-process jobs)" if hub.config.embedded else "Redis workers"
    enabled = [name for name in hub.connectors if hub.connector(name)]
    log.info("Tributary on http://%s:%d, %s; connectors: %s", host, port, mode,
             ", ".join(enabled) or "none enabled")
    hub.close()
    if debug:
        debug_app = _app_with_sweeper()
        debug_app.run(host=host, port=port, debug=True, use_reloader=False)
        return
    from gunicorn.app.base import BaseApplication

    class HubServer(BaseApplication):
        def load_config(self):
            options = {
                "bind": f"{host}:{port}", "workers": workers, "threads": threads,
                "worker_class": "gthread" if threads > 1 else "sync", "accesslog": None,
                "keepalive": 5, "graceful_timeout": 20, "timeout": 60,
                "child_exit": _child_exit,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return _settled(_app_with_sweeper())

    HubServer().run()


def _child_exit(_server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _app_with_sweeper():
    """A web app that, in the embedded mode, also sweeps the inbox on a background thread."""
    from hub.app import create_app
    from hub.sweeper import Sweeper

    app = create_app()
    hub = app.extensions["tributary"]
    if hub.config.embedded:
        Sweeper(app, hub.config.inbox["sweep_interval_seconds"]).start()
        hub.signal_drain()  # rows left pending by a previous run
    return app


def _settled(app):
    """``app``, with everything made at start-up frozen out of the garbage collector's scans.

    Those objects (modules, schemas, mappings) live as long as the process; without this,
    each full collection walks them all, a pause of tens of milliseconds in some requests.
    """
    gc.collect()
    gc.freeze()
    return app


def work(app, burst: bool = False, metrics_port: int | None = None) -> int:
    """Run an RQ worker on the hub's queue with a sweeper beside it; return an exit code."""
    from rq import SimpleWorker

    from hub import jobs
    from hub.queue import QUEUE_NAME
    from hub.sweeper import Sweeper

    hub = app.extensions["tributary"]
    _settled(app)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    with app.app_context():
        sweeper = None if burst else Sweeper(app, hub.config.inbox["sweep_interval_seconds"]).start()
        try:
            if burst:
                jobs.sweep()
            _work_through_outages(SimpleWorker([QUEUE_NAME], connection=hub.queue.redis), burst)
        finally:
            if sweeper:
                sweeper.stop()
            hub.close()
    return 0


def _work_through_outages(worker, burst: bool) -> None:
    """Run the RQ work loop; if Redis goes away under it, wait and start it again."""
    from redis.exceptions import ConnectionError, TimeoutError

    while True:
        try:
            worker.work(burst=burst, logging_level="WARNING")
            return
        except (ConnectionError, TimeoutError) as exc:
            log.warning("Redis unavailable (%s); the worker retries in 1 s", type(exc).__name__)
            time.sleep(1)
