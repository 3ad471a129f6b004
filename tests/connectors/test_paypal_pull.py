"""``hub sync paypal``: the account's transactions from the Transaction Search API.

``responses`` fakes PayPal in its documented shape: the client-credentials token at
``POST /v1/oauth2/token``, then ``GET /v1/reporting/transactions`` (``transaction_details``,
``page``, ``total_pages``, at most 31 days per call). The end-to-end tests process the pulled
transactions into profiles and compare them with what the capture and refund webhooks make.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
import requests

from connectors import paypal
from hub import sync
from hub.paginators import PageNumber
from hub.sync import NotSyncable, SyncError
from tests.conftest import profiles_snapshot as store
from tests.conftest import inbox_rows, settle
from tests.connectors.test_paypal import (  # noqa: F401  (pytest fixtures used by name)
    WEBHOOK_ID, fixture_body, fresh_certificate_cache, paypal_api, paypal_headers, post)
from tests.connectors.test_zendesk_pull import pulling
from tests.mappings.test_paypal import (APPROVED, BUYER, CAPTURE, PLACED, REFS, REFUND, REFUNDED,
                                        REFUNDED_ACTIVITY, SUCCEEDED, buyer_traits, money)
from tests.test_sync import urls

BASE = "https://api-m.paypal.com"
TOKEN_URL = f"{BASE}/v1/oauth2/token"
TRANSACTIONS = f"{BASE}/v1/reporting/transactions"
CLIENT_ID = "AcK3vT9pZx2QmR7sLw4YbN8dF1gH6jE0uV5cX3zBqW8eR2tY6uI0oP4aS7dF"
CLIENT_SECRET = "EJ7qW2eR9tY4uI1oP6aS3dF8gH5jK0lZ2xC7vB4nM9qW1eR6tY3uI8oP5aS2"
SETTINGS = {"enabled": True, "webhook_id": WEBHOOK_ID, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "backfill_days": 31}
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
ACCESS_TOKEN = "A21AAKx9Qm3Zr7Tw2Yb5Nd8Fg1Hj4Kl6Pq0Ws2Ed4Rf6Tg8Yh0Uj2Ik4Ol6Pz8Xc0Vb2Nm4Qa6Sd8Fg0"
NOW = datetime(2024, 5, 10, 8, 30, tzinfo=timezone.utc)
MARIE_CAPTURE = "2GG279541U471931P"
MARIE_ORDER = "7XA93410KL0284512"


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> list[datetime]:
    """The time a run takes as now (``clock[0]``); pages of 2 transactions, as in the fixtures."""
    moments = [NOW]
    monkeypatch.setattr(sync, "now", lambda: moments[0])
    monkeypatch.setattr(paypal, "PAGE_SIZE", 2)
    return moments


@pytest.fixture
def api(paypal_api):
    """PayPal's API (and its certificate host for the webhooks), faked by ``responses``."""
    return paypal_api


def serve_token(api, status: int = 200) -> None:
    if status != 200:
        api.post(TOKEN_URL, status=status,
                 json={"error": "invalid_client", "error_description": "Client Authentication failed"})
        return
    api.post(TOKEN_URL, json={
        "scope": "https://uri.paypal.com/services/reporting/search/read "
                 "https://uri.paypal.com/services/payments/refund",
        "access_token": ACCESS_TOKEN, "token_type": "Bearer", "app_id": "APP-80W284485P519543T",
        "expires_in": 32400, "nonce": "2024-05-10T08:30:00ZWq8nK4vXe2mB7tL1yR9cH3sD6fG0jP5aZ"})


def window(page: int, end: datetime = NOW, start: datetime | None = None) -> str:
    """A Transaction Search call: from ``start`` (31 days before ``end``) to ``end``, every field, 2 a page."""
    start = end - timedelta(days=31) if start is None else start
    query = {"fields": "all", "page_size": 2, "start_date": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "end_date": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "page": page}
    return f"{TRANSACTIONS}?{urlencode(query)}"


def page(name: str) -> dict:
    """A recorded Transaction Search page (``tests/fixtures/paypal/<name>.json``)."""
    return json.loads(fixture_body(name))


def serve(api, end: datetime = NOW) -> None:
    api.get(window(1, end), json=page("pull_transactions_1"))
    api.get(window(2, end), json=page("pull_transactions_2"))


def key(transaction: str, updated: str) -> str:
    return f"pull:transactions:{transaction}:{updated}"


KEYS = [key(CAPTURE, "2024-05-03T09:15:38+0000"), key(MARIE_CAPTURE, "2024-05-02T16:41:09+0200"),
        key(REFUND, "2024-05-03T09:15:38+0000"), key("4WB90276TS395613E", "2024-05-04T07:00:12+0000")]


