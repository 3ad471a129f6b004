"""Every API error as ``{"error": {"code", "message"}}``, webargs' validation errors included.

The handlers are registered on each API blueprint (not on the application), so the
webhook receiver and the operational endpoints keep the application's own handler.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import marshmallow as ma
from flask import Response, jsonify
from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

#: codes for statuses whose werkzeug name is not the code clients should match on
_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 422: "bad_request", 500: "internal_error"}


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with this status and headers."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def bad_request(parameter: str, reason: str) -> ApiError:
    """A 400 naming the offending parameter, e.g. ``cursor: malformed cursor``."""
    return ApiError(400, "bad_request", f"{parameter}: {reason}")


def not_found(what: str) -> ApiError:
    """A 404 for an unknown resource (``what`` never echoes secrets)."""
    return ApiError(404, "not_found", f"{what} not found")


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error response itself."""
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def validation_message(messages: Any) -> str:
    """``"limit: Must be ..."`` from webargs' ``{location: {field: [messages]}}`` errors."""
    parts: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, sub in value.items():
                name = path if key == "_schema" else (f"{path}.{key}" if path else str(key))
                walk(sub, name)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            parts.append(f"{path or 'request'}: {' '.join(value)}")
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, path)
        else:
            parts.append(f"{path or 'request'}: {value}")

    if isinstance(messages, Mapping):
        for per_location in messages.values():  # the location ("query", "json") is not a name
            walk(per_location, "")
    else:
        walk(messages, "")
    return "; ".join(sorted(parts)) or "the request is invalid"


def _handle_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def _handle_http_exception(exc: HTTPException) -> Response:
    data = getattr(exc, "data", None) or {}
    status = exc.code or 500
    if "messages" in data:  # webargs/flask-smorest argument validation
        return error_response(400, "bad_request", validation_message(data["messages"]))
    code = _CODES.get(status) or (exc.name or "error").lower().replace(" ", "_")
    return error_response(400 if status == 422 else status, code, data.get("message") or exc.description or code)


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("API request failed (%s)", type(exc).__name__)
    return error_response(500, "internal_error", "internal server error")


class ApiParser(FlaskParser):
    """webargs parser answering invalid arguments with 400 (documented as such).

    Built with ``unknown=None`` so each schema's own ``unknown`` setting applies
    (marshmallow's default, RAISE): a misspelt filter is refused, never ignored.
    """

    DEFAULT_VALIDATION_STATUS = 400


class ApiBlueprint(Blueprint):
    """A flask-smorest blueprint whose errors all use the API's error shape."""

    ARGUMENTS_PARSER = ApiParser(unknown=None)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.register_error_handler(ApiError, _handle_api_error)
        self.register_error_handler(HTTPException, _handle_http_exception)
        self.register_error_handler(Exception, _handle_unexpected)


class ErrorDetailSchema(ma.Schema):
    """The inside of an error body."""

    code = ma.fields.String(required=True, metadata={"description": "Stable machine-readable code, "
                                                                    "e.g. `bad_request`, `unauthorized`"})
    message = ma.fields.String(required=True, metadata={"description": "Human-readable explanation"})


class ErrorBodySchema(ma.Schema):
    """Every error: ``{"error": {"code", "message"}}``."""

    error = ma.fields.Nested(ErrorDetailSchema, required=True)
