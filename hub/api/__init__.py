"""The REST API under ``/api/v1``: flask-smorest resources whose schemas write the OpenAPI document.

``init_api(app)`` is called by the application factory; it creates the ``Api`` extension
unbound, binds it to the app, declares the bearer security scheme and registers each
resource blueprint. The document is served at ``/api/v1/openapi.json`` (no token needed).
"""
from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from hub.api import changes, privacy, profiles, segments, stats
from hub.api.auth import BEARER_SCHEME, SECURITY_SCHEME
from hub.api.errors import ErrorBodySchema

PREFIX = "/api/v1"
EXTENSION = "tributary.api"
#: the resources, each a blueprint mounted under ``PREFIX``
RESOURCES = (profiles.blueprint, privacy.blueprint, segments.blueprint, stats.blueprint, changes.blueprint)
DESCRIPTION = (
    "Read the unified customer profiles of a Tributary hub. Authenticate with "
    "`Authorization: Bearer <token>` (tokens and their scopes are set in `api_tokens` of hub.yaml). "
    "Lists answer `{\"items\": [...], \"next_cursor\": ...}`; errors answer "
    "`{\"error\": {\"code\": ..., \"message\": ...}}`."
)


class TributaryApi(Api):
    """flask-smorest's ``Api`` with the hub's error shape.

    It installs no application-wide error handler: each API blueprint answers its own
    errors (``hub.api.errors.ApiBlueprint``), so the webhook receiver and the
    operational endpoints keep the application's handler whatever the order of setup.
    """

    ERROR_SCHEMA = ErrorBodySchema

    def _register_error_handlers(self) -> None:
        """Leave the application's error handlers untouched (see the class docstring)."""


def init_api(app: Flask) -> Api:
    """Mount the REST API on ``app`` under ``/api/v1``; calling it twice changes nothing."""
    if EXTENSION in app.extensions:
        return app.extensions[EXTENSION]
    app.config["OPENAPI_URL_PREFIX"] = PREFIX
    app.config["OPENAPI_JSON_PATH"] = "openapi.json"
    api = TributaryApi(spec_kwargs={"title": "Tributary", "version": "1.0.0", "openapi_version": "3.0.3",
                                    "info": {"description": DESCRIPTION}})
    api.init_app(app)
    api.spec.components.security_scheme(SECURITY_SCHEME, BEARER_SCHEME)
    for blueprint in RESOURCES:
        api.register_blueprint(blueprint, url_prefix=PREFIX + blueprint.url_prefix)
    app.extensions[EXTENSION] = api
    return api


__all__ = ["PREFIX", "init_api"]