@pytest.fixture
def pull(make_app, api):
    return pulling(make_app, "paypal", SETTINGS)


@pytest.fixture
def hub(make_app, api):
    return pulling(make_app, "paypal", SETTINGS, process=True)


# -- the API calls ---------------------------------------------------------------------------

def test_a_token_then_every_page_up_to_total_pages(pull, api):
    serve_token(api)
    serve(api)
    assert pull.run() == {"transactions": 4}
    assert urls(api) == [TOKEN_URL, window(1), window(2)]
    token_call = api.calls[0].request
    assert (token_call.headers["Authorization"], token_call.body) == (BASIC, "grant_type=client_credentials")
    assert [call.request.headers["Authorization"] for call in api.calls[1:]] == [f"Bearer {ACCESS_TOKEN}"] * 2
    assert pull.keys() == KEYS
    assert pull.topics() == ["api:transaction"] * 4
    assert json.loads(inbox_rows(pull.app)[0][2]) == page("pull_transactions_1")["transaction_details"][0]
    assert (pull.state("transactions"), pull.sleeps) == (
        {"cursor": "2024-05-04T07:00:12+0000", "done": "2024-05-10T08:30:00+00:00"}, [])


def test_a_run_starts_three_hours_before_the_last_run_ended_and_stores_only_new_versions(pull, api, clock):
    """Transaction Search has no "changed since" filter: ranges overlap by 3 hours, the inbox dedupes."""
    serve_token(api)
    serve(api)
    pull.run()
    clock[0] = NOW + timedelta(days=1)
    serve_token(api)
    newer = dict(page("pull_transactions_2")["transaction_details"][1])
    newer["transaction_info"] = {**newer["transaction_info"], "transaction_id": "6RT44017LA8875027",
                                 "transaction_updated_date": "2024-05-11T06:00:00+0000"}
    later = {**page("pull_transactions_2"), "page": 1, "total_items": 2, "total_pages": 1,
             "transaction_details": [page("pull_transactions_2")["transaction_details"][0], newer]}
    since = NOW - timedelta(hours=3)
    api.get(window(1, clock[0], since), json=later)
    assert pull.run() == {"transactions": 1}  # the refund comes again, unchanged: stored once
    assert urls(api)[3:] == [TOKEN_URL, window(1, clock[0], since)]
    assert "start_date=2024-05-10T05%3A30%3A00Z&end_date=2024-05-11T08%3A30%3A00Z" in window(1, clock[0], since)
    assert pull.keys() == KEYS + [key("6RT44017LA8875027", "2024-05-11T06:00:00+0000")]
    assert pull.state("transactions") == {"cursor": "2024-05-11T06:00:00+0000", "done": "2024-05-11T08:30:00+00:00"}


def test_a_first_run_walks_31_day_ranges_back_to_the_backfill(make_app, api):
    """Ranges of 31 days from ``backfill_days`` ago up to now; each range's end is stored."""
    puller = pulling(make_app, "paypal", {**SETTINGS, "backfill_days": 70})
    serve_token(api)
    empty = {**page("pull_transactions_1"), "transaction_details": [], "total_items": 0, "total_pages": 0}
    starts = [NOW - timedelta(days=70), NOW - timedelta(days=39), NOW - timedelta(days=8)]
    ends = [starts[1], starts[2], NOW]
    api.get(window(1, ends[0], starts[0]), json=empty)
    api.get(window(1, ends[1], starts[1]), json=empty)
    serve(api, NOW)
    api.get(window(1, ends[2], starts[2]), json=page("pull_transactions_1"))
    api.get(window(2, ends[2], starts[2]), json=page("pull_transactions_2"))
    assert puller.run() == {"transactions": 4}
    assert urls(api) == [TOKEN_URL] + [window(1, e, s) for s, e in zip(starts, ends)] + [window(2, NOW, starts[2])]
    assert puller.state("transactions") == {"cursor": "2024-05-04T07:00:12+0000", "done": "2024-05-10T08:30:00+00:00"}


def test_429_waits_for_retry_after_and_a_500_is_retried(pull, api):
    serve_token(api)
    api.get(window(1), status=429, headers={"Retry-After": "2"},
            json={"name": "RATE_LIMIT_REACHED", "message": "Too many requests. Blocked due to rate limiting."})
    api.get(window(1), status=500, json={"name": "INTERNAL_SERVER_ERROR", "debug_id": "90957fca61718"})
    serve(api)
    assert pull.run() == {"transactions": 4}
    assert pull.sleeps == [2.0, 1.0]  # Retry-After, then backoff 0.5 * 2


