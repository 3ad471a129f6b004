"""``GET /api/v1/profiles``: lookups by identifier, filters, keyset pages, and their errors."""
from datetime import timedelta

import pytest
from sqlalchemy import event

from tests.api.conftest import BASE, T0, act, rec

EMPTY = {"items": [], "next_cursor": None}


@pytest.fixture
def ana(store):
    """One person seen by Shopify and Stripe, with pinned computed columns."""
    store.write(rec("shopify", ("email", "Ana.Silva@Example.com"), ("phone", "+1 415 555 2671"),
                    ("shopify_customer_id", "101"), at=0, traits={"first_name": "Ana", "locale": "pt-BR"}))
    store.write(rec("stripe", ("email", "ana.silva@example.com"), ("stripe_customer_id", "cus_9"), at=2,
                    traits={"first_name": "Ana Maria"}))
    profile = store.profile_of("email", "ana.silva@example.com")
    store.pin(profile, updated_at=BASE, lifecycle_stage="customer", lead_score=42.5, churn_risk=0.25,
              metrics={"orders_count": 1, "total_spent": {"USD": "40.00"}})
    return profile


def ana_json(profile_id):
    return {
        "id": profile_id,
        "traits": {"first_name": "Ana Maria", "locale": "pt-BR"},
        "identities": [{"type": "email", "value": "ana.silva@example.com", "source": "shopify"},
                       {"type": "phone", "value": "+14155552671", "source": "shopify"},
                       {"type": "shopify_customer_id", "value": "101", "source": "shopify"},
                       {"type": "stripe_customer_id", "value": "cus_9", "source": "stripe"}],
        "lifecycle_stage": "customer",
        "lead_score": 42.5,
        "churn_risk": {"score": 0.25, "factors": []},
        "metrics": {"orders_count": 1, "total_spent": {"USD": "40.00"}},
        "segments": [],
        "created_at": "2026-10-01T09:00:00+00:00",
        "updated_at": "2026-11-01T12:00:00+00:00",
    }


@pytest.mark.parametrize("email", ["ana.silva@example.com", "  ANA.Silva@EXAMPLE.com ", "Ana.Silva@Example.com"])
def test_lookup_by_email_ignores_case_and_spaces(api, ana, email):
    response = api.get("/api/v1/profiles", email=email)
    assert response.status_code == 200
    assert response.get_json() == {"items": [ana_json(ana)], "next_cursor": None}


@pytest.mark.parametrize("phone", ["+14155552671", "(415) 555-2671", "+1 415-555-2671", "415.555.2671",
                                   "4155552671"])
def test_lookup_by_phone_in_any_format_of_the_number(api, ana, phone):
    assert api.get("/api/v1/profiles", phone=phone).get_json() == {"items": [ana_json(ana)], "next_cursor": None}


@pytest.mark.parametrize("identifier", ["shopify_customer_id:101", "stripe_customer_id:cus_9",
                                        "email:ANA.SILVA@example.com", "phone:(415) 555-2671",
                                        "ana.silva@example.com"])
def test_lookup_by_identifier(api, ana, identifier):
    assert api.get("/api/v1/profiles", identifier=identifier).get_json() == {
        "items": [ana_json(ana)], "next_cursor": None}


@pytest.mark.parametrize("params", [
    {"identifier": "shopify_customer_id:999"},
    {"identifier": "zendesk_user_id:101"},
    {"email": "nobody@example.com"},
    {"email": "not-an-address"},
    {"email": "test@test.com"},  # a blocked placeholder joins nobody
    {"phone": "+1 212 555 0100"},
    {"phone": "call me"},
    {"email": "ana.silva@example.com", "phone": "+1 212 555 0100"},  # filters combine
    {"email": "ana.silva@example.com", "lifecycle_stage": "lead"},
])
def test_lookups_that_match_nobody_give_an_empty_page(api, ana, params):
    response = api.get("/api/v1/profiles", **params)
    assert response.status_code == 200
    assert response.get_json() == EMPTY


def test_filters_combine(api, ana, store):
    store.write(rec("shopify", ("email", "bo@example.com"), at=1))
    bo = store.profile_of("email", "bo@example.com")
    store.pin(bo, updated_at=BASE + timedelta(days=2), lifecycle_stage="lead")
    ids = lambda **params: [p["id"] for p in api.get("/api/v1/profiles", **params).get_json()["items"]]
    assert ids() == [ana, bo]
    assert ids(lifecycle_stage="lead") == [bo]
    assert ids(lifecycle_stage="customer", phone="415 555 2671") == [ana]
    assert ids(updated_since="2026-11-02T00:00:00Z") == [bo]
    assert ids(updated_since="2026-11-03T13:00:00+02:00") == [bo]  # 11:00 UTC, inclusive bound below
    assert ids(updated_since="2026-11-03T12:00:00") == [bo]  # no offset: UTC, inclusive
    assert ids(updated_since="2026-11-03T12:00:01Z") == []


def test_merged_away_profiles_are_not_listed_and_their_identifiers_find_the_survivor(api, store):
    store.write(rec("mailchimp", ("email", "cy@example.com"), at=0))
    store.write(rec("website", ("website_anonymous_id", "anon-7"), at=1))
    survivor = store.profile_of("email", "cy@example.com")
    merged = store.profile_of("website_anonymous_id", "anon-7")
    store.write(rec("website", ("website_anonymous_id", "anon-7"), ("email", "cy@example.com"), at=2))
    assert store.profile(merged).merged_into == survivor
    listed = api.get("/api/v1/profiles").get_json()["items"]
    assert [p["id"] for p in listed] == [survivor]
    found = api.get("/api/v1/profiles", identifier="website_anonymous_id:anon-7").get_json()["items"]
    assert [p["id"] for p in found] == [survivor]


