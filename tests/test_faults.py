"""Nothing accepted is lost: killed workers, Redis away, PostgreSQL restarted, parallel workers."""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from sqlalchemy import func, select, text

from hub.models import InboxState
from tests.conftest import hub_config, post_echo, wait_for
from tests.plugins.echo import effects

pytestmark = pytest.mark.slow


def processed_count(engine):
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).where(InboxState.status == "processed"))


def effect_summary(engine):
    """(effect rows, distinct inbox rows with an effect, worker pids that wrote effects)."""
    with engine.connect() as connection:
        rows = connection.execute(select(effects.c.inbox_id, effects.c.pid)).all()
    return len(rows), len({r.inbox_id for r in rows}), {r.pid for r in rows}


def accept(client, start, count, per_request=10):
    for first in range(start, start + count, per_request):
        events = [{"id": f"evt_{i}"} for i in range(first, min(first + per_request, start + count))]
        response = post_echo(client, {"events": events})
        assert response.status_code == 202, response.get_json()


def test_worker_killed_mid_batch_loses_and_doubles_nothing(make_app, db_engine, redis_url, workers,
                                                           database_url, tmp_path):
    app = make_app(redis_url=redis_url, inbox={"batch_size": 20})
    accept(app.test_client(), 0, 60)
    group = workers.configure(hub_config(database_url, redis_url, inbox={"batch_size": 20}))
    started = tmp_path / "batch-started"
    victim = group.start(ECHO_SLEEP="0.1", ECHO_STARTED_FILE=str(started))
    wait_for(started.exists)
    time.sleep(0.5)  # well inside the first 2-second batch
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert processed_count(db_engine) == 0
    survivor = group.start()
    wait_for(lambda: processed_count(db_engine) == 60, timeout=60)
    assert effect_summary(db_engine) == (60, 60, {survivor.pid})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A real redis-server of the test's own, so stopping it disturbs nothing else."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.dir = tmp_path
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                        capture_output=True).stdout.strip() == b"PONG")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_webhooks_are_accepted_while_redis_is_down_and_processed_when_it_returns(
        make_app, db_engine, workers, database_url, tmp_path):
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        app = make_app(redis_url=redis.url)
        client = app.test_client()
        group = workers.configure(hub_config(database_url, redis.url))
        worker = group.start()
        accept(client, 0, 20)
        wait_for(lambda: processed_count(db_engine) == 20)
        lease_held = app.extensions["tributary"].queue.redis.exists
        wait_for(lambda: not lease_held("tributary:drain:lease"))  # the drain is over, the worker idle
        redis.stop()
        accept(client, 20, 30)  # still 202: the records are safe in the inbox
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.get_json()["checks"]["redis"] == "error: ConnectionError"
        time.sleep(1)
        assert processed_count(db_engine) == 20
        redis.start()
        wait_for(lambda: processed_count(db_engine) == 50, timeout=90)
        assert effect_summary(db_engine) == (50, 50, {worker.pid})
        assert client.get("/healthz").status_code == 200
    finally:
        redis.stop()


def restart_postgres(engine):
    """Restart the server when this machine lets us; otherwise drop every client connection."""
    version = os.listdir("/etc/postgresql")[0] if os.path.isdir("/etc/postgresql") else None
    if version and shutil.which("pg_ctlcluster") and os.geteuid() == 0:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                       check=True, capture_output=True, timeout=120)
        return
    with engine.connect() as connection:  # pragma: no cover - non-root machines
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))


@pytest.mark.postgres
def test_postgres_restarted_between_batches(make_app, db_engine, redis_url, workers, database_url):
    app = make_app(redis_url=redis_url)
    client = app.test_client()
    group = workers.configure(hub_config(database_url, redis_url))
    worker = group.start()
    accept(client, 0, 30)
    wait_for(lambda: processed_count(db_engine) == 30)
    restart_postgres(db_engine)
    wait_for(lambda: client.get("/healthz").status_code == 200, timeout=60)
    accept(client, 30, 30)
    wait_for(lambda: processed_count(db_engine) == 60, timeout=60)
    assert effect_summary(db_engine) == (60, 60, {worker.pid})


def test_two_workers_draining_at_once_never_process_a_row_twice(make_app, db_engine, redis_url,
                                                                 workers, database_url):
    app = make_app(redis_url=redis_url, inbox={"batch_size": 10})
    accept(app.test_client(), 0, 400, per_request=50)
    group = workers.configure(hub_config(database_url, redis_url, inbox={"batch_size": 10}))
    first, second = group.start(ECHO_SLEEP="0.005"), group.start(ECHO_SLEEP="0.005")
    wait_for(lambda: processed_count(db_engine) == 400, timeout=90)
    rows, distinct, pids = effect_summary(db_engine)
    assert (rows, distinct) == (400, 400)
    assert pids <= {first.pid, second.pid}
    if db_engine.dialect.name == "postgresql":
        assert pids == {first.pid, second.pid}  # both really drained in parallel