def test_a_run_cut_after_page_one_resumes_at_page_two_of_its_own_window(pull, api, clock):
    serve_token(api)
    api.get(window(1), json=page("pull_transactions_1"))
    api.get(window(2), body=requests.ConnectionError("connection reset by peer"))
    with pytest.raises(SyncError) as raised:
        pull.run(retries=0)
    assert raised.value.errors == {
        "transactions": f"GET {TRANSACTIONS} failed after 1 attempts (last: ConnectionError)"}
    assert raised.value.stored == {"transactions": 2}
    api.reset()
    clock[0] = NOW + timedelta(hours=5)  # the rerun finishes the cut run's range first
    serve_token(api)
    api.get(window(2), json=page("pull_transactions_2"))
    since, until = NOW - timedelta(hours=3), clock[0]
    api.get(window(1, until, since), json={**page("pull_transactions_1"), "transaction_details": [],
                                           "total_items": 0, "total_pages": 0})
    assert pull.run() == {"transactions": 2}
    assert urls(api) == [TOKEN_URL, window(2), window(1, until, since)]  # then on from 3 hours before its end
    assert pull.keys() == KEYS
    assert pull.state("transactions") == {"cursor": "2024-05-04T07:00:12+0000", "done": "2024-05-10T13:30:00+00:00"}


def test_refused_credentials_stop_before_any_search_without_showing_them(pull, api):
    serve_token(api, status=401)
    with pytest.raises(NotSyncable) as raised:
        pull.run()
    assert str(raised.value) == f"connector 'paypal' got no access token: POST {TOKEN_URL} answered 401 Unauthorized"
    assert CLIENT_SECRET not in str(raised.value) and CLIENT_ID not in str(raised.value)
    assert (urls(api), pull.keys()) == ([TOKEN_URL], [])


def test_an_app_without_transaction_search_stops_the_stream_without_showing_the_token(pull, api):
    serve_token(api)
    api.get(window(1), status=403, json={"name": "NOT_AUTHORIZED", "debug_id": "b8f1e2a3c4d5",
                                         "message": "Authorization failed due to insufficient permissions."})
    with pytest.raises(SyncError) as raised:
        pull.run()
    assert raised.value.errors == {"transactions": f"GET {TRANSACTIONS} answered 403 Forbidden"}
    assert ACCESS_TOKEN not in str(raised.value) and CLIENT_SECRET not in str(raised.value)


@pytest.mark.parametrize("settings, missing", [
    ({}, "client_id and client_secret"), ({"client_id": CLIENT_ID}, "client_secret")])
def test_missing_credentials_are_named_before_any_call(make_app, api, settings, missing):
    with pytest.raises(NotSyncable) as raised:
        pulling(make_app, "paypal", {"enabled": True, "webhook_id": WEBHOOK_ID, **settings}).run()
    assert str(raised.value) == (f"connector 'paypal' needs {missing} (a REST app's credentials) in its "
                                 "configuration to pull from the PayPal API")
    assert urls(api) == []


def test_the_sandbox_is_an_api_base(make_app, api):
    sandbox = "https://api-m.sandbox.paypal.com"
    puller = pulling(make_app, "paypal", {**SETTINGS, "api_base": sandbox})
    assert puller.hub.connector("paypal")[0].api_base(SETTINGS) == BASE
    api.post(f"{sandbox}/v1/oauth2/token", json={"access_token": ACCESS_TOKEN, "token_type": "Bearer"})
    api.get(window(1).replace(BASE, sandbox), json={**page("pull_transactions_1"), "transaction_details": [],
                                                    "total_items": 0, "total_pages": 0})
    assert puller.run() == {"transactions": 0}


@pytest.mark.parametrize("total, page_number, following", [(2, 1, 2), (2, 2, None), (None, 1, 2), (7, 7, None)])
def test_page_number_can_stop_at_a_total_pages_field_of_the_body(total, page_number, following):
    paginator = PageNumber(total_pages_header=None, total_pages_field="total_pages")
    answer = paginator.next(TRANSACTIONS, {"page": page_number}, None, {"total_pages": total}, [{"id": 1}])
    assert answer == (None if following is None else (TRANSACTIONS, {"page": following}))
    assert paginator.next(TRANSACTIONS, {"page": 1}, None, {"total_pages": 2}, []) is None


def transaction(code: str, value: str, status: str = "S") -> dict:
    return {"transaction_info": {"transaction_id": "5AB01234CD5678901", "transaction_event_code": code,
                                 "transaction_amount": {"currency_code": "USD", "value": value},
                                 "transaction_status": status}, "payer_info": {"email_address": "x@example.com"}}


