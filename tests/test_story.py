"""One person across five platforms, through the real webhooks, signatures and mappings.

Ana buys on Shopify as ``Ana.Silva@Example.com``, pays on Stripe as ``ana.silva@example.com``,
opens a Zendesk ticket, subscribes on Mailchimp, then opens and clicks a SendGrid email.
"""
import json
from urllib.parse import urlencode

import pytest

from tests.conftest import settle
from tests.connectors import test_mailchimp as mailchimp
from tests.connectors import test_sendgrid as sendgrid
from tests.connectors import test_shopify as shopify
from tests.connectors import test_stripe as stripe
from tests.connectors import test_zendesk as zendesk
from tests.test_pipeline import snapshot

ANA = "Ana.Silva@Example.com"


@pytest.fixture
def app(make_app):
    return make_app(connectors={
        "echo": {"enabled": False},
        "shopify": {"enabled": True, "webhook_secret": shopify.SECRET},
        "stripe": {"enabled": True, "webhook_secret": stripe.SECRET, "tolerance_seconds": 10 ** 9},
        "zendesk": {"enabled": True, "webhook_secret": zendesk.SECRET},
        "mailchimp": {"enabled": True, "webhook_key": mailchimp.KEY},
        "sendgrid": {"enabled": True, "verification_key": sendgrid.PUBLIC},
    })




def compact(document) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def test_one_person_across_five_platforms_is_one_profile(app, db_engine):
    client = app.test_client()
    order = json.loads(shopify.fixture_body("orders_create"))
    order["email"] = order["contact_email"] = ANA
    order["customer"]["email"] = ANA
    body = compact(order)
    assert shopify.post(client, body, shopify.shopify_headers("orders/create", "wh-ana-1")).status_code == 202

    charge = json.loads(stripe.fixture_body("charge_succeeded"))
    charge["data"]["object"]["billing_details"]["email"] = ANA.lower()
    charge["data"]["object"]["receipt_email"] = ANA.lower()
    body = compact(charge)
    assert stripe.post(client, body, stripe.sign(body, timestamp=charge["created"])).status_code == 202

    ticket = json.loads(zendesk.fixture("trigger_ticket_updated"))
    ticket.update(topic="ticket.created", requester_email=ANA, requester_name="Ana Silva")
    assert zendesk.send(client, compact(ticket), invocation="inv-ana").status_code == 202

    subscribe = [(k, ANA.lower() if k in ("data[email]", "data[merges][EMAIL]") else v)
                 for k, v in mailchimp.SUBSCRIBE]
    assert client.post(f"/webhooks/mailchimp?{urlencode({'key': mailchimp.KEY})}", data=urlencode(subscribe),
                       content_type="application/x-www-form-urlencoded").status_code == 202

    events = [dict(e, email=ANA.lower()) for e in json.loads(sendgrid.EVENTS) if e["event"] in ("open", "click")]
    assert sendgrid.send(client, compact(events)).status_code == 202
    settle(app)

    [(identities, traits, timeline, metrics)] = snapshot(db_engine)
    assert identities == [("email", "ana.silva@example.com"), ("mailchimp_member_id", "8a25ff1d98"),
                          ("shopify_customer_id", str(order["customer"]["id"])),
                          ("stripe_customer_id", charge["data"]["object"]["customer"])]
    assert sorted(kind for kind, _, _ in timeline) == [
        "email.clicked", "email.opened", "email.subscribed", "order.placed", "payment.succeeded", "ticket.opened"]
    assert (metrics["orders_count"], metrics["total_spent"], metrics["payments_count"], metrics["total_paid"],
            metrics["open_tickets"]) == (1, {"USD": "403.00"}, 1, {"USD": "20.00"}, 1)
    assert traits["email"] == "ana.silva@example.com"
    assert traits["email_consent"] == "subscribed"
