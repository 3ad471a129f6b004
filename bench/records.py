"""Realistic inbox rows from every built-in connector, for the processing benchmark.

People (names, one or two e-mail addresses, a phone, one account per platform) act on the
platforms a real audience uses: most browse the website and get e-mail (Mailchimp, Klaviyo,
SendGrid), fewer buy (Shopify, WooCommerce), pay (Stripe, PayPal) or open tickets (Zendesk,
Freshdesk). Each request is a platform's payload from tests/fixtures (Mailchimp's form and the
website's events as their tests send them) with the person's values put in: e-mail spelled
with varying case and spaces, phones in several formats, platform ids, names, amounts,
currencies, times. It goes through the connector's own ``split()`` as the receiver would, keeping
the headers the connector keeps; signatures and credentials are left out (the receiver checks
them before ``split()`` and stores none of them).
Requests arrive interleaved and out of time order, and about 5% of them twice, as platforms
retry. Seeded: every run makes the same rows.
"""
from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import json
import math
import random
import re
import unicodedata
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

from connectors.freshdesk import Freshdesk
from connectors.klaviyo import Klaviyo
from connectors.mailchimp import Mailchimp
from connectors.paypal import PayPal
from connectors.sendgrid import SendGrid
from connectors.shopify import Shopify
from connectors.stripe import Stripe
from connectors.website import Website
from connectors.woocommerce import WooCommerce
from connectors.zendesk import Zendesk
from hub.connector import Connector, Delivery, WebhookRequest

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
CONNECTORS: dict[str, Connector] = {c.name: c for c in (
    Website(), Shopify(), WooCommerce(), Stripe(), PayPal(), Mailchimp(), Klaviyo(), SendGrid(), Zendesk(),
    Freshdesk())}
#: share of people on each platform (everyone is on at least one)
REACH = {"website": 0.85, "mailchimp": 0.4, "klaviyo": 0.35, "sendgrid": 0.45, "shopify": 0.25,
         "woocommerce": 0.15, "stripe": 0.18, "paypal": 0.1, "zendesk": 0.08, "freshdesk": 0.06}
REDELIVERED = 0.05
#: a person's requests arrive spread among those of this many other people
SPREAD = 2000.0
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)

FIRST = ("James", "Mary", "Ana", "José", "Zoë", "Liam", "Olivia", "Noah", "Emma", "Wei", "Fatima", "Lukas",
         "Chloé", "Mateo", "Aisha", "Oliver", "Sofia", "Ethan", "Léa", "Hiroshi", "Priya", "Björn")
LAST = ("Smith", "García", "Müller", "Johnson", "O'Brien", "Nguyen", "Dubois", "Rossi", "Kowalski", "Brown",
        "Martin", "Yamada", "Silva", "Schmidt", "Taylor", "Lee", "Okafor", "Jensen", "Novák", "Haddad")
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "post.example.org")
COMPANIES = ("acme", "globex", "initech", "umbrella", "hooli", "vandelay")
#: country, currency, share of people
COUNTRIES = (("US", "USD", 0.7), ("GB", "GBP", 0.1), ("DE", "EUR", 0.08), ("FR", "EUR", 0.06), ("JP", "JPY", 0.06))
AREAS = (212, 310, 312, 415, 512, 617, 206, 303)
BROWSERS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6")
PAGES = (("/", "Home"), ("/collections/running", "Running"), ("/products/trail-runner", "Trail Runner"),
         ("/products/merino-socks", "Merino socks"), ("/cart", "Your cart"),
         ("/blog/marathon-training", "Marathon training"))
REFERRERS = ("https://www.google.com/", "https://www.instagram.com/", "", "https://news.example.org/")
WOO_HOOKS = ("customer.created", "customer.updated", "order.created", "order.updated")
PAYPAL_CERT = "CERT-360caa42-fca2a594-7a8abba8"
SUBJECTS = ("Refund request", "Where is my order?", "Wrong size delivered", "Cannot log in", "Invoice copy")

ALPHABETS = {"base62": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
             "upper": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "hex": "0123456789abcdef",
             "ulid": "0123456789ABCDEFGHJKMNPQRSTVWXYZ"}
PAIRS = {name: [a + b for a in letters for b in letters] for name, letters in ALPHABETS.items()}


# -- templates ------------------------------------------------------------------------

class Hole:
    """A value left open in a template (written as JSON when rendered)."""

    def __init__(self, name: str):
        self.name = name


HOLE = re.compile(r'"\\u0000=([^\\"]+)\\u0000"|\\u0000([^\\"]+)\\u0000')
NAMED = re.compile(r"\{(\w+)\}")


class Template:
    """A payload as the platform sends it, its varying values left open; ``render`` fills them.

    ``fills`` opens the value at a path (``a.b.0.c``): a hole name, or a string with ``{name}``
    parts. ``literals`` opens every occurrence of a fixture value (an id inside URLs too). With
    ``clock`` (the payload's own unix time), every unix time moves with ``values["clock"]``,
    keeping its distance. The JSON is made once: a render is string joins.
    """

    def __init__(self, document: Any, fills: dict[str, str] | None = None, literals: dict | None = None, *,
                 clock: int | None = None, indent: int | None = None, ascii: bool = False, slashes: bool = False):
        words = {str(value): name for value, name in (literals or {}).items()}
        pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
                             + r")(?!\w)") if words else None
        found: set[str] = set()

        def open_up(node):
            if isinstance(node, dict):
                return {key: open_up(value) for key, value in node.items()}
            if isinstance(node, list):
                return [open_up(value) for value in node]
            if isinstance(node, int) and not isinstance(node, bool):
                if str(node) in words:
                    found.add(str(node))
                    return Hole(words[str(node)])
                if clock and 1_600_000_000 <= node < 1_800_000_000:
                    return Hole(f"clock{node - clock:+d}")
            if isinstance(node, str) and pattern:
                return pattern.sub(lambda m: found.add(m.group(1)) or f"\0{words[m.group(1)]}\0", node)
            return node

        document = open_up(document)
        assert found == set(words), f"not in the payload: {set(words) - found}"
        for path, spec in (fills or {}).items():
            node, *parts = document, *path.split(".")
            for part in parts:
                parent, key = node, int(part) if isinstance(node, list) else part
                node = node[key]  # a KeyError here: the path is not in the payload
            parent[key] = NAMED.sub("\0\\1\0", spec) if "{" in spec else Hole(spec)
        self.quote = json.encoder.encode_basestring_ascii if ascii else json.encoder.encode_basestring
        text = json.dumps(document, indent=indent, separators=(",", ": ") if indent else (",", ":"),
                          ensure_ascii=ascii, default=lambda hole: f"\0={hole.name}\0")
        pieces = HOLE.split(text.replace("/", "\\/") if slashes else text)
        self.texts = pieces[0::3]
        self.holes = [(whole or part, bool(whole), int(whole[5:]) if whole and whole.startswith("clock") else None)
                      for whole, part in zip(pieces[1::3], pieces[2::3])]

    def render(self, values: dict) -> str:
        """The payload with ``values`` in its holes (unix times moved to ``values["clock"]``)."""
        out = [self.texts[0]]
        for (name, whole, delta), text in zip(self.holes, self.texts[1:]):
            if delta is not None:
                out.append(str(values["clock"] + delta))
            else:
                value = values[name]
                if isinstance(value, str):
                    out.append(self.quote(value) if whole else self.quote(value)[1:-1])
                else:
                    out.append("null" if value is None else str(value))
            out.append(text)
        return "".join(out)


