"""The Mailchimp connector: a secret URL key, a validator GET, form bodies stored as JSON.

Mailchimp signs nothing and its SDK (mailchimp-marketing) only manages webhooks, so the
requests are built here exactly as Mailchimp sends them: URL-encoded forms with bracket
keys (``data%5Bmerges%5D%5BFNAME%5D=...``) posted to the URL that carries ``?key=``.
"""
import hashlib
import json
from datetime import datetime, timezone
from urllib.parse import urlencode

import pytest

from hub.config import ConfigError
from tests.conftest import inbox_rows as stored

KEY = "mc-hook-key-7f3a9c2e5b"

SUBSCRIBE = [
    ("type", "subscribe"), ("fired_at", "2009-03-26 21:35:57"),
    ("data[id]", "8a25ff1d98"), ("data[list_id]", "a6b5da1054"), ("data[email]", "api@mailchimp.com"),
    ("data[email_type]", "html"), ("data[merges][EMAIL]", "api@mailchimp.com"),
    ("data[merges][FNAME]", "Mailchimp"), ("data[merges][LNAME]", "API"),
    ("data[merges][INTERESTS]", "Group1,Group2"), ("data[ip_opt]", "10.20.10.30"),
    ("data[ip_signup]", "10.20.10.30"),
]
SUBSCRIBE_JSON = {
    "type": "subscribe", "fired_at": "2009-03-26 21:35:57",
    "data": {"id": "8a25ff1d98", "list_id": "a6b5da1054", "email": "api@mailchimp.com", "email_type": "html",
             "merges": {"EMAIL": "api@mailchimp.com", "FNAME": "Mailchimp", "LNAME": "API",
                        "INTERESTS": "Group1,Group2"},
             "ip_opt": "10.20.10.30", "ip_signup": "10.20.10.30"},
}
UNSUBSCRIBE = [
    ("type", "unsubscribe"), ("fired_at", "2009-03-26 21:40:57"), ("data[action]", "unsub"),
    ("data[reason]", "manual"), ("data[id]", "8a25ff1d98"), ("data[list_id]", "a6b5da1054"),
    ("data[email]", "api+unsub@mailchimp.com"), ("data[email_type]", "html"),
    ("data[merges][EMAIL]", "api+unsub@mailchimp.com"), ("data[merges][FNAME]", "Mailchimp"),
    ("data[merges][LNAME]", "API"), ("data[ip_opt]", "10.20.10.30"), ("data[campaign_id]", "cb398d21d2"),
]
PROFILE = [
    ("type", "profile"), ("fired_at", "2009-03-26 21:31:21"), ("data[id]", "8a25ff1d98"),
    ("data[list_id]", "a6b5da1054"), ("data[email]", "api@mailchimp.com"), ("data[email_type]", "html"),
    ("data[merges][EMAIL]", "api@mailchimp.com"), ("data[merges][FNAME]", "Mailchimp"),
    ("data[merges][LNAME]", "API"), ("data[merges][INTERESTS]", "Group1,Group2"),
    ("data[ip_opt]", "10.20.10.30"),
]
UPEMAIL = [
    ("type", "upemail"), ("fired_at", "2009-03-26 22:15:09"), ("data[list_id]", "a6b5da1054"),
    ("data[new_id]", "51da8c3259"), ("data[new_email]", "api+new@mailchimp.com"),
    ("data[old_email]", "api+old@mailchimp.com"),
]
CLEANED = [
    ("type", "cleaned"), ("fired_at", "2009-03-26 22:01:00"), ("data[list_id]", "a6b5da1054"),
    ("data[campaign_id]", "4fjk2ma9xd"), ("data[reason]", "hard"), ("data[email]", "api+cleaned@mailchimp.com"),
]
CAMPAIGN = [
    ("type", "campaign"), ("fired_at", "2009-03-26 21:31:21"), ("data[id]", "5aa2102003"),
    ("data[subject]", "Test Campaign Subject"), ("data[status]", "sent"), ("data[reason]", ""),
    ("data[list_id]", "a6b5da1054"),
]


@pytest.fixture
def make_mailchimp(make_app):
    def factory(**settings):
        app = make_app(connectors={"echo": {"enabled": False},
                                   "mailchimp": {"enabled": True, "webhook_key": KEY, **settings}},
                       plugins=["tests.plugins.echo", "connectors.mailchimp"])
        app.extensions["tributary"].queue.signal_drain = lambda: False
        return app

    return factory


@pytest.fixture
def app(make_mailchimp):
    return make_mailchimp()


def post(client, fields, key=KEY, body=None):
    """POST a notification the way Mailchimp does: a form body, the key in the query string."""
    query = "" if key is None else "?" + urlencode({"key": key})
    data = body if body is not None else urlencode(fields).encode()
    return client.post(f"/webhooks/mailchimp{query}", data=data, content_type="application/x-www-form-urlencoded",
                       headers={"User-Agent": "MailChimp.com"})


def canonical(notification: dict) -> bytes:
    return json.dumps(notification, sort_keys=True, separators=(",", ":")).encode()


def test_a_subscribe_becomes_one_record_with_the_nested_form_as_json(app):
    body = urlencode(SUBSCRIBE).encode()
    assert body.startswith(b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bid%5D=8a25ff1d98")
    response = post(app.test_client(), SUBSCRIBE)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 0}
    expected = canonical(SUBSCRIBE_JSON)
    assert stored(app) == [(hashlib.sha256(expected).hexdigest(), "subscribe", expected,
                            datetime(2009, 3, 26, 21, 35, 57, tzinfo=timezone.utc), {})]