@pytest.mark.parametrize("code, value, status, kind", [
    ("T0006", "20.00", "S", "payment"), ("T0006", "20.00", "V", "payment"), ("T0006", "20.00", "P", None),
    ("T0006", "20.00", "D", None), ("T0003", "-78.00", "S", None), ("T1107", "-5.00", "S", "refund"),
    ("T1107", "-5.00", "P", None), ("T0400", "-100.00", "S", None), ("T0006", "not money", "S", None)])
def test_only_completed_payments_received_and_refunds_are_activities(code, value, status, kind):
    assert paypal.transaction_facts(transaction(code, value, status)).get("kind") == kind


# -- end to end: pulled transactions in profiles ----------------------------------------------------

JOHN_SEEN = "2024-05-03T09:15:38+00:00"  # the capture's last change: its refund
PULLED_PAYMENT = (*SUCCEEDED[:4], {key: value for key, value in SUCCEEDED[4].items() if key != "order_id"})
PULLED_REFUND = (*REFUNDED_ACTIVITY[:4], {key: value for key, value in REFUNDED_ACTIVITY[4].items() if key != "reason"})
MARIE_AT = "2024-05-02T14:41:07+00:00"
MARIE_SEEN = "2024-05-02T14:41:09+00:00"
MARIE = {
    "identities": [("email", "marie.dupont@example.fr", "paypal"), ("paypal_capture_ref", MARIE_CAPTURE, "paypal"),
                   ("paypal_order_ref", MARIE_ORDER, "paypal")],
    "traits": {name: (value, "paypal", MARIE_SEEN) for name, value in (
        ("email", "marie.dupont@example.fr"), ("first_name", "Marie"), ("last_name", "Dupont"), ("country", "FR"))},
    "timeline": [("payment.succeeded", "paypal", MARIE_CAPTURE, MARIE_AT, {
        "capture_id": MARIE_CAPTURE, "order_id": MARIE_ORDER, "amount": "35.50", "currency": "EUR",
        "invoice_id": "INV-1002", "custom_id": "order-1002"})],
    "metrics": money(payments_count=1, total_paid={"EUR": "35.50"}, first_seen_at=MARIE_AT, last_seen_at=MARIE_AT),
}


def pull_all(hub, api) -> None:
    serve_token(api)
    serve(api)
    hub.run()
    settle(hub.app)


def deliver(app, *names: str) -> None:
    for name in names:
        body = fixture_body(name)
        assert post(app.test_client(), body, paypal_headers(body)).status_code == 202
    settle(app)


def test_pulled_transactions_are_buyers_with_their_payments_and_refunds(hub, api, db_engine):
    """A payment's payer is its buyer; the refund joins it through its capture; a withdrawal is no one's."""
    pull_all(hub, api)
    john = {"identities": [("email", "buyer@example.com", "paypal"), ("paypal_capture_ref", CAPTURE, "paypal")],
            "traits": buyer_traits(JOHN_SEEN), "timeline": [PULLED_REFUND, PULLED_PAYMENT],
            "metrics": money(payments_count=1, total_paid={"USD": "0.00"}, first_seen_at=SUCCEEDED[3],
                             last_seen_at=REFUNDED)}
    assert store(db_engine) == sorted([john, MARIE], key=repr)


@pytest.mark.parametrize("webhooks_first", [True, False])
def test_a_payment_seen_by_webhook_and_by_pull_is_one_activity(hub, api, db_engine, webhooks_first):
    """Same capture and refund ids: counted once. Each activity keeps what came first (the report
    has no order id for this capture and no refund note)."""
    webhooks = ("checkout_order_approved", "payment_capture_completed", "payment_capture_refunded")
    if webhooks_first:
        deliver(hub.app, *webhooks)
    pull_all(hub, api)
    if not webhooks_first:
        deliver(hub.app, *webhooks)
    john = {"identities": sorted(BUYER + REFS), "traits": buyer_traits(JOHN_SEEN),  # the newest: the pull's
            "timeline": [PLACED, REFUNDED_ACTIVITY, SUCCEEDED] if webhooks_first else [PLACED, PULLED_REFUND,
                                                                                         PULLED_PAYMENT],
            "metrics": money(orders_count=1, total_spent={"USD": "20.00"}, currency="USD", last_order_at=APPROVED,
                             payments_count=1, total_paid={"USD": "0.00"}, first_seen_at=APPROVED,
                             last_seen_at=REFUNDED)}
    assert store(db_engine) == sorted([john, MARIE], key=repr)
