"""Bearer tokens from ``api_tokens`` in ``hub.yaml``, with the scopes ``read`` and ``admin``.

A presented token is compared with every configured token in constant time (the SHA-256
digests of both, so lengths do not leak either), without stopping at a match. Tokens
never reach a log line or a response.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
from copy import deepcopy
from typing import Any, Callable, Iterable, Mapping

from flask import request

from hub.api.errors import ApiError
from hub.runtime import current_hub

SECURITY_SCHEME = "bearerAuth"
#: the security scheme declared in the OpenAPI document
BEARER_SCHEME = {"type": "http", "scheme": "bearer",
                 "description": "A token from `api_tokens` in hub.yaml: `Authorization: Bearer <token>`"}


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def match_token(presented: str, tokens: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The configured token entry equal to ``presented``, or None; compares with all of them."""
    wanted = _digest(presented)
    found = None
    for entry in tokens:
        if hmac.compare_digest(wanted, _digest(str(entry.get("token", "")))) and found is None:
            found = entry
    return found


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def authorize(scope: str) -> Mapping[str, Any]:
    """Check the current request's token and its scope; raise 401 or 403 as an ``ApiError``."""
    token = bearer_token(request.headers.get("Authorization"))
    entry = match_token(token, current_hub().config.api_tokens) if token is not None else None
    if entry is None:
        raise ApiError(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)",
                       {"WWW-Authenticate": "Bearer"})
    if scope not in (entry.get("scopes") or ()):
        raise ApiError(403, "forbidden", f"this token lacks the {scope!r} scope")
    return entry


def requires(scope: str) -> Callable:
    """Decorate a view: the caller needs a token with ``scope`` (checked before any argument).

    Place it right under ``@blueprint.route`` so authentication runs before validation;
    it also documents the bearer security requirement and the 401/403 answers.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            authorize(scope)
            return view(*args, **kwargs)

        doc = deepcopy(getattr(view, "_apidoc", {}))
        manual = doc.setdefault("manual_doc", {})
        manual["security"] = [{SECURITY_SCHEME: []}]
        responses = doc.setdefault("response", {}).setdefault("responses", {})
        responses.setdefault(401, []).append("UNAUTHORIZED")
        responses.setdefault(403, []).append("FORBIDDEN")
        wrapper._apidoc = doc
        wrapper.required_scope = scope
        return wrapper

    return decorator
