"""The Flask application factory."""
from __future__ import annotations

import logging
import os
from typing import Iterable, Mapping

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from hub.runtime import build_hub


def create_app(config: str | os.PathLike | Mapping | None = None, *,
               plugins: Iterable[str | object] = ()) -> Flask:
    """Build the hub's web application.

    ``config`` is a ``hub.yaml`` path or the same tree as a mapping; when None, the file
    named by ``HUB_CONFIG`` is read (or only defaults and environment overrides apply).
    ``plugins`` are extra plugin modules (or their dotted names) registered after the
    entry points. Raises :class:`hub.config.ConfigError` on a bad configuration.
    """
    app = Flask("hub")
    app.json.sort_keys = False

    def run_in_context(fn):
        with app.app_context():
            return fn()

    hub = build_hub(config, plugins=plugins, run_in_context=run_in_context)
    app.extensions["tributary"] = hub
    app.config["MAX_CONTENT_LENGTH"] = None  # the webhook receiver enforces its own limit

    from hub import health
    from hub.api import init_api
    import webhooks

    app.register_blueprint(health.blueprint)
    app.register_blueprint(webhooks.blueprint)
    init_api(app)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = jsonify(error={"code": (exc.name or "error").lower().replace(" ", "_"),
                                  "message": exc.description})
        response.status_code = exc.code or 500
        return response

    logging.getLogger("hub").setLevel(logging.INFO)
    return app
