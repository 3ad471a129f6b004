"""The webhook receiver: ``POST /webhooks/<connector>``, nothing platform-specific.

Steps: find the enabled connector (404), enforce the size limit (413), let the connector
answer non-event requests, verify the signature on the raw bytes (401, nothing stored),
split into deliveries (400 if unparseable), store them idempotently (concurrent requests
share a commit, see ``hub.group_commit``), signal the workers, answer 202 for new records
or 200 for a redelivery.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from flask import Blueprint, Response, jsonify, request

from hub import metrics
from hub.connector import PayloadError, SignatureError, WebhookRequest
from hub.runtime import current_hub

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def _answer(connector: str, code: int, **body) -> Response:
    metrics.WEBHOOK_REQUESTS.labels(connector, str(code)).inc()
    response = jsonify(body)
    response.status_code = code
    return response


def _error(connector: str, code: int, error: str, message: str) -> Response:
    return _answer(connector, code, error={"code": error, "message": message})


@blueprint.route("/<name>", methods=["GET", "POST", "PUT", "HEAD"])
def receive(name: str) -> Response:
    """Receive one webhook request for the connector ``name``."""
    hub = current_hub()
    found = hub.connector(name)
    if found is None:
        return _error("unknown", 404, "unknown_connector", f"no enabled connector named {name!r}")
    connector, settings = found
    started = time.perf_counter()
    try:
        return _receive(hub, connector, settings)
    finally:
        metrics.WEBHOOK_SECONDS.labels(name).observe(time.perf_counter() - started)


def _receive(hub, connector, settings) -> Response:
    name = connector.name
    limit = hub.config.webhooks["max_body_bytes"]
    if request.content_length is not None and request.content_length > limit:
        return _error(name, 413, "too_large", f"body over {limit} bytes")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _error(name, 413, "too_large", f"body over {limit} bytes")
    incoming = WebhookRequest(
        method=request.method, headers=dict(request.headers),
        query=request.args.to_dict(flat=True), body=body, url_factory=lambda: request.url,
    )
    reply = connector.preflight(incoming, settings)
    if reply is not None:
        metrics.WEBHOOK_REQUESTS.labels(name, str(reply.status)).inc()
        return Response(reply.body, status=reply.status, mimetype="text/plain")
    if request.method not in connector.webhook_methods:
        return _error(name, 405, "method_not_allowed", f"{request.method} is not accepted here")
    try:
        connector.verify(incoming, settings)
    except SignatureError as exc:
        log.info("rejected %s webhook: %s", name, exc)
        return _error(name, 401, "bad_signature", str(exc) or "signature check failed")
    try:
        deliveries = connector.split(incoming, settings)
    except PayloadError as exc:
        return _error(name, 400, "bad_payload", str(exc) or "body cannot be parsed")
    kept = {h: v for h in connector.kept_headers if (v := incoming.header(h)) is not None}
    if kept:
        deliveries = [replace(d, headers={**kept, **d.headers}) for d in deliveries]
    new_ids = hub.inbox_writer.store(name, deliveries)  # durable, workers signalled
    if new_ids:
        return _answer(name, 202, status="accepted", accepted=len(new_ids),
                       duplicates=len(deliveries) - len(new_ids))
    return _answer(name, 200, status="duplicate", accepted=0, duplicates=len(deliveries))
