"""A test connector and pipeline: hex HMAC over the body, one effect row per processed record.

Environment knobs for fault tests: ``ECHO_SLEEP`` (seconds per record) and
``ECHO_STARTED_FILE`` (touched when a batch starts).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path

from marshmallow import fields
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, Reply, SignatureError,
                           constant_time_equal)
from hub.hookspecs import hookimpl

metadata = MetaData()
effects = Table(
    "test_effects", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("inbox_id", BigInteger, nullable=False),
    Column("key", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
)


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class EchoSettings(ConnectorSettingsSchema):
    webhook_secret = fields.String(required=True)


class Echo(Connector):
    name = "echo"
    settings_schema = EchoSettings
    webhook_methods = ("POST",)
    kept_headers = ("x-echo-topic",)

    def preflight(self, request, settings):
        if request.method == "GET" and "challenge" in request.query:
            return Reply(200, request.query["challenge"])
        return None

    def verify(self, request, settings):
        given = request.header("X-Echo-Signature")
        if not constant_time_equal(sign(settings["webhook_secret"], request.body), given):
            raise SignatureError("X-Echo-Signature does not match")

    def split(self, request, settings):
        try:
            payload = json.loads(request.body)
        except ValueError:
            raise PayloadError("body is not JSON") from None
        events = payload["events"] if isinstance(payload, dict) and "events" in payload else [payload]
        if not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in events):
            raise PayloadError("every event needs a string id")
        return [Delivery(key=e["id"], body=json.dumps(e).encode(), topic=e.get("topic")) for e in events]


@hookimpl
def register_connectors():
    return [Echo()]


@hookimpl
def process_batch(hub, session, records):
    started = os.environ.get("ECHO_STARTED_FILE")
    if started:
        Path(started).touch()
    delay = float(os.environ.get("ECHO_SLEEP", "0"))
    rows = []
    for record in records:
        payload = json.loads(record.body)
        if payload.get("fail"):
            raise RuntimeError(f"record {record.key} asked to fail")
        if delay:
            time.sleep(delay)
        rows.append({"inbox_id": record.id, "key": record.key, "pid": os.getpid()})
    if rows:
        session.execute(insert(effects), rows)
