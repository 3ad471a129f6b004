"""Shared fixtures: a real database (PostgreSQL or SQLite) and a real Redis, clean per test.

``HUB_TEST_DATABASE_URL`` picks the database (default: the local PostgreSQL ``test``
database; any ``sqlite`` URL means a fresh SQLite file). Each run gets its own schema;
tables are emptied after each test. ``HUB_TEST_REDIS_URL`` picks the Redis database
(default 15), flushed before and after each test that uses it.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from sqlalchemy import create_engine, select, text

from hub import migrate
from hub.models import Base
from tests.plugins import echo

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
ECHO_SECRET = "echo-secret-0123456789"
#: the connectors this package installs through its entry points
BUILT_IN_CONNECTORS = ["freshdesk", "klaviyo", "mailchimp", "paypal", "sendgrid", "shopify", "stripe",
                       "website", "woocommerce", "zendesk"]


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("HUB_TEST_DATABASE_URL", DEFAULT_PG).startswith("sqlite"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (HUB_TEST_DATABASE_URL is SQLite)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A migrated database for this test run; dropped at the end."""
    url = os.environ.get("HUB_TEST_DATABASE_URL", DEFAULT_PG)
    if url.startswith("sqlite"):
        path = tmp_path_factory.mktemp("db") / "hub.db"
        scope = contextlib.nullcontext(f"sqlite:///{path}")
    else:
        from hub.config import normalize_database_url

        scope = scratch_schema(normalize_database_url(url), "t")
    with scope as url:
        engine = create_engine(url)
        migrate.upgrade(engine)
        echo.metadata.create_all(engine)
        engine.dispose()
        yield url


@contextlib.contextmanager
def scratch_schema(url: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL schema on the database of ``url`` for the block: yields a URL whose sessions
    work in it (search_path); the schema and everything in it are dropped after."""
    base = url.split("?")[0]
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    try:
        yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        admin = create_engine(base)
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def db_engine(database_url):
    """An engine on the test database; every table is emptied after the test."""
    engine = create_engine(database_url, pool_pre_ping=True)
    yield engine
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)] + ["test_effects"]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture
def redis_url():
    """A real Redis database, flushed before and after the test."""
    from redis import Redis

    url = os.environ.get("HUB_TEST_REDIS_URL", DEFAULT_REDIS)
    client = Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def hub_config(database_url: str, redis_url: str | None = None, **overrides) -> dict:
    """A configuration tree with the echo test connector enabled."""
    tree = {
        "database_url": database_url,
        "plugins": ["tests.plugins.echo"],
        "connectors": {"echo": {"enabled": True, "webhook_secret": ECHO_SECRET}},
        "inbox": {"batch_size": 50, "backoff_seconds": 0, "sweep_interval_seconds": 0.2},
    }
    if redis_url:
        tree["redis_url"] = redis_url
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            tree[key] = {**tree[key], **value}
        else:
            tree[key] = value
    return tree


@pytest.fixture
def make_app(db_engine, database_url):
    """Build apps on the test database; each is closed after the test."""
    from hub.app import create_app

    apps = []

    def factory(**overrides):
        app = create_app(hub_config(overrides.pop("database_url", database_url), **overrides))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["tributary"].close()


def post_echo(client, payload, secret: str = ECHO_SECRET, **headers):
    """POST a payload to the echo connector, signed unless a signature header is given."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers.setdefault("X-Echo-Signature", hmac.new(secret.encode(), body, hashlib.sha256).hexdigest())
    return client.post("/webhooks/echo", data=body, headers=headers, content_type="application/json")


class Workers:
    """Real ``hub worker`` processes on a config file; killed at the end of the test."""

    def __init__(self, tmp_path: Path, tree: dict):
        self.config_path = tmp_path / "hub.yaml"
        self.config_path.write_text(yaml.safe_dump(tree))
        self.processes: list[subprocess.Popen] = []

    def env(self, **extra) -> dict:
        env = {**os.environ, "HUB_CONFIG": str(self.config_path), "PYTHONPATH": str(ROOT), **extra}
        env.pop("HUB_DATABASE_URL", None)
        env.pop("HUB_REDIS_URL", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    def start(self, *args: str, **env) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "hub", "worker", *args],
                                   env=self.env(**env), cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.processes.append(process)
        return process

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hub", *args], env=self.env(), cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr:
                process.stderr.close()


@pytest.fixture
def workers(tmp_path):
    """Start real worker processes with ``workers.configure(tree)`` then ``workers.start()``."""
    holder: list[Workers] = []

    class Factory:
        def configure(self, tree: dict) -> Workers:
            holder.append(Workers(tmp_path, tree))
            return holder[-1]

    yield Factory()
    for group in holder:
        group.stop_all()


def inbox_rows(app) -> list[tuple]:
    """Every inbox row as (key, topic, body, occurred_at, kept headers), oldest first."""
    from hub.models import InboxRecord

    with app.extensions["tributary"].session() as session:
        return [(r.key, r.topic, r.body, r.occurred_at, r.headers)
                for r in session.scalars(select(InboxRecord).order_by(InboxRecord.id))]


def settle(app) -> None:
    """Wait until the hub has handled every inbox row, and check that none failed."""
    from hub.models import InboxRecord, InboxState

    hub = app.extensions["tributary"]

    def settled():
        with hub.session() as session:
            return not session.scalar(select(InboxState.inbox_id).where(InboxState.status == "pending"))

    wait_for(settled)
    with hub.session() as session:
        failed = session.execute(select(InboxRecord.key, InboxState.error).join_from(InboxRecord, InboxState)
                                 .where(InboxState.status == "failed")).all()
    assert [tuple(row) for row in failed] == []


def profiles_snapshot(engine) -> list[dict]:
    """Every profile: identities with their source, traits with value, source and observed time,
    the timeline with properties, and the metrics; ordered so the result does not depend on ids."""
    from sqlalchemy.orm import Session

    from hub.models import Activity, Identity, Profile, Trait

    with Session(engine) as session:
        people: dict[str, list] = {}
        for ident in session.scalars(select(Identity)):
            people.setdefault(ident.profile_id, []).append((ident.type, ident.value, ident.source))
        result = []
        for profile_id, identities in people.items():
            traits = {t.name: (t.value, t.source, t.observed_at.isoformat())
                      for t in session.scalars(select(Trait).where(Trait.profile_id == profile_id))}
            activities = session.scalars(select(Activity).where(Activity.profile_id == profile_id))
            timeline = sorted(((a.type, a.source, a.source_id, a.occurred_at.isoformat(), a.properties)
                               for a in activities), key=repr)
            result.append({"identities": sorted(identities), "traits": traits, "timeline": timeline,
                           "metrics": session.get(Profile, profile_id).metrics})
        live = session.scalars(select(Profile.id).where(Profile.merged_into.is_(None))).all()
        assert len(live) == len(result)  # no profile without an identifier
        return sorted(result, key=repr)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
