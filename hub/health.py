"""Operational endpoints: ``GET /healthz`` and ``GET /metrics``."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from hub import metrics
from hub.runtime import current_hub

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """200 when the database (and Redis, when configured) answer; 503 naming what fails."""
    hub = current_hub()
    checks: dict[str, str] = {}
    try:
        with hub.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    if hub.config.redis_url:
        try:
            hub.queue.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    else:
        checks["redis"] = "not configured (embedded jobs)"
    healthy = all(v == "ok" or v.startswith("not configured") for v in checks.values())
    response = jsonify(status="ok" if healthy else "unavailable", checks=checks)
    response.status_code = 200 if healthy else 503
    return response


@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus exposition of the hub's counters, histograms and inbox gauges."""
    return Response(metrics.render(current_hub()), mimetype=CONTENT_TYPE_LATEST)
