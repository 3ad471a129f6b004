"""PayPal: one event per request, signed with PayPal's RSA key (``SHA256withRSA``).

The signed string is ``"{transmission_id}|{transmission_time}|{webhook_id}|{crc32}"``:
the ``PAYPAL-TRANSMISSION-ID`` and ``PAYPAL-TRANSMISSION-TIME`` headers, the id of *our*
webhook in the PayPal app (from the settings, never from the request) and the CRC-32 of
the raw body as an unsigned decimal. ``PAYPAL-TRANSMISSION-SIG`` (base64) is checked with
the public key of the X.509 certificate at ``PAYPAL-CERT-URL``, which is only downloaded
from PayPal's own API hosts over HTTPS and kept in memory per URL. The idempotency key is
the event ``id`` (``WH-...``).

``hub sync paypal`` pulls the account's transactions from the Transaction Search API (topic
``api:transaction``) with an OAuth2 token got from the app's client id and secret.
"""
from __future__ import annotations

import base64
import binascii
import functools
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, SignatureError, Stream, WebhookRequest, Window, aware_time,
                           json_object)
from hub.hookspecs import hookimpl
from hub.paginators import PageNumber, field_at
from hub.sync import NotSyncable

TRANSMISSION_ID = "PAYPAL-TRANSMISSION-ID"
TRANSMISSION_TIME = "PAYPAL-TRANSMISSION-TIME"
TRANSMISSION_SIG = "PAYPAL-TRANSMISSION-SIG"
CERT_URL = "PAYPAL-CERT-URL"
AUTH_ALGO = "PAYPAL-AUTH-ALGO"
ALGORITHM = "SHA256withRSA"
#: the only hosts a signing certificate is fetched from (live and sandbox REST API hosts)
CERT_HOSTS = frozenset({"api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com",
                        "api-m.sandbox.paypal.com"})
CERT_SUBJECT_SUFFIX = ".paypal.com"
DOWNLOAD_TIMEOUT = (3.05, 5)
MAX_CERT_BYTES = 64 * 1024

API_BASE = "https://api-m.paypal.com"
TOKEN_PATH = "v1/oauth2/token"
TOKEN_TIMEOUT = (3.05, 30)
PULLED_TRANSACTION = "api:transaction"
#: the longest range one Transaction Search call accepts
WINDOW = timedelta(days=31)
#: how late Transaction Search may list a transaction, and how long it keeps them
LATE = timedelta(hours=3)
HISTORY_DAYS = 3 * 365
PAGE_SIZE = 500
#: https://developer.paypal.com/docs/transaction-search/transaction-event-codes/ : T00nn are
#: PayPal-account payments (received when positive), T1107 a refund made by the merchant
PAYMENT_CODES = "T00"
REFUND_CODE = "T1107"
#: S: completed; V: completed, then refunded in full (the refund is a transaction of its own)
PAID_STATUSES = ("S", "V")


class PayPalSettings(ConnectorSettingsSchema):
    """``connectors.paypal``: the webhook id (part of the signed string) and API credentials."""

    webhook_id = fields.String(required=True, validate=validate.Length(min=1))
    client_id = fields.String(load_default=None, allow_none=True)
    client_secret = fields.String(load_default=None, allow_none=True)
    #: how far back a first pull goes (Transaction Search keeps three years)
    backfill_days = fields.Integer(load_default=HISTORY_DAYS, validate=validate.Range(min=1, max=HISTORY_DAYS))