def fixture(name: str) -> Any:
    """A payload of tests/fixtures, parsed."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


# -- people ---------------------------------------------------------------------------

def ascii_name(name: str) -> str:
    """``Zoë`` -> ``zoe``, ``O'Brien`` -> ``obrien``: a name as it goes in an e-mail address."""
    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower())


@dataclass
class Person:
    """One person and the identifiers they use everywhere."""

    index: int
    first: str
    last: str
    email: str
    work_email: str | None
    country: str
    currency: str
    phone: str | None  # national digits
    since: datetime

    @property
    def name(self) -> str:
        """First and last name."""
        return f"{self.first} {self.last}"

    def mail(self, rng: random.Random, address: str | None = None) -> str:
        """The address as one platform happens to hold it: mostly as typed, sometimes cased or padded."""
        address = address or self.email
        roll = rng.random()
        if roll < 0.8:
            return address
        if roll < 0.9:
            local, _, domain = address.partition("@")
            return f"{local.title()}@{domain.capitalize()}"
        return f" {address}" if roll < 0.95 else f"{address.upper()} "

    def tel(self, rng: random.Random) -> str | None:
        """The phone in one of the formats people type, or None."""
        digits = self.phone
        if digits is None:
            return None
        if self.country == "US":
            a, b, c = digits[:3], digits[3:6], digits[6:]
            return rng.choice((f"+1{digits}", f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a}-{b}-{c}",
                               f"1-{a}-{b}-{c}"))
        code = {"GB": "44", "DE": "49", "FR": "33", "JP": "81"}[self.country]
        spaced = " ".join(digits[i:i + 2] for i in range(0, len(digits), 2))
        return rng.choice((f"+{code}{digits}", f"+{code} {spaced}", f"+{code} {digits[:2]} {digits[2:]}"))


