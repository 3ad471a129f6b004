"""``GET /api/v1/profiles/{id}/timeline``: newest first, filters from the vocabulary, keyset pages."""
import pytest

from tests.api.conftest import act, rec


@pytest.fixture
def eve(store):
    """Five activities from three sources; two happened at the same moment."""
    store.write(rec("shopify", ("email", "eve@example.com"), at=0, activities=[
        act("order.placed", "o-1", 1, amount="40.00", currency="USD"),
        act("order.paid", "o-1", 2, amount="40.00", currency="USD"),
    ]))
    store.write(rec("stripe", ("email", "eve@example.com"), at=3, activities=[
        act("payment.succeeded", "ch_1", 2, amount="40.00", currency="USD"),
    ]))
    store.write(rec("zendesk", ("email", "eve@example.com"), at=5, activities=[
        act("ticket.opened", "t-1:opened", 4, ticket_id="1"),
        act("ticket.solved", "t-1:solved", 5, ticket_id="1"),
    ]))
    return store.profile_of("email", "eve@example.com")


def entry(kind, source, source_id, hour, **properties):
    return {"type": kind, "source": source, "source_id": source_id,
            "occurred_at": f"2026-10-01T{9 + hour:02d}:00:00+00:00", "properties": properties}


ALL = [
    entry("ticket.solved", "zendesk", "t-1:solved", 5, ticket_id="1"),
    entry("ticket.opened", "zendesk", "t-1:opened", 4, ticket_id="1"),
    entry("payment.succeeded", "stripe", "ch_1", 2, amount="40.00", currency="USD"),  # same time, arrived later
    entry("order.paid", "shopify", "o-1", 2, amount="40.00", currency="USD"),
    entry("order.placed", "shopify", "o-1", 1, amount="40.00", currency="USD"),
]


def test_the_timeline_newest_first(api, eve):
    response = api.get(f"/api/v1/profiles/{eve}/timeline")
    assert response.status_code == 200
    assert response.get_json() == {"items": ALL, "next_cursor": None}


def test_filter_by_type_and_by_source(api, eve):
    timeline = f"/api/v1/profiles/{eve}/timeline"
    assert api.get(timeline, type="order.paid").get_json() == {"items": [ALL[3]], "next_cursor": None}
    assert api.get(timeline, source="zendesk").get_json() == {"items": ALL[:2], "next_cursor": None}
    assert api.get(timeline, source="shopify", type="order.placed").get_json()["items"] == [ALL[4]]
    assert api.get(timeline, type="email.opened").get_json() == {"items": [], "next_cursor": None}
    assert api.get(timeline, source="klaviyo").get_json() == {"items": [], "next_cursor": None}


def test_pages_of_two_cross_equal_times_without_loss(api, eve):
    timeline = f"/api/v1/profiles/{eve}/timeline"
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get(timeline, **params).get_json()
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert (pages, seen) == (3, ALL)


def test_paging_with_a_filter(api, eve):
    timeline = f"/api/v1/profiles/{eve}/timeline"
    first = api.get(timeline, source="shopify", limit=1).get_json()
    assert first["items"] == [ALL[3]] and first["next_cursor"]
    second = api.get(timeline, source="shopify", limit=1, cursor=first["next_cursor"]).get_json()
    assert second == {"items": [ALL[4]], "next_cursor": None}


@pytest.mark.parametrize("params, message", [
    ({"type": "order.shipped"}, "type: 'order.shipped' is not an activity type of the unified vocabulary"),
    ({"type": "ORDER.PLACED"}, "type: 'ORDER.PLACED' is not an activity type of the unified vocabulary"),
    ({"limit": "0"}, "limit: Must be greater than or equal to 1 and less than or equal to 500."),
    ({"cursor": "%%%"}, "cursor: malformed cursor (pass next_cursor from the previous page)"),
    ({"source": "x" * 65}, "source: Longer than maximum length 64."),
])
def test_bad_filters_answer_400_naming_the_parameter(api, eve, params, message):
    response = api.get(f"/api/v1/profiles/{eve}/timeline", **params)
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_request", "message": message}}


def test_a_profiles_cursor_is_not_a_timeline_cursor(api, eve, store):
    store.write(rec("shopify", ("email", "other@example.com"), at=0))
    cursor = api.get("/api/v1/profiles", limit=1).get_json()["next_cursor"]
    response = api.get(f"/api/v1/profiles/{eve}/timeline", cursor=cursor)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith("cursor: malformed cursor")


def test_a_profile_without_activities_has_an_empty_timeline(api, store):
    store.write(rec("mailchimp", ("email", "quiet@example.com"), at=0))
    profile = store.profile_of("email", "quiet@example.com")
    assert api.get(f"/api/v1/profiles/{profile}/timeline").get_json() == {"items": [], "next_cursor": None}