def test_a_retried_notification_is_a_duplicate_even_with_fields_reordered(app):
    client = app.test_client()
    assert post(client, SUBSCRIBE).status_code == 202
    again = post(client, SUBSCRIBE)
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 1}
    assert post(client, list(reversed(SUBSCRIBE))).status_code == 200
    changed = [(k, "Mailchimp2" if k == "data[merges][FNAME]" else v) for k, v in SUBSCRIBE]
    assert post(client, changed).status_code == 202
    assert [row[1] for row in stored(app)] == ["subscribe", "subscribe"]


def test_every_documented_type_is_accepted_with_its_topic_and_time(app):
    client = app.test_client()
    for fields in (UNSUBSCRIBE, PROFILE, UPEMAIL, CLEANED, CAMPAIGN):
        assert post(client, fields).status_code == 202
    rows = stored(app)
    assert [(topic, occurred_at) for _, topic, _, occurred_at, _ in rows] == [
        ("unsubscribe", datetime(2009, 3, 26, 21, 40, 57, tzinfo=timezone.utc)),
        ("profile", datetime(2009, 3, 26, 21, 31, 21, tzinfo=timezone.utc)),
        ("upemail", datetime(2009, 3, 26, 22, 15, 9, tzinfo=timezone.utc)),
        ("cleaned", datetime(2009, 3, 26, 22, 1, tzinfo=timezone.utc)),
        ("campaign", datetime(2009, 3, 26, 21, 31, 21, tzinfo=timezone.utc)),
    ]
    assert json.loads(rows[0][2])["data"] == {
        "action": "unsub", "reason": "manual", "id": "8a25ff1d98", "list_id": "a6b5da1054",
        "email": "api+unsub@mailchimp.com", "email_type": "html", "ip_opt": "10.20.10.30",
        "campaign_id": "cb398d21d2",
        "merges": {"EMAIL": "api+unsub@mailchimp.com", "FNAME": "Mailchimp", "LNAME": "API"}}
    assert json.loads(rows[2][2]) == {"type": "upemail", "fired_at": "2009-03-26 22:15:09", "data": {
        "list_id": "a6b5da1054", "new_id": "51da8c3259", "new_email": "api+new@mailchimp.com",
        "old_email": "api+old@mailchimp.com"}}
    assert json.loads(rows[4][2])["data"]["reason"] == ""
    assert all(key == hashlib.sha256(body).hexdigest() for key, _, body, _, _ in rows)


def test_the_validator_get_needs_the_key_and_gets_an_empty_200(app):
    client = app.test_client()
    headers = {"User-Agent": "MailChimp.com WebHook Validator"}
    ok = client.get(f"/webhooks/mailchimp?key={KEY}", headers=headers)
    assert (ok.status_code, ok.data) == (200, b"")
    for url in ("/webhooks/mailchimp?key=wrong-key-1234567", "/webhooks/mailchimp"):
        refused = client.get(url, headers=headers)
        assert (refused.status_code, refused.data) == (401, b"")
    assert stored(app) == []


def test_a_missing_or_wrong_key_is_401_and_stores_nothing(app):
    client = app.test_client()
    for key in (None, "", "mc-hook-key-7f3a9c2e5c", KEY + "x"):
        response = post(client, SUBSCRIBE, key=key)
        assert response.status_code == 401
        assert response.get_json() == {"error": {"code": "bad_signature",
                                                 "message": "missing or wrong key query parameter"}}
    assert KEY not in post(client, SUBSCRIBE, key="nope").get_data(as_text=True)
    assert stored(app) == []


def test_only_post_carries_notifications(app):
    response = app.test_client().put(f"/webhooks/mailchimp?key={KEY}", data=urlencode(SUBSCRIBE))
    assert response.status_code == 405
    assert stored(app) == []


@pytest.mark.parametrize("body, message", [
    (b"\xff\xfe\x00garbage", "body is not a URL-encoded form"),
    (b"type=subscribe&&&", "body is not a URL-encoded form"),
    (b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data=x&data%5Bid%5D=1",
     "form field 'data' is both a value and a group"),
    (b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5B%5D=1",
     "form field 'data[]' is not a name with [bracket] parts"),
    (b"type=resubscribe&fired_at=2009-03-26+21%3A35%3A57",
     "type must be one of subscribe, unsubscribe, profile, upemail, cleaned, campaign"),
    (b'{"type": "subscribe"}', "body is not a URL-encoded form"),
    (b"", "type must be one of subscribe, unsubscribe, profile, upemail, cleaned, campaign"),
    (b"type=subscribe&fired_at=2009-03-26T21%3A35%3A57Z", "fired_at must be YYYY-MM-DD HH:MM:SS"),
    (b"type=subscribe", "fired_at must be YYYY-MM-DD HH:MM:SS"),
])
def test_unparseable_notifications_are_400(app, body, message):
    response = post(app.test_client(), None, body=body)
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_payload", "message": message}}
    assert stored(app) == []


def test_the_webhook_key_must_be_long_enough(make_app):
    with pytest.raises(ConfigError) as info:
        make_app(connectors={"mailchimp": {"enabled": True, "webhook_key": "short"}},
                 plugins=["tests.plugins.echo", "connectors.mailchimp"])
    assert info.value.problems == {
        "connectors.mailchimp.webhook_key": "must be at least 16 characters (it is the only thing guarding the URL)"}


def test_api_settings_are_optional(make_mailchimp):
    app = make_mailchimp(api_key="0123456789abcdef-us21", list_id="a6b5da1054")
    settings = app.extensions["tributary"].config.connectors["mailchimp"]
    assert (settings["api_key"], settings["list_id"]) == ("0123456789abcdef-us21", "a6b5da1054")
    assert make_mailchimp().extensions["tributary"].config.connectors["mailchimp"]["api_key"] is None