class PayPal(Connector):
    """``POST /webhooks/paypal``: one PayPal webhook event per request, one inbox record."""

    name = "paypal"
    settings_schema = PayPalSettings
    kept_headers = ("paypal-transmission-id", "paypal-transmission-time", "paypal-cert-url",
                    "paypal-auth-algo")

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The stored event, its ``resource`` given ``_derived``: what the mapping cannot compute.

        ``capture_id`` (the capture a refund returns, named only in its ``up`` link) and
        ``line_items_count`` (the items of an order's purchase units). A pulled transaction
        gets its own ``_derived``: see :func:`transaction_facts`.
        """
        event = super().parse(body, topic)
        if topic == PULLED_TRANSACTION and isinstance(event, dict):
            event["_derived"] = transaction_facts(event)
            return event
        resource = event.get("resource") if isinstance(event, dict) else None
        if isinstance(resource, dict):
            resource["_derived"] = derived(resource)
        return event

    def streams(self, settings: Mapping) -> list[Stream]:
        """Transactions, all fields, 500 a page by ``page``/``total_pages``, range by range.

        Transaction Search has no "changed since" filter and refuses ranges over 31 days, so the
        stream walks 31-day ranges: from ``backfill_days`` ago on a first run, then from where
        the last run ended less three hours (PayPal lists a transaction up to three hours late).
        Versions already stored are not stored again.
        https://developer.paypal.com/docs/api/transaction-search/v1/
        """
        missing = [name for name in ("client_id", "client_secret") if not settings.get(name)]
        if missing:
            raise NotSyncable(f"connector {self.name!r} needs {' and '.join(missing)} (a REST app's credentials) "
                              "in its configuration to pull from the PayPal API")
        ranges = Window("start_date", "end_date", WINDOW, timedelta(days=settings["backfill_days"]), LATE)
        return [Stream("transactions", "v1/reporting/transactions", "transaction_info.transaction_id",
                       PageNumber(total_pages_header=None, total_pages_field="total_pages"), PULLED_TRANSACTION,
                       records_path="transaction_details", cursor_field="transaction_info.transaction_updated_date",
                       params={"fields": "all", "page_size": PAGE_SIZE}, window=ranges)]

    def api_base(self, settings: Mapping) -> str:
        """``https://api-m.paypal.com`` unless ``api_base`` is set (``https://api-m.sandbox.paypal.com``)."""
        return super().api_base(settings) or API_BASE

    def http_session(self, settings: Mapping) -> requests.Session:
        """A session sending the access token of a client-credentials grant as ``Bearer``.

        The token comes from ``POST /v1/oauth2/token`` with the app's client id and secret in
        HTTP Basic; it lasts hours, longer than a run. https://developer.paypal.com/api/rest/authentication/
        """
        session = super().http_session(settings)
        url = f"{self.api_base(settings).rstrip('/')}/{TOKEN_PATH}"
        try:
            response = session.post(url, data={"grant_type": "client_credentials"}, timeout=TOKEN_TIMEOUT,
                                    auth=(settings["client_id"], settings["client_secret"]))
            answer = response.json() if response.status_code == 200 else {}
        except (requests.RequestException, ValueError) as exc:
            session.close()
            raise NotSyncable(f"connector {self.name!r} got no access token: POST {url} failed "
                              f"({type(exc).__name__})") from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            session.close()
            raise NotSyncable(f"connector {self.name!r} got no access token: POST {url} answered "
                              f"{response.status_code} {response.reason or ''}".rstrip())
        session.headers["Authorization"] = f"Bearer {token}"
        return session

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Verify ``PAYPAL-TRANSMISSION-SIG`` with PayPal's certificate (offline self-verification)."""
        names = (TRANSMISSION_ID, TRANSMISSION_TIME, TRANSMISSION_SIG, CERT_URL, AUTH_ALGO)
        values = [request.header(name) for name in names]
        missing = [name for name, value in zip(names, values) if not value]
        if missing:
            raise SignatureError(f"missing {', '.join(missing)} header{'s' if len(missing) > 1 else ''}")
        transmission_id, transmission_time, sig, cert_url, algorithm = values
        if algorithm.strip().lower() != ALGORITHM.lower():
            raise SignatureError(f"{AUTH_ALGO} must be {ALGORITHM}")
        if not is_paypal_cert_url(cert_url):
            raise SignatureError(f"{CERT_URL} is not a PayPal certificate URL")
        try:
            decoded = base64.b64decode(sig.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(f"{TRANSMISSION_SIG} is not base64") from None
        key = _public_key(cert_url)
        message = signed_string(transmission_id, transmission_time, settings["webhook_id"], request.body)
        try:
            key.verify(decoded, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise SignatureError(f"{TRANSMISSION_SIG} does not match") from None

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """One delivery keyed by the event ``id``; topic ``event_type``; time ``create_time``."""
        event = json_object(request.body)
        key, topic = event.get("id"), event.get("event_type")
        if not isinstance(key, str) or not key:
            raise PayloadError("event has no id")
        if not isinstance(topic, str) or not topic:
            raise PayloadError("event has no event_type")
        return [Delivery(key=key[:255], body=request.body, topic=topic[:255],
                         occurred_at=aware_time(event.get("create_time")))]


def derived(resource: dict) -> dict:
    """What the mapping reads under ``resource._derived`` for one order, capture or refund."""
    units = resource.get("purchase_units")
    count = None
    if isinstance(units, list):
        count = sum(len(unit["items"]) for unit in units
                    if isinstance(unit, dict) and isinstance(unit.get("items"), list))
    found = {"capture_id": refunded_capture(resource.get("links")), "line_items_count": count}
    return {name: value for name, value in found.items() if value is not None}


def transaction_facts(detail: dict) -> dict:
    """What the mapping reads under ``_derived`` for one pulled transaction.

    ``kind`` is ``payment`` for a completed payment received, ``refund`` for a completed
    refund to a buyer, else absent (fees, transfers, payments sent, pending or denied ones).
    ``amount`` is its amount without sign (a refund's is negative in the report). ``capture_id``
    is the capture a payment is, or a refund returns (its ``TXN`` reference); ``order_id`` an
    ``ODR`` reference. ``buyer`` is a payment's ``payer_info``, never a refund's: nothing says
    that one is the buyer (the refund webhook's payer is the merchant).
    """
    info = detail.get("transaction_info")
    info = info if isinstance(info, dict) else {}
    code, status = str(info.get("transaction_event_code") or ""), info.get("transaction_status")
    reference, reference_type = info.get("paypal_reference_id"), info.get("paypal_reference_id_type")
    try:
        amount = Decimal(str(field_at(info, "transaction_amount.value")))
    except InvalidOperation:
        return {}
    if not amount.is_finite():
        return {}
    found = {"order_id": reference if reference_type == "ODR" else None}
    if code.startswith(PAYMENT_CODES) and amount > 0 and status in PAID_STATUSES:
        found.update(kind="payment", capture_id=info.get("transaction_id"), buyer=detail.get("payer_info"))
    elif code == REFUND_CODE and amount < 0 and status == "S":
        found.update(kind="refund", capture_id=reference if reference_type == "TXN" else None)
    if "kind" in found:
        found["amount"] = str(abs(amount))
    return {name: value for name, value in found.items() if value is not None}


def refunded_capture(links: Any) -> str | None:
    """The capture id in a refund's ``up`` link (``.../v2/payments/captures/<id>``), else None."""
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("rel") == "up" and isinstance(link.get("href"), str):
            parts = urlsplit(link["href"]).path.rstrip("/").split("/")
            if len(parts) >= 3 and parts[-2] == "captures" and parts[-1]:
                return parts[-1]
    return None


def signed_string(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    """What PayPal signs: ``id|time|webhook_id|crc32(body)``, the CRC as an unsigned decimal."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}".encode()


def is_paypal_cert_url(url: str) -> bool:
    """True only for ``https://<PayPal API host>[:443]/...`` with nothing unusual in it."""
    if not url.isascii() or not url.isprintable() or " " in url or "\\" in url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    netloc = parts.netloc.lower()
    host = netloc[:-4] if netloc.endswith(":443") else netloc
    return parts.scheme == "https" and host in CERT_HOSTS and parts.path.startswith("/")


def _public_key(url: str) -> rsa.RSAPublicKey:
    """The RSA key of the certificate at ``url``, checked to be a current PayPal certificate."""
    try:
        certificate = fetch_certificate(url)
    except (requests.RequestException, ValueError):
        raise SignatureError("could not fetch the PayPal certificate") from None
    now = datetime.now(timezone.utc)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SignatureError("the PayPal certificate is expired or not yet valid")
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or not str(names[0].value).lower().endswith(CERT_SUBJECT_SUFFIX):
        raise SignatureError("the certificate at PAYPAL-CERT-URL is not issued to PayPal")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("the PayPal certificate does not hold an RSA key")
    return key


@functools.lru_cache(maxsize=32)
def fetch_certificate(url: str) -> x509.Certificate:
    """Download and parse the first (leaf) PEM certificate at ``url``; raise on any failure."""
    with requests.get(url, timeout=DOWNLOAD_TIMEOUT, allow_redirects=False, stream=True) as response:
        if response.status_code != 200:
            raise ValueError(f"certificate download answered {response.status_code}")
        data = b""
        for chunk in response.iter_content(chunk_size=8192):
            data += chunk
            if len(data) > MAX_CERT_BYTES:
                raise ValueError("certificate download too large")
    return x509.load_pem_x509_certificates(data)[0]



@hookimpl
def register_connectors():
    return [PayPal()]
