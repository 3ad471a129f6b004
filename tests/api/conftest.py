"""Fixtures for the REST API: an app with API tokens, a client that sends one, and a store to seed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.identity import IdentityRules
from hub.models import Identity, Profile
from hub.profiles import BatchWriter
from hub.unified import UnifiedActivity, UnifiedRecord

READ_TOKEN = "read-token-5f2c9a1e7b3d4c6f"
ADMIN_ONLY_TOKEN = "admin-only-token-8e1d2c3b4a59"
OPS_TOKEN = "ops-token-read-admin-0a9b8c7d6e"
TOKENS = [
    {"name": "analytics", "token": READ_TOKEN, "scopes": ["read"]},
    {"name": "erasure-bot", "token": ADMIN_ONLY_TOKEN, "scopes": ["admin"]},
    {"name": "ops", "token": OPS_TOKEN, "scopes": ["read", "admin"]},
]
#: seeded records are observed at T0 + hours; pinned update times start at BASE
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)
BASE = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
_inbox_ids = count(1)


@pytest.fixture
def api_app(make_app):
    """An application with three tokens: read, admin only, and read + admin."""
    return make_app(api_tokens=TOKENS)


class ApiClient:
    """A test client that sends the read token unless told otherwise (``token=None``: none)."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def get(self, path: str, token: str | None = READ_TOKEN, headers: dict | None = None, **params):
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get(path, headers=headers, query_string=params or None)


@pytest.fixture
def api(api_app) -> ApiClient:
    """A client for the API, authenticated with the read token."""
    return ApiClient(api_app)


def rec(source, *identities, at=0, traits=None, activities=()):
    """A unified record observed ``at`` hours after T0."""
    return UnifiedRecord(source=source, inbox_id=next(_inbox_ids), observed_at=T0 + timedelta(hours=at),
                         identities=list(identities), traits=dict(traits or {}), activities=list(activities))


def act(kind, source_id, at=0, **properties):
    """A unified activity that occurred ``at`` hours after T0."""
    return UnifiedActivity(kind, source_id, T0 + timedelta(hours=at), properties)


class Store:
    """Writes records like a drain does, and pins the computed columns to known values."""

    def __init__(self, engine):
        self.engine = engine

    def write(self, *records):
        """Resolve and store the records in one batch."""
        with Session(self.engine) as session, session.begin():
            return BatchWriter(session, IdentityRules(), {}).apply(list(records))

    def profile_of(self, kind, value) -> str:
        """The id of the profile holding this (normalised) identifier."""
        with Session(self.engine) as session:
            return session.scalar(select(Identity.profile_id).where(Identity.type == kind, Identity.value == value))

    def pin(self, profile_id, **values):
        """Set columns of a profile (``updated_at``, ``metrics``, ``lifecycle_stage``, ...)."""
        with Session(self.engine) as session, session.begin():
            session.execute(update(Profile).where(Profile.id == profile_id).values(**values))

    def pin_identity(self, kind, value, **values):
        """Set columns of an identity (``first_seen_at``, ``last_seen_at``, ``source``)."""
        with Session(self.engine) as session, session.begin():
            session.execute(update(Identity).where(Identity.type == kind, Identity.value == value).values(**values))

    def profile(self, profile_id) -> Profile:
        """The profile row."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(Profile, profile_id)


@pytest.fixture
def store(db_engine) -> Store:
    """Seed the test database."""
    return Store(db_engine)