def iso(moment: datetime, fraction: str = "") -> str:
    """``2026-03-02T10:15:42Z``, or with a fraction (``.123``) before the ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def shop_time(moment: datetime) -> str:
    """A shop's local time (UTC-5) with its offset, as Shopify writes it."""
    return (moment - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S-05:00")


def naive(moment: datetime, hours: int = 0) -> str:
    """WooCommerce's offset-less times: ``*_gmt`` in UTC, the others in the store's zone."""
    return (moment + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")


def unix(moment: datetime) -> int:
    """Unix seconds."""
    return int(moment.timestamp())


def money(rng: random.Random, currency: str) -> str:
    """A basket total in the currency's usual size, as a decimal string."""
    cents = rng.randrange(1500, 25000)
    return str(cents * 150 // 100) if currency == "JPY" else f"{cents // 100}.{cents % 100:02d}"


def minor(amount: str) -> int:
    """A decimal string in minor units (JPY has none)."""
    return int(amount.replace(".", ""))


# -- the population -------------------------------------------------------------------

Request = tuple[str, WebhookRequest, "int | None"]  # connector, request, index of a request it follows


class Population:
    """Makes each person's requests to every platform they use, from templates built once."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.serial = itertools.count(1)
        self.templates = templates()
        self.campaigns = [(self.code(26, "ulid"), f"Campaign {i}", f"News #{i}: new arrivals") for i in range(12)]
        self.hook_ids = itertools.count(8_350_205_582)

    # identifiers: unique, platform-shaped, deterministic
    def code(self, width: int, alphabet: str = "base62") -> str:
        """A fresh platform-style id: ``width`` characters of ``alphabet``, never the same twice."""
        pairs = PAIRS[alphabet]
        number = next(self.serial) * spreader(len(ALPHABETS[alphabet]), width) % len(ALPHABETS[alphabet]) ** width
        out = []
        for _ in range((width + 1) // 2):
            number, digits = divmod(number, len(pairs))
            out.append(pairs[digits])
        return "".join(out)[:width]

    def number(self, base: int) -> int:
        """A fresh numeric id above ``base``."""
        return base + next(self.serial)

    def uuid(self) -> str:
        """A version 4 UUID from the seeded generator."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def person(self, index: int) -> Person:
        """Person ``index``: names, addresses and phone unique to them, a country, a start date."""
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{ascii_name(first)}.{ascii_name(last)}{index}"
        work = (f"{ascii_name(first)[0]}{ascii_name(last)}{index}@{rng.choice(COMPANIES)}.example.com"
                if rng.random() < 0.15 else None)
        country, currency, _ = rng.choices(COUNTRIES, [share for *_, share in COUNTRIES])[0]
        phone = None
        if rng.random() < 0.65:
            phone = (f"{AREAS[index % 8]}{200 + index // 80_000 % 800}{index // 8 % 10_000:04d}" if country == "US"
                     else {"GB": "20", "DE": "30", "FR": "1", "JP": "3"}[country] + f"{31_000_000 + index:08d}")
        return Person(index, first, last, f"{local}@{rng.choice(DOMAINS)}", work, country, currency, phone,
                      T0 + timedelta(minutes=rng.randrange(365 * 24 * 60)))

    def requests(self, person: Person) -> list[Request]:
        """Everything one person's platforms send about them, in causal order."""
        chosen = [name for name, share in REACH.items() if self.rng.random() < share] or ["website"]
        found: list[Request] = []
        for name in chosen:
            start = len(found)
            for connector, request, after in getattr(self, name)(person):
                found.append((connector, request, None if after is None else start + after))
        return found

    def later(self, moment: datetime, low: float, high: float) -> datetime:
        """A time ``low`` to ``high`` minutes after ``moment``."""
        return moment + timedelta(seconds=int(self.rng.uniform(low, high) * 60))

    def at(self, person: Person, days: float = 60) -> datetime:
        """A time in the ``days`` after the person turns up."""
        return self.later(person.since, 0, days * 24 * 60)

    # -- one method per connector: its requests about one person ------------------------

    def website(self, person: Person) -> list[Request]:
        """Per device: page views, one identify, sometimes a form (maybe with the work address), batched."""
        rng, found = self.rng, []
        user_id = f"usr_{self.code(12)}" if rng.random() < 0.4 else None
        for _ in range(1 if rng.random() < 0.7 else 2):  # devices
            anonymous, agent, moment = self.uuid(), rng.choice(BROWSERS), self.at(person)
            events = []
            for _ in range(rng.randint(1, 8)):
                moment = self.later(moment, 0.2, 5)
                path, title = rng.choice(PAGES)
                events.append({"id": f"ev_{self.code(16)}", "type": "page.viewed", "anonymous_id": anonymous,
                               "timestamp": iso(moment, ".%03d" % rng.randrange(1000)),
                               "properties": {"url": f"https://shop.example.com{path}", "title": title,
                                              "referrer": rng.choice(REFERRERS)}})
            identify = {"id": f"ev_{self.code(16)}", "type": "identify", "anonymous_id": anonymous,
                        "timestamp": iso(self.later(moment, 0.1, 3)), "email": person.mail(rng),
                        "traits": {"first_name": person.first, "last_name": person.last}}
            if user_id:
                identify["user_id"] = user_id
            events.insert(rng.randrange(len(events) + 1), identify)
            if rng.random() < 0.3:
                form = {"id": f"ev_{self.code(16)}", "type": "form.submitted", "anonymous_id": anonymous,
                        "timestamp": iso(self.later(moment, 1, 10)),
                        "email": person.mail(rng, person.work_email if rng.random() < 0.5 else None),
                        "phone": person.tel(rng), "traits": {"first_name": person.first},
                        "properties": {"form_id": rng.choice(("contact", "newsletter", "back-in-stock")),
                                       "url": "https://shop.example.com/contact"}}
                events.append({key: value for key, value in form.items() if value is not None})
            for batch in chunks(events, rng.randint(1, 5)):
                sent = unix(self.later(moment, 0, 1))
                body = json.dumps({"events": batch}, separators=(",", ":")).encode()
                found.append(("website", post(body, {"Content-Type": "application/json", "User-Agent": agent,
                                                     "webhook-id": f"msg_{self.code(27)}",
                                                     "webhook-timestamp": str(sent)}), None))
        return found

    def shopify(self, person: Person) -> list[Request]:
        """A customer, updated sometimes, and 1-3 orders: created, mostly paid, some refunded or cancelled."""
        rng, t, found = self.rng, self.templates["shopify"], []
        base = {"customer_id": self.number(7_064_055_000_000), "first_name": person.first,
                "last_name": person.last, "name": person.name, "currency": person.currency,
                "address_id": self.number(9_100_000_000)}

        def send(topic: str, template: str, moment: datetime, after: int | None = None, **values) -> int:
            body = t[template].render({**base, "email": person.mail(rng), "phone": person.tel(rng), **values})
            headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
                       "X-Shopify-Shop-Domain": "tributary-demo.myshopify.com", "X-Shopify-API-Version": "2025-07",
                       "X-Shopify-Webhook-Id": self.uuid(), "X-Shopify-Event-Id": self.uuid(),
                       "X-Shopify-Triggered-At": iso(self.later(moment, 0, 0.1), ".%06d" % rng.randrange(10 ** 6))}
            found.append(("shopify", post(body.encode(), headers), after))
            return len(found) - 1

        joined = self.at(person)
        if rng.random() < 0.85:
            send("customers/create", "customer", joined, created=shop_time(joined), updated=shop_time(joined))
        orders = [self.number(5_800_000_000_000) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.4:
            moment = self.later(joined, 60, 30 * 24 * 60)
            send("customers/update", "customer_update", moment, created=shop_time(joined), updated=shop_time(moment),
                 consent=rng.choice(("subscribed", "unsubscribed", "not_subscribed")), orders_count=len(orders),
                 total_spent=money(rng, person.currency), last_order_id=orders[0])
        for order_id in orders:
            placed, total = self.later(joined, 5, 40 * 24 * 60), money(rng, person.currency)
            number = order_id - 5_800_000_000_000 + 1000
            order = {"order_id": order_id, "order_number": number, "order_name": f"#{number}",
                     "contact_email": person.mail(rng), "created": shop_time(placed), "total": total,
                     "subtotal": total}
            created = send("orders/create", "order_create", placed, updated=shop_time(self.later(placed, 0, 0.1)),
                           **order)
            if rng.random() < 0.85:
                paid = self.later(placed, 1, 90)
                send("orders/paid", "order_paid", paid, updated=shop_time(paid), **order)
                if rng.random() < 0.08:
                    refunded = self.later(paid, 24 * 60, 20 * 24 * 60)
                    send("refunds/create", "refund", refunded, created, refund_id=self.number(8_900_000_000_000),
                         transaction_id=self.number(2_450_000_000_000), order_id=order_id,
                         created=shop_time(refunded), amount=total)
            elif rng.random() < 0.3:
                cancelled = self.later(placed, 60, 3 * 24 * 60)
                send("orders/cancelled", "order_cancelled", cancelled, cancelled=shop_time(cancelled),
                     updated=shop_time(self.later(cancelled, 0, 0.1)), **order)
        return found

    def woocommerce(self, person: Person) -> list[Request]:
        """A registered customer or a guest, 1-2 orders: created, mostly paid, some refunded or cancelled."""
        rng, t, found = self.rng, self.templates["woocommerce"], []
        registered = rng.random() < 0.7
        base = {"customer_id": self.number(100) if registered else 0, "first_name": person.first,
                "last_name": person.last, "currency": person.currency, "username": ascii_name(person.first)
                + str(person.index)}

        def send(topic: str, template: str, created: datetime, modified: datetime, **values) -> None:
            resource, _, event = topic.partition(".")
            # a second address joins through the account: a guest's would make a profile of its own
            email = person.mail(rng, person.work_email if registered and resource == "order" and rng.random() < 0.3
                                else None)
            body = t[template].render({**base, "email": email, "phone": person.tel(rng) or "",
                                       "created_gmt": naive(created), "created": naive(created, -5),
                                       "modified_gmt": naive(modified), "modified": naive(modified, -5), **values})
            headers = {"Content-Type": "application/json", "User-Agent": "WooCommerce/9.4.1 Hookshot (WordPress/6.7.1)",
                       "X-WC-Webhook-Source": "https://shop.example.com/", "X-WC-Webhook-Topic": topic,
                       "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event,
                       "X-WC-Webhook-ID": str(WOO_HOOKS.index(topic) + 11),
                       "X-WC-Webhook-Delivery-ID": self.uuid().replace("-", "")}
            found.append(("woocommerce", post(body.encode(), headers), None))

        joined = self.at(person)
        if registered:
            send("customer.created", "customer.created", joined, joined)
            if rng.random() < 0.3:
                send("customer.updated", "customer.updated", joined, self.later(joined, 60, 30 * 24 * 60))
        for _ in range(rng.randint(1, 2)):
            placed, order_id = self.later(joined, 5, 40 * 24 * 60), self.number(700)
            order = {"order_id": order_id, "number": str(order_id), "order_key": f"wc_order_{self.code(13)}",
                     "total": money(rng, person.currency)}
            send("order.created", "order_created", placed, placed, **order)
            if rng.random() < 0.85:
                paid = self.later(placed, 1, 60)
                send("order.updated", "order_processing", placed, paid, paid_gmt=naive(paid),
                     paid=naive(paid, -5), **order)
                if rng.random() < 0.05:
                    refunded = self.later(paid, 24 * 60, 10 * 24 * 60)
                    send("order.updated", "order_refunded", placed, refunded, paid_gmt=naive(paid),
                         paid=naive(paid, -5), refund_id=self.number(700), refund_total=f"-{order['total']}", **order)
            elif rng.random() < 0.3:
                send("order.updated", "order_cancelled", placed, self.later(placed, 60, 3 * 24 * 60), **order)
        return found

    def stripe(self, person: Person) -> list[Request]:
        """A customer, 1-3 charges (some failed or refunded), sometimes a monthly subscription and its invoices."""
        rng, t, found = self.rng, self.templates["stripe"], []
        base = {"customer_id": f"cus_{self.code(14)}", "name": person.name, "currency": person.currency.lower(),
                "invoice_prefix": self.code(8, "upper")}

        def send(template: str, moment: datetime, **values) -> None:
            body = t[template].render({**base, "clock": unix(moment), "event_id": f"evt_{self.code(24)}",
                                       "request_id": f"req_{self.code(14)}", "idempotency_key": self.uuid(),
                                       "email": person.mail(rng), "phone": person.tel(rng), **values})
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
            found.append(("stripe", post(body.encode(), headers), None))

        joined = self.at(person)
        send("customer_created", joined)
        if rng.random() < 0.3:
            send("customer_updated", self.later(joined, 60, 30 * 24 * 60))
        for _ in range(rng.randint(1, 3)):
            charged, amount = self.later(joined, 5, 60 * 24 * 60), minor(money(rng, person.currency))
            charge = {"charge_id": f"ch_{self.code(24)}", "payment_intent": f"pi_{self.code(24)}",
                      "txn": f"txn_{self.code(24)}", "amount": amount, "order_number": str(self.number(1000)),
                      "billing_email": person.mail(rng, person.work_email if rng.random() < 0.5 else None)}
            if rng.random() < 0.9:
                send("charge_succeeded", charged, **charge)
                if rng.random() < 0.05:
                    send("charge_refunded", self.later(charged, 24 * 60, 20 * 24 * 60), refund_id=f"re_{self.code(24)}",
                         refund_txn=f"txn_{self.code(24)}", **charge)
            else:
                send("charge_failed", charged, **charge)
        if rng.random() < 0.3:
            subscription, started = f"sub_{self.code(24)}", self.later(joined, 5, 30 * 24 * 60)
            plan = {"subscription_id": subscription, "item_id": f"si_{self.code(14)}",
                    "amount": rng.choice((900, 2000, 4900))}
            send("subscription_created", started, invoice_id=f"in_{self.code(24)}", **plan)
            months = rng.randint(1, 4)
            for month in range(months):
                billed = started + 30 * month * DAY
                invoice = {"invoice_id": f"in_{self.code(24)}", "line_id": f"il_{self.code(24)}",
                           "payment_intent": f"pi_{self.code(24)}",
                           "number": f"{base['invoice_prefix']}-{month + 1:04d}"}
                if month and rng.random() < 0.1:
                    send("invoice_payment_failed", self.later(billed, 1, 5), **plan, **invoice)
                send("invoice_paid", self.later(billed, 60, 24 * 60), **plan, **invoice)
            if rng.random() < 0.3:
                send("subscription_deleted", started + (30 * months + 10) * DAY, invoice_id=f"in_{self.code(24)}",
                     **plan)
        return found

    def paypal(self, person: Person) -> list[Request]:
        """1-2 checkouts: approved, mostly completed and captured, some refunded."""
        rng, t, found = self.rng, self.templates["paypal"], []
        base = {"payer_id": self.code(13, "upper"), "first_name": person.first, "last_name": person.last,
                "name": person.name, "currency": person.currency}

        def send(template: str, moment: datetime, **values) -> None:
            body = t[template].render({**base, "event_id": f"WH-{self.code(17, 'upper')}-{self.code(17, 'upper')}",
                                       "event_time": iso(self.later(moment, 0, 0.2), ".%03d" % rng.randrange(1000)),
                                       "email": person.mail(rng), **values})
            headers = {"Content-Type": "application/json", "User-Agent": "PayPal/AUHD-214.0-58351622",
                       "PAYPAL-TRANSMISSION-ID": self.uuid(), "PAYPAL-TRANSMISSION-TIME": iso(self.later(moment, 0, 1)),
                       "PAYPAL-AUTH-ALGO": "SHA256withRSA",
                       "PAYPAL-CERT-URL": f"https://api.paypal.com/v1/notifications/certs/{PAYPAL_CERT}"}
            found.append(("paypal", post(body.encode(), headers), None))

        for _ in range(rng.randint(1, 2)):
            created = self.at(person)
            approved, captured = self.later(created, 0.5, 5), self.later(created, 5, 30)
            order = {"order_id": self.code(17, "upper"), "capture_id": self.code(17, "upper"),
                     "custom_id": f"order-{self.number(1000)}", "invoice_id": f"INV-{self.number(1000)}",
                     "amount": money(rng, person.currency), "created": iso(created), "approved": iso(approved),
                     "captured": iso(captured)}
            send("order_approved", approved, **order)
            if rng.random() < 0.9:
                send("order_completed", captured, **order)
                send("capture_completed", captured, **order)
                if rng.random() < 0.05:
                    refunded = self.later(captured, 24 * 60, 20 * 24 * 60)
                    send("capture_refunded", refunded, refund_id=self.code(17, "upper"),
                         refunded=refunded.strftime("%Y-%m-%dT%H:%M:%S+00:00"), **order)
        return found

    def mailchimp(self, person: Person) -> list[Request]:
        """A subscription as Mailchimp's form posts it; sometimes a profile change, an unsubscribe or a clean."""
        rng, found = self.rng, []
        member, moment = self.code(10, "hex"), self.at(person)

        def send(kind: str, **extra: str) -> None:
            email = person.mail(rng)
            pairs = [("type", kind), ("fired_at", moment.strftime("%Y-%m-%d %H:%M:%S"))]
            if kind != "cleaned":
                pairs += [("data[id]", member), ("data[list_id]", "a6b5da1054"), ("data[email]", email),
                          ("data[email_type]", "html"), ("data[merges][EMAIL]", email),
                          ("data[merges][FNAME]", person.first), ("data[merges][LNAME]", person.last)]
                phone = person.tel(rng)
                pairs += [("data[merges][PHONE]", phone)] if phone else []
                pairs += [("data[ip_opt]", "10.20.10.30")]
            else:
                pairs += [("data[list_id]", "a6b5da1054"), ("data[email]", email)]
            pairs += [(f"data[{key}]", value) for key, value in extra.items()]
            found.append(("mailchimp", post(urlencode(pairs).encode(), {
                "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "MailChimp"},
                {"key": "bench-mailchimp-webhook-key"}), None))

        send("subscribe", ip_signup="10.20.10.30")
        if rng.random() < 0.3:
            moment = self.later(moment, 60, 60 * 24 * 60)
            send("profile")
        if rng.random() < 0.1:
            moment = self.later(moment, 60, 60 * 24 * 60)
            send("unsubscribe", action="unsub", reason="manual", campaign_id=self.code(10, "hex"))
        elif rng.random() < 0.02:
            moment = self.later(moment, 60, 60 * 24 * 60)
            send("cleaned", campaign_id=self.code(10, "hex"), reason=rng.choice(("hard", "abuse")))
        return found

    def klaviyo(self, person: Person) -> list[Request]:
        """A list subscription, then campaigns received, opened, clicked, bounced..., in 1-4 batches."""
        rng, t = self.rng, self.templates["klaviyo"]
        profile, moment = self.code(26, "ulid"), self.at(person)
        events = [("subscribed_to_list", moment, {})]
        for message, campaign, subject in rng.sample(self.campaigns, rng.randint(0, 5)):
            sent = self.later(moment, 60, 90 * 24 * 60)
            content = {"message": message, "campaign": campaign, "subject": subject}
            events.append(("received_email", sent, content))
            if rng.random() < 0.03:
                events[-1] = ("bounced_email", sent, content)
            elif rng.random() < 0.5:
                opened = self.later(sent, 1, 3 * 24 * 60)
                events.append(("opened_email", opened, content))
                if rng.random() < 0.3:
                    events.append(("clicked_email", self.later(opened, 0.1, 10), content))
                if rng.random() < 0.03:
                    events.append(("unsubscribed_from_email_marketing", self.later(opened, 0.1, 10), content))
                elif rng.random() < 0.01:
                    events.append(("marked_email_as_spam", self.later(opened, 0.1, 10), content))
        rendered = [t[kind].render({"event_id": self.code(11), "uuid": self.uuid(), "profile_id": profile,
                                    "datetime": when.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "timestamp": unix(when),
                                    "email": person.mail(rng), **content})
                    for kind, when, content in events]
        found = []
        for batch in chunks(list(zip(rendered, events)), rng.randint(1, 4)):
            sent = self.later(max(when for _, (_, when, _) in batch), 0.1, 2)
            meta = t["meta"].render({"timestamp": sent.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")})
            body = f'{{"meta":{meta},"data":[{",".join(text for text, _ in batch)}]}}'.encode()
            found.append(("klaviyo", post(body, {"Content-Type": "application/json", "User-Agent": "Klaviyo/1.0",
                                                 "Klaviyo-Webhook-Id": "01KP4928STE8FKCWB6WDHZ4ZB7",
                                                 "Klaviyo-Timestamp": format_datetime(sent, usegmt=True)}), None))
        return found

    def sendgrid(self, person: Person) -> list[Request]:
        """1-5 messages, each processed then delivered (or bounced, dropped), opened, clicked..., batched."""
        rng, t = self.rng, self.templates["sendgrid"]
        events = []
        for _ in range(rng.randint(1, 5)):
            message, moment = self.code(11, "hex"), self.at(person, 90)
            steps = ["processed"] + (["deferred"] if rng.random() < 0.05 else [])
            outcome = rng.choices(("delivered", "bounce", "dropped"), (96, 2, 2))[0]
            steps.append(outcome)
            if outcome == "delivered" and rng.random() < 0.5:
                steps.append("open")
                steps += ["click"] if rng.random() < 0.3 else []
                steps += rng.choices(([], ["unsubscribe"], ["group_unsubscribe"], ["spamreport"]), (95, 2, 2, 1))[0]
            for step in steps:
                moment = self.later(moment, 0.05, 24 * 60 if step in ("open", "unsubscribe") else 5)
                events.append((moment, t[step].render({"email": person.mail(rng), "clock": unix(moment),
                                                       "event_id": self.code(22), "message": message})))
        found = []
        for batch in chunks(events, rng.randint(1, 6)):
            stamp = unix(self.later(max(when for when, _ in batch), 0.1, 1))
            body = f"[{','.join(text for _, text in batch)}]".encode()
            found.append(("sendgrid", post(body, {"Content-Type": "application/json",
                                                  "User-Agent": "SendGrid Event API",
                                                  "X-Twilio-Email-Event-Webhook-Timestamp": str(stamp)}), None))
        return found

    def zendesk(self, person: Person) -> list[Request]:
        """The user, then 1-2 tickets: created, commented, updated by trigger, solved, rated."""
        rng, t, found = self.rng, self.templates["zendesk"], []
        base = {"user_id": str(self.number(20_000_000_000)), "name": person.name}

        def send(template: str, moment: datetime, **values) -> None:
            stamp = iso(self.later(moment, 0, 0.1))
            body = t[template].render({**base, "event_id": self.uuid(), "sequence_id": self.uuid(),
                                       "time": iso(moment, ".%09d" % rng.randrange(10 ** 9)),
                                       "email": person.mail(rng), **values})
            headers = {"Content-Type": "application/json", "User-Agent": "Zendesk Webhook",
                       "X-Zendesk-Account-Id": "12514403", "X-Zendesk-Webhook-Id": "01F1KRFQ6BG29CNWFR60NK5FNY",
                       "X-Zendesk-Webhook-Invocation-Id": str(next(self.hook_ids)),
                       "X-Zendesk-Webhook-Signature-Timestamp": stamp}
            found.append(("zendesk", post(body.encode(), headers), None))

        joined = self.at(person)
        send("user_created", joined, created=iso(joined))
        for _ in range(1 if rng.random() < 0.8 else 2):
            opened = self.later(joined, 10, 60 * 24 * 60)
            ticket = {"ticket_id": str(self.number(30_000)), "created": iso(opened)}
            send("ticket_created", opened, **ticket)
            moment = opened
            if rng.random() < 0.6:
                moment = self.later(moment, 10, 24 * 60)
                send("comment_added", moment, updated=iso(moment), **ticket)
            if rng.random() < 0.3:
                moment = self.later(moment, 10, 24 * 60)
                send("trigger_updated", moment, updated=moment.strftime("%Y-%m-%dT%H:%MZ"), **ticket)
            if rng.random() < 0.7:
                moment = self.later(moment, 10, 3 * 24 * 60)
                send("status_solved", moment, updated=iso(moment), **ticket)
                if rng.random() < 0.35:
                    moment = self.later(moment, 60, 2 * 24 * 60)
                    send("trigger_satisfaction", moment, updated=moment.strftime("%Y-%m-%dT%H:%MZ"),
                         rating=rng.choice(("Good", "Good", "Bad")), **ticket)
        return found

    def freshdesk(self, person: Person) -> list[Request]:
        """1-2 tickets as automation rules send them: created, a note, resolved."""
        rng, t, found = self.rng, self.templates["freshdesk"], []
        for _ in range(1 if rng.random() < 0.8 else 2):
            ticket, moment = str(self.number(1_228_000)), self.at(person)
            subject, priority = rng.choice(SUBJECTS), rng.choice(("Low", "Medium", "High"))
            steps = [("ticket_created", iso(moment))]
            if rng.random() < 0.4:  # the rule renders {{ticket.updated_at}} in the helpdesk's own format
                moment = self.later(moment, 10, 24 * 60)
                steps.append(("note_added", moment.strftime("%a, %-d %b, %Y at %-I:%M %p")))
            if rng.random() < 0.6:
                moment = self.later(moment, 10, 3 * 24 * 60)
                steps.append(("status_resolved", iso(moment)))
            for template, updated in steps:
                body = t[template].render({"ticket_id": ticket, "subject": subject, "priority": priority,
                                           "email": person.mail(rng), "name": person.name, "updated": updated})
                found.append(("freshdesk", post(body.encode(), {"Content-Type": "application/json"}), None))
        return found


@functools.cache
def spreader(base: int, width: int) -> int:
    """A multiplier that maps 1, 2, 3... to scattered, distinct ``width``-digit numbers in ``base``."""
    multiplier = int.from_bytes(hashlib.sha512(f"{base}:{width}".encode()).digest()) % base ** width | 1
    while math.gcd(multiplier, base) != 1:
        multiplier += 2
    return multiplier


def chunks(items: list, size: int) -> Iterator[list]:
    """``items`` in runs of ``size``: the requests a platform batches them into."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def post(body: bytes, headers: dict[str, str], query: dict[str, str] | None = None) -> WebhookRequest:
    """A webhook request as the receiver hands it to a connector."""
    return WebhookRequest(method="POST", headers=headers, query=query or {}, body=body)


def deliveries(connector: Connector, request: WebhookRequest) -> list[Delivery]:
    """What the receiver stores for ``request``: its split, with the headers the connector keeps."""
    kept = {name: value for name in connector.kept_headers if (value := request.header(name)) is not None}
    return [replace(d, headers={**kept, **d.headers}) for d in connector.split(request, {})]


def stream(n: int, seed: int = 11, on_person: Callable[[Person], None] | None = None
           ) -> Iterator[tuple[str, list[Delivery]]]:
    """``(connector, deliveries)`` in arrival order until ``n`` distinct rows, then the stragglers.

    Each person's requests arrive at random among those of the next :data:`SPREAD` people (a
    request that follows another, like a refund its order, after it); a redelivery comes later
    with the same deliveries.
    """
    population = Population(seed)
    rng, waiting, made, index, order = population.rng, [], 0, 0, itertools.count()
    while made < n:
        person = population.person(index)
        if on_person:
            on_person(person)
        keys: list[float] = []
        for connector, request, after in population.requests(person):
            key = index + rng.random() * SPREAD if after is None else keys[after] + rng.random() * SPREAD / 4
            keys.append(key)
            stored = deliveries(CONNECTORS[connector], request)
            made += len(stored)
            heapq.heappush(waiting, (key, next(order), connector, stored))
            if rng.random() < REDELIVERED:
                heapq.heappush(waiting, (key + rng.random() * SPREAD, next(order), connector, stored))
        index += 1
        while waiting and waiting[0][0] < index:
            _, _, connector, stored = heapq.heappop(waiting)
            yield connector, stored
    while waiting:
        _, _, connector, stored = heapq.heappop(waiting)
        yield connector, stored


def templates() -> dict[str, dict[str, Template]]:
    """Every payload the population sends, by connector and kind, made from the test fixtures."""
    def shop(name: str, literals: dict, fills: dict) -> Template:
        return Template(fixture(f"shopify/{name}"), fills, literals)

    customer = {706405506930370084: "customer_id"}
    person_fills = {"email": "email", "first_name": "first_name", "last_name": "last_name", "phone": "phone",
                    "created_at": "created", "updated_at": "updated", "currency": "currency"}
    buyer = {"customer.email": "email", "customer.first_name": "first_name", "customer.last_name": "last_name",
             "customer.phone": "phone", "customer.currency": "currency", "billing_address.first_name": "first_name",
             "billing_address.last_name": "last_name", "billing_address.name": "name", "name": "order_name",
             "order_number": "order_number", "email": "contact_email", "contact_email": "contact_email",
             "created_at": "created", "processed_at": "created", "updated_at": "updated", "currency": "currency",
             "presentment_currency": "currency", "total_price": "total", "subtotal_price": "subtotal"}
    order = {820982911946154508: "order_id", 115310627314723954: "customer_id", 715243470612851245: "address_id"}
    address = {f"{where}.{field}": hole for where in ("addresses.0", "default_address")
               for field, hole in (("first_name", "first_name"), ("last_name", "last_name"), ("name", "name"))}
    shopify = {
        "customer": shop("customers_create", customer, person_fills),
        "customer_update": shop("customers_update_consent", {**customer, 1053317291: "address_id",
                                                             820982911946154508: "last_order_id"},
                                {**person_fills, **address, "orders_count": "orders_count",
                                 "total_spent": "total_spent",
                                 "email_marketing_consent.state": "consent",
                                 "email_marketing_consent.consent_updated_at": "updated"}),
        "order_create": shop("orders_create", order, buyer),
        "order_paid": shop("orders_paid", order, buyer),
        "order_cancelled": shop("orders_cancelled", order, {**buyer, "cancelled_at": "cancelled"}),
        "refund": shop("refunds_create", {890088186047892319: "refund_id", 820982911946154508: "order_id",
                                          245135271310201851: "transaction_id"},
                       {"created_at": "created", "processed_at": "created", "transactions.0.created_at": "created",
                        "transactions.0.processed_at": "created", "transactions.0.amount": "amount",
                        "transactions.0.currency": "currency"}),
    }

    def woo(name: str, fills: dict) -> Template:  # WordPress writes JSON with \/ and \u escapes
        return Template(fixture(f"woocommerce/{name}"), fills, ascii=True, slashes=True)

    names = {f"{where}.{field}": field for where in ("billing", "shipping") for field in ("first_name", "last_name")}
    dates = {"date_created": "created", "date_created_gmt": "created_gmt", "date_modified": "modified",
             "date_modified_gmt": "modified_gmt"}
    woo_customer = {"id": "customer_id", "email": "email", "first_name": "first_name", "last_name": "last_name",
                    "username": "username", "billing.email": "email", "billing.phone": "phone", **names, **dates,
                    "_links.self.0.href": "https://example.com/wp-json/wc/v3/customers/{customer_id}"}
    woo_order = {"id": "order_id", "number": "number", "order_key": "order_key", "currency": "currency",
                 "total": "total", "customer_id": "customer_id", "billing.email": "email", "billing.phone": "phone",
                 **names, **dates,
                 "payment_url": "https://example.com/checkout/order-pay/{order_id}/?pay_for_order=true&key={order_key}",
                 "_links.self.0.href": "https://example.com/wp-json/wc/v3/orders/{order_id}",
                 "_links.customer.0.href": "https://example.com/wp-json/wc/v3/customers/{customer_id}"}
    paid = {"date_paid": "paid", "date_paid_gmt": "paid_gmt"}
    woocommerce = {
        "customer.created": woo("customer_created", woo_customer),
        "customer.updated": woo("customer_updated", woo_customer),
        "order_created": woo("order_created", woo_order),
        "order_processing": woo("order_processing", {**woo_order, **paid}),
        "order_refunded": woo("order_refunded", {**woo_order, **paid, "refunds.0.id": "refund_id",
                                                 "refunds.0.total": "refund_total"}),
        "order_cancelled": woo("order_cancelled", woo_order),
    }

    def stripe_event(name: str, literals: dict, fills: dict) -> Template:  # Stripe indents its JSON
        document = fixture(f"stripe/{name}")
        request = document["request"]
        literals = {document["id"]: "event_id", **literals}
        literals.update({value: hole for value, hole in ((request["id"], "request_id"),
                                                         (request["idempotency_key"], "idempotency_key")) if value})
        return Template(document, fills, literals, clock=document["created"], indent=2)

    cus = {"cus_QhK9Xy1bC2d3E4": "customer_id"}
    stripe_customer = {"data.object.email": "email", "data.object.name": "name", "data.object.phone": "phone"}
    payer = {"data.object.billing_details.email": "billing_email", "data.object.billing_details.name": "name",
             "data.object.billing_details.phone": "phone", "data.object.receipt_email": "billing_email",
             "data.object.amount": "amount", "data.object.currency": "currency"}
    captured = {**payer, "data.object.amount_captured": "amount"}
    invoice = {"data.object.customer_email": "email", "data.object.customer_name": "name",
               "data.object.customer_phone": "phone", "data.object.currency": "currency",
               "data.object.number": "number",
               "data.object.lines.data.0.currency": "currency", "data.object.lines.data.0.price.currency": "currency",
               **{f"data.object.{field}": "amount" for field in (
                   "amount_due", "subtotal", "total", "lines.data.0.amount", "lines.data.0.price.unit_amount")}}
    line = {"il_1PqY1A2eZvKYlo2Cl1i2n3e4": "line_id", "sub_1PqY1A2eZvKYlo2Cq1w2e3r4": "subscription_id"}
    plan = {"data.object.currency": "currency", "data.object.items.data.0.price.currency": "currency",
            "data.object.items.data.0.price.unit_amount": "amount"}
    subscription = {**cus, "sub_1PqY1A2eZvKYlo2Cq1w2e3r4": "subscription_id", "si_QhK9It3m1001": "item_id"}
    stripe = {
        "customer_created": stripe_event("customer_created", {**cus, "A1B2C3D4": "invoice_prefix"}, stripe_customer),
        "customer_updated": stripe_event("customer_updated", {**cus, "A1B2C3D4": "invoice_prefix"}, stripe_customer),
        "charge_succeeded": stripe_event("charge_succeeded", {
            **cus, "ch_3PqY0A2eZvKYlo2C1a2b3c4d": "charge_id", "pi_3PqY0A2eZvKYlo2C1q2w3e4r": "payment_intent",
            "txn_3PqY0A2eZvKYlo2C1b2n3m4k": "txn", "1001": "order_number"}, captured),
        "charge_failed": stripe_event("charge_failed", {
            **cus, "ch_3PqY2C2eZvKYlo2C0d9e8c7b": "charge_id", "pi_3PqY2C2eZvKYlo2C0p9o8i7u": "payment_intent",
            "1002": "order_number"}, payer),
        "charge_refunded": stripe_event("charge_refunded_jpy", {
            "cus_QhLj8Kp2Zr4Ym6": "customer_id", "ch_3PqY3D2eZvKYlo2C4j5p6y7n": "charge_id",
            "pi_3PqY3D2eZvKYlo2C4i5n6t7e": "payment_intent", "txn_3PqY3D2eZvKYlo2C4t5x6n7b": "txn",
            "re_3PqY3D2eZvKYlo2C4r3f2d1s": "refund_id", "txn_3PqY3D2eZvKYlo2C4b5t6x7r": "refund_txn",
            "1003": "order_number"},
            {**captured, "data.object.amount_refunded": "amount", "data.object.refunds.data.0.amount": "amount",
             "data.object.refunds.data.0.currency": "currency", "data.object.description": "Order {order_number}"}),
        "invoice_paid": stripe_event("invoice_paid", {
            **cus, **line, "in_1PqY1A2eZvKYlo2Cz1x2c3v4": "invoice_id",
            "pi_3PqY1A2eZvKYlo2C0z9x8c7v": "payment_intent"},
            {**invoice, "data.object.amount_paid": "amount"}),
        "invoice_payment_failed": stripe_event("invoice_payment_failed", {
            **cus, **line, "in_1PrA5E2eZvKYlo2Cr3n4w5a6": "invoice_id", "in_1PqY1A2eZvKYlo2Cz1x2c3v4": "invoice_id",
            "pi_3PrA5E2eZvKYlo2C9r8e7n6w": "payment_intent"}, {**invoice, "data.object.amount_remaining": "amount"}),
        "subscription_created": stripe_event("customer_subscription_created", {
            **subscription, "in_1PqY1A2eZvKYlo2Cz1x2c3v4": "invoice_id"}, plan),
        "subscription_deleted": stripe_event("customer_subscription_deleted", {
            **subscription, "in_1PrA5E2eZvKYlo2Cr3n4w5a6": "invoice_id"}, plan),
    }

    def pay(name: str, literals: dict, fills: dict) -> Template:
        document = fixture(f"paypal/{name}")
        return Template(document, fills, {document["id"]: "event_id", document["create_time"]: "event_time",
                                          "20.00": "amount", "USD": "currency", "order-1001": "custom_id",
                                          "INV-1001": "invoice_id", **literals})

    buyer_fills = {"resource.payer.name.given_name": "first_name", "resource.payer.name.surname": "last_name",
                   "resource.payer.email_address": "email", "resource.purchase_units.0.shipping.name.full_name": "name"}
    order_ids = {"5O190127TN364715T": "order_id", "QYR5Z8XDVJNXQ": "payer_id", "2024-05-01T11:58:30Z": "created"}
    paypal = {
        "order_approved": pay("checkout_order_approved", {**order_ids, "2024-05-01T11:59:47Z": "approved"},
                              buyer_fills),
        "order_completed": pay("checkout_order_completed", {**order_ids, "8MC585209K746392H": "capture_id",
                                                            "2024-05-01T12:00:02Z": "captured"}, buyer_fills),
        "capture_completed": pay("payment_capture_completed", {"8MC585209K746392H": "capture_id",
                                                               "5O190127TN364715T": "order_id",
                                                               "2024-05-01T12:00:02Z": "captured"}, {}),
        "capture_refunded": pay("payment_capture_refunded", {"1JU08902781691411": "refund_id",
                                                             "8MC585209K746392H": "capture_id",
                                                             "2024-05-03T02:15:38-07:00": "refunded"}, {}),
    }

    batch, more = fixture("klaviyo/batch"), fixture("klaviyo/email_events")["data"]
    klaviyo = {"meta": Template(batch["meta"], {"timestamp": "timestamp"})}
    for event in batch["data"] + more:
        data = event["payload"]["data"]
        attributes, properties = data["attributes"], data["attributes"]["event_properties"]
        literals = {data["id"]: "event_id", attributes["uuid"]: "uuid", attributes["datetime"]: "datetime",
                    attributes["timestamp"]: "timestamp", data["relationships"]["profile"]["data"]["id"]: "profile_id"}
        literals.update({properties[key]: hole for key, hole in (
            ("$message", "message"), ("Campaign Name", "campaign"), ("Subject", "subject")) if key in properties})
        fills = ({"payload.data.attributes.event_properties.email_address": "email"}
                 if "email_address" in properties else {})
        klaviyo[event["topic"].removeprefix("event:klaviyo.")] = Template(event, fills, literals)

    sendgrid = {}
    for event in fixture("sendgrid/events"):
        message = event["sg_message_id"].split(".")[0]
        sendgrid[event["event"]] = Template(event, {"email": "email"},
                                            {event["sg_event_id"]: "event_id", message: "message"},
                                            clock=event["timestamp"])

    user_ids = {"20978392": "user_id"}
    zendesk = {}
    for name, template in (("ticket_created", "ticket_created"), ("comment_added", "comment_added"),
                           ("status_solved", "status_changed_solved"), ("user_created", "user_created")):
        document = fixture(f"zendesk/{template}")
        literals = {document["id"]: "event_id", document["time"]: "time", **user_ids}
        detail = document["detail"]
        if name == "user_created":
            zendesk[name] = Template(document, {"detail.email": "email"}, {
                **literals, detail["created_at"]: "created"})
            continue
        literals.update({"35436": "ticket_id", detail["created_at"]: "created",
                         document["event"]["meta"]["sequence"]["id"]: "sequence_id"})
        if detail["updated_at"] != detail["created_at"]:
            literals[detail["updated_at"]] = "updated"
        zendesk[name] = Template(document, {}, literals)
    trigger = {"ticket_id": "ticket_id", "updated_at": "updated", "requester_email": "email", "requester_name": "name"}
    zendesk["trigger_updated"] = Template(fixture("zendesk/trigger_ticket_updated"), trigger)
    zendesk["trigger_satisfaction"] = Template(fixture("zendesk/trigger_satisfaction"),
                                               {**trigger, "satisfaction_rating": "rating"})

    freshdesk = {name: Template(fixture(f"freshdesk/{name}"), {
        f"freshdesk_webhook.{field}": hole for field, hole in (
            ("ticket_id", "ticket_id"), ("ticket_subject", "subject"), ("ticket_priority", "priority"),
            ("ticket_contact_email", "email"), ("ticket_contact_name", "name"), ("ticket_updated_at", "updated"))})
        for name in ("ticket_created", "note_added", "status_resolved")}
    return {"shopify": shopify, "woocommerce": woocommerce, "stripe": stripe, "paypal": paypal, "klaviyo": klaviyo,
            "sendgrid": sendgrid, "zendesk": zendesk, "freshdesk": freshdesk}
