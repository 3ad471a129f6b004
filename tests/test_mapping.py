"""The mapping engine and its transforms."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from hub.config import ConfigError
from hub.hookspecs import hookimpl
from hub.mapping import Document, load_mapping
from hub.plugins import PluginError, collect_transforms, get_plugin_manager
from hub.transforms import BUILT_IN
from hub.unified import UnifiedActivity

UTC = timezone.utc
RECEIVED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONTEXT = {"default_region": "GB"}

SHOP = """
source: shop
defaults:
  observed_at: {path: [updated_at, created_at], transform: timestamp}
events:
  order:
    root: data.object
    identities:
      - {type: email, path: [customer.email, email], transform: [strip, lower]}
      - {type: phone, path: customer.phone, transform: e164}
      - {type: shop_customer_id, path: customer.id, transform: str}
    traits:
      first_name: customer.first_name
      plan: {value: gold}
    activities:
      - type: order.placed
        id: id
        occurred_at: {path: created_at, transform: timestamp}
        properties:
          amount: {path: amount, transform: minor_units, arg: {path: currency}}
          currency: {path: currency, transform: upper}
          first_item: items.0.sku
          missing: {path: nowhere, default: none-given}
      - type: order.cancelled
        id: id
        when: {path: status, in: [cancelled, voided]}
  noise: {skip: true}
"""


def mapping(tmp_path, text, name="shop", transforms=BUILT_IN):
    (tmp_path / f"{name}.yaml").write_text(text)
    return load_mapping(name, transforms, CONTEXT, tmp_path)


def doc(data, topic):
    return Document(data, topic, RECEIVED, 41, "key-41")


def test_a_document_maps_to_exactly_this_record(tmp_path):
    order = {"data": {"object": {
        "id": "ord_1", "status": "cancelled", "amount": 1999, "currency": "usd",
        "created_at": "2026-11-01T09:30:00-05:00", "updated_at": 1762300000,
        "items": [{"sku": "TEE-1"}, {"sku": "CAP-2"}],
        "email": " Ana.Silva@Example.COM ",
        "customer": {"id": 7001, "phone": "020 7946 0958", "first_name": "Ana"},
    }}}
    record = mapping(tmp_path, SHOP).map(doc(order, "order"))
    assert record.source == "shop"
    assert record.inbox_id == 41
    assert record.observed_at == datetime.fromtimestamp(1762300000, UTC)
    assert record.identities == [("email", "ana.silva@example.com"), ("phone", "+442079460958"),
                                 ("shop_customer_id", "7001")]
    assert record.traits == {"first_name": "Ana", "plan": "gold"}
    placed_at = datetime(2026, 11, 1, 14, 30, tzinfo=UTC)
    assert record.activities == [
        UnifiedActivity("order.placed", "ord_1", placed_at, {
            "amount": "19.99", "currency": "USD", "first_item": "TEE-1", "missing": "none-given"}),
        UnifiedActivity("order.cancelled", "ord_1", record.observed_at, {}),
    ]


def test_when_conditions_skip_and_unknown_topics(tmp_path):
    compiled = mapping(tmp_path, SHOP)
    open_order = {"data": {"object": {"id": "o2", "status": "open", "created_at": "2026-11-01T00:00:00Z",
                                      "email": "b@example.com"}}}
    record = compiled.map(doc(open_order, "order"))
    assert [a.type for a in record.activities] == ["order.placed"]
    assert record.observed_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert compiled.map(doc(open_order, "noise")) is None
    assert compiled.map(doc(open_order, "unmapped/topic")) is None


REFUNDS = """
source: shop
events:
  order:
    identities: [{type: email, path: email}]
    activities:
      - type: order.refunded
        each: refunds
        id: id
        occurred_at: {path: [at, ^updated_at], transform: timestamp}
        when: {path: amount, present: true}
        properties:
          order_id: ^id
          amount: {path: amount, transform: decimal}
