"""The Standard Webhooks signature scheme (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).

Used to verify signed inbound batches and to sign outbound deliveries. The key is the
base64-decoded part after ``whsec_``; the signed content is ``{id}.{timestamp}.{body}``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300


class InvalidSignature(Exception):
    """The signature headers do not prove the body."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret; ValueError if it is not base64."""
    encoded = secret[len(PREFIX):] if secret.startswith(PREFIX) else secret
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a whsec_ secret: the part after whsec_ must be base64") from None
    if len(key) < 16:
        raise ValueError("secret too short: at least 16 bytes after base64 decoding")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for one message."""
    digest = hmac.new(decode_secret(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers_get, body: bytes, tolerance: int = DEFAULT_TOLERANCE,
           now: float | None = None) -> str:
    """Check the three headers (read through ``headers_get(name)``); return the message id."""
    msg_id = headers_get("webhook-id")
    stamp = headers_get("webhook-timestamp")
    signatures = headers_get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp outside the tolerance")
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1].encode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value.encode()):
            return msg_id
    raise InvalidSignature("no matching v1 signature")