@pytest.fixture
def seven(store):
    """Seven profiles updated one minute apart, oldest first."""
    ids = []
    for i in range(7):
        store.write(rec("shopify", ("shopify_customer_id", f"c{i}"), at=i, traits={"first_name": f"P{i}"}))
        ids.append(store.profile_of("shopify_customer_id", f"c{i}"))
        store.pin(ids[-1], updated_at=BASE + timedelta(minutes=i))
    return ids


def page(api, **params):
    response = api.get("/api/v1/profiles", **params)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return [p["id"] for p in body["items"]], body["next_cursor"]


def test_seven_profiles_in_pages_of_three(api, seven):
    first, cursor1 = page(api, limit=3)
    second, cursor2 = page(api, limit=3, cursor=cursor1)
    third, cursor3 = page(api, limit=3, cursor=cursor2)
    assert (first, second, third) == (seven[:3], seven[3:6], seven[6:])
    assert isinstance(cursor1, str) and isinstance(cursor2, str) and cursor1 != cursor2
    assert cursor3 is None
    assert page(api, limit=7) == (seven, None)
    assert page(api) == (seven, None)  # default limit 50


def test_pages_are_keyset_so_an_update_between_pages_neither_skips_nor_repeats(api, seven, store):
    first, cursor = page(api, limit=3)
    # a profile not yet returned is updated: it moves to the end, and is still returned once
    store.write(rec("shopify", ("shopify_customer_id", "c4"), at=20, traits={"first_name": "Renamed"}))
    store.pin(seven[4], updated_at=BASE + timedelta(hours=1))
    second, cursor = page(api, limit=3, cursor=cursor)
    third, cursor = page(api, limit=3, cursor=cursor)
    assert first + second + third == seven[:4] + seven[5:] + [seven[4]]
    assert cursor is None
    last = api.get("/api/v1/profiles", limit=1, updated_since="2026-11-01T13:00:00Z").get_json()["items"][0]
    assert last["traits"]["first_name"] == "Renamed"


def test_a_profile_updated_after_it_was_returned_comes_again_with_its_new_state(api, seven, store):
    first, cursor = page(api, limit=3)
    store.pin(seven[0], updated_at=BASE + timedelta(hours=1), lifecycle_stage="customer")
    second, cursor = page(api, limit=3, cursor=cursor)
    third, cursor = page(api, limit=3, cursor=cursor)
    assert (first, second, third, cursor) == (seven[:3], seven[3:6], [seven[6], seven[0]], None)


def test_a_list_page_costs_one_query_whatever_its_size(api_app, api, seven):
    engine = api_app.extensions["tributary"].read_engine
    statements = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert len(page(api, limit=7)[0]) == 7
        seven_profiles = len(statements)
        statements.clear()
        assert len(page(api, limit=1)[0]) == 1
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert (seven_profiles, len(statements)) == (1, 1)


def test_a_segment_filter_is_refused_while_none_is_configured(api, ana):
    response = api.get("/api/v1/profiles", segment="vip")
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_request",
                                             "message": "segment: no segments are configured"}}


def test_an_unknown_segment_is_refused_naming_the_configured_ones(make_app):
    from tests.api.conftest import TOKENS, ApiClient

    client = ApiClient(make_app(api_tokens=TOKENS, segments={"vip": {"metric": "orders_count", "gte": 5},
                                                             "buyers": {"metric": "orders_count", "gte": 1}}))
    assert client.get("/api/v1/profiles", segment="vipp").get_json() == {"error": {
        "code": "bad_request", "message": "segment: unknown segment (configured: buyers, vip)"}}


@pytest.mark.parametrize("params, message", [
    ({"limit": "0"}, "limit: Must be greater than or equal to 1 and less than or equal to 500."),
    ({"limit": "501"}, "limit: Must be greater than or equal to 1 and less than or equal to 500."),
    ({"limit": "ten"}, "limit: Not a valid integer."),
    ({"cursor": "not a cursor"}, "cursor: malformed cursor (pass next_cursor from the previous page)"),
    ({"cursor": "WyJwIiwieCIsImEiXQ"}, "cursor: malformed cursor (pass next_cursor from the previous page)"),
    ({"updated_since": "yesterday"}, "updated_since: Not a valid datetime."),
    ({"email": "a\x00@example.com"}, "email: must not contain NUL characters"),
    ({"emial": "ana.silva@example.com"}, "emial: Unknown field."),  # a typo must not list everyone
    ({"limit": "0", "updated_since": "soon"},
     "limit: Must be greater than or equal to 1 and less than or equal to 500.; "
     "updated_since: Not a valid datetime."),
])
def test_bad_parameters_answer_400_naming_the_parameter(api, params, message):
    response = api.get("/api/v1/profiles", **params)
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_request", "message": message}}


def test_a_timeline_cursor_is_not_a_profiles_cursor(api, store):
    store.write(rec("shopify", ("email", "tl@example.com"), at=0,
                    activities=[act("order.placed", f"o-{i}", i) for i in range(3)]))
    profile = store.profile_of("email", "tl@example.com")
    cursor = api.get(f"/api/v1/profiles/{profile}/timeline", limit=1).get_json()["next_cursor"]
    response = api.get("/api/v1/profiles", cursor=cursor)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith("cursor: malformed cursor")


def test_created_at_is_the_first_observation(api, ana):
    assert T0.isoformat() == api.get(f"/api/v1/profiles/{ana}").get_json()["created_at"]