"""


def test_each_maps_one_activity_per_list_element_reading_the_root_with_a_caret(tmp_path):
    compiled = mapping(tmp_path, REFUNDS)
    order = {"id": "o9", "email": "ana@example.com", "updated_at": "2026-11-02T00:00:00Z", "refunds": [
        {"id": "r1", "amount": "5.00", "at": "2026-11-01T10:00:00Z"},
        {"id": "r2", "amount": "1.50"},
        {"id": "r3"},  # no amount: its `when` leaves it out
        {"amount": "9.99"},  # no id: no activity
    ]}
    assert compiled.map(doc(order, "order")).activities == [
        UnifiedActivity("order.refunded", "r1", datetime(2026, 11, 1, 10, tzinfo=UTC),
                        {"order_id": "o9", "amount": "5.00"}),
        UnifiedActivity("order.refunded", "r2", datetime(2026, 11, 2, tzinfo=UTC),
                        {"order_id": "o9", "amount": "1.50"}),
    ]
    assert compiled.map(doc({"id": "o8", "email": "b@example.com", "refunds": None}, "order")).activities == []
    assert compiled.map(doc({"id": "o7", "email": "b@example.com"}, "order")).activities == []


@pytest.mark.parametrize("text, problems", [
    ("source: shop\nevents: {a: {activities: [{type: order.shipped, id: x}]}}\n",
     {"events.a.activities[0].type": "Must be one of: " + ", ".join(__import__("hub.unified").unified.ACTIVITY_TYPES) + "."}),
    ("source: shop\nevents: {a: {traits: {x: {path: p, transform: rot13}}}}\n",
     {"events.a.traits.x.transform": None}),
    ("source: shop\nevents: {a: {identities: [{path: email}]}}\n",
     {"events.a.identities[0].type": "Missing data for required field."}),
    ("source: shop\nevents: {a: {traits: {x: {path: p, value: 1}}}}\n",
     {"events.a.traits.x.(field)": "give exactly one of path or value"}),
    ("source: other\nevents: {}\n", {"source": "must be 'shop', the file's connector"}),
    ("source: shop\n", {"events": "Missing data for required field."}),
])
def test_broken_mappings_name_the_file_the_key_and_the_reason(tmp_path, text, problems):
    with pytest.raises(ConfigError) as info:
        mapping(tmp_path, text)
    assert info.value.source == str(tmp_path / "shop.yaml")
    if list(problems.values()) == [None]:
        key = next(iter(problems))
        assert list(info.value.problems) == [key]
        assert info.value.problems[key].startswith("unknown transform 'rot13' (known: bool, cents_to_decimal")
    else:
        assert info.value.problems == problems


@pytest.mark.parametrize("value, currency, expected", [
    (1999, "usd", "19.99"), (500, "JPY", "500"), (1234, "KWD", "1.234"), (-250, "EUR", "-2.50"), (0, "GBP", "0.00"),
])
def test_minor_units_are_exact_per_currency(value, currency, expected):
    assert BUILT_IN["minor_units"](value, currency, {}) == expected
    assert Decimal(expected) == Decimal(value).scaleb(-{"JPY": 0, "KWD": 3}.get(currency.upper(), 2))


def test_timestamps_phones_and_booleans():
    ts = BUILT_IN["timestamp"]
    assert ts("2009-03-26 21:35:57", None, {}) == datetime(2009, 3, 26, 21, 35, 57, tzinfo=UTC)
    assert ts("2026-11-01T10:00:00+02:00", None, {}) == datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert ts(1700000000, None, {}) == ts("1700000000", None, {}) == ts(1700000000000, None, {})
    with pytest.raises(ValueError, match="not a timestamp"):
        ts("yesterday", None, {})
    assert BUILT_IN["e164"]("(415) 555-2671", None, {"default_region": "US"}) == "+14155552671"
    assert BUILT_IN["e164"]("+44 20 7946 0958", None, {"default_region": "US"}) == "+442079460958"
    assert BUILT_IN["e164"]("12", None, {"default_region": "US"}) is None
    assert [BUILT_IN["bool"](v, None, {}) for v in ("yes", "0", True, "FALSE")] == [True, False, True, False]
    assert BUILT_IN["decimal"]("12.50", None, {}) == "12.50"


class Reverse:
    @hookimpl
    def register_transforms(self):
        return {"reverse": lambda value, arg, context: str(value)[::-1]}


def test_plugins_add_transforms_through_the_hook(tmp_path):
    transforms = collect_transforms(get_plugin_manager([Reverse()]))
    assert sorted(transforms) == sorted([*BUILT_IN, "reverse"])
    text = "source: shop\nevents: {a: {identities: [{type: shop_customer_id, path: id, transform: reverse}]}}\n"
    record = mapping(tmp_path, text, transforms=transforms).map(doc({"id": "abc"}, "a"))
    assert record.identities == [("shop_customer_id", "cba")]


def test_a_transform_name_may_be_registered_once():
    class Again:
        @hookimpl
        def register_transforms(self):
            return {"lower": str.lower}

    with pytest.raises(PluginError, match="two plugins register the transform 'lower'"):
        collect_transforms(get_plugin_manager([Again()]))


def test_every_shipped_mapping_is_valid_and_uses_the_vocabulary():
    from hub.mapping import MAPPINGS_DIR, load_mappings
    from hub.plugins import collect_connectors

    pm = get_plugin_manager()
    connectors = collect_connectors(pm)
    found = load_mappings(connectors, collect_transforms(pm), CONTEXT)
    shipped = sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))
    assert sorted(found) == shipped
    assert "website" in found


def test_unified_records_are_checked_before_they_are_stored():
    from hub.unified import UnifiedRecord, validate_record

    record = UnifiedRecord("shop", 1, RECEIVED, identities=[("email", "x" * 321)],
                           traits={"email_consent": "maybe"},
                           activities=[UnifiedActivity("order.shipped", "", datetime(2026, 1, 1), [])])
    with pytest.raises(ValueError) as info:
        validate_record(record)
    assert str(info.value) == (
        "unified record breaks the schema: identities[0]: type and value must be 1-64 and 1-320 characters; "
        "traits.email_consent: must be one of subscribed, unsubscribed, cleaned, bounced, spam_reported, pending; "
        "activities[0].type: 'order.shipped' is not in the vocabulary; "
        "activities[0].source_id: must be 1-255 characters; "
        "activities[0].occurred_at: must be timezone-aware; activities[0].properties: must be a mapping")
