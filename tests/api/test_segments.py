"""GET /segments, /segments/{name}/members, and /profiles filtered by segment and stage."""
import pytest

from tests.api.conftest import ADMIN_ONLY_TOKEN, TOKENS, ApiClient, Store, act, rec
from tests.test_lifecycle import process

SEGMENTS = {"buyers": {"rule": {"activity": "order.placed"}, "description": "Placed an order"},
            "known": {"identity": "email"},
            "vip": {"metric": "orders_count", "gte": 3}}


@pytest.fixture
def app(make_app):
    return make_app(api_tokens=TOKENS, lifecycle={"preset": "standard"}, segments=SEGMENTS)


@pytest.fixture
def api(app):
    return ApiClient(app)


@pytest.fixture
def people(app, db_engine):
    """Ana ordered at hours 1 and 2, Bea at 3; a visitor never gave an e-mail."""
    process(app, rec("shopify", ("email", "ana@example.com"), at=0))
    process(app, rec("shopify", ("email", "ana@example.com"), at=1, activities=[act("order.placed", "o-1", 1)]),
            rec("website", ("website_anonymous_id", "v-1"), at=1))
    process(app, rec("shopify", ("email", "ana@example.com"), at=2, activities=[act("order.placed", "o-2", 2)]),
            rec("shopify", ("email", "bea@example.com"), at=3, activities=[act("order.placed", "o-3", 3)]))
    store = Store(db_engine)
    return (store.profile_of("email", "ana@example.com"), store.profile_of("email", "bea@example.com"),
            store.profile_of("website_anonymous_id", "v-1"))


def test_the_segments_with_their_descriptions_and_sizes(api, people):
    response = api.get("/api/v1/segments")
    assert response.status_code == 200
    assert response.get_json() == {"items": [
        {"name": "buyers", "description": "Placed an order", "members": 2},
        {"name": "known", "description": None, "members": 2},
        {"name": "vip", "description": None, "members": 0}], "next_cursor": None}


def test_members_oldest_entry_first_in_pages(api, people):
    ana, bea, _ = people
    assert api.get("/api/v1/segments/buyers/members").get_json() == {"items": [
        {"profile_id": ana, "entered_at": "2026-10-01T10:00:00+00:00"},
        {"profile_id": bea, "entered_at": "2026-10-01T12:00:00+00:00"}], "next_cursor": None}
    first = api.get("/api/v1/segments/buyers/members", limit=1).get_json()
    assert first["items"] == [{"profile_id": ana, "entered_at": "2026-10-01T10:00:00+00:00"}]
    second = api.get("/api/v1/segments/buyers/members", limit=1, cursor=first["next_cursor"]).get_json()
    assert second == {"items": [{"profile_id": bea, "entered_at": "2026-10-01T12:00:00+00:00"}], "next_cursor": None}
    assert api.get("/api/v1/segments/vip/members").get_json() == {"items": [], "next_cursor": None}


def test_unknown_segments_bad_cursors_and_tokens(api, people):
    unknown = api.get("/api/v1/segments/nope/members")
    assert (unknown.status_code, unknown.get_json()) == (404, {"error": {"code": "not_found",
                                                                         "message": "segment not found"}})
    profiles_cursor = api.get("/api/v1/profiles", limit=1).get_json()["next_cursor"]
    for cursor in ("zzz", profiles_cursor):
        wrong = api.get("/api/v1/segments/buyers/members", cursor=cursor)
        assert (wrong.status_code, wrong.get_json()["error"]["message"]) == (
            400, "cursor: malformed cursor (pass next_cursor from the previous page)")
    assert api.get("/api/v1/segments/buyers/members", limit=0).get_json()["error"]["message"] == (
        "limit: Must be greater than or equal to 1 and less than or equal to 500.")
    for path in ("/api/v1/segments", "/api/v1/segments/buyers/members"):
        assert api.get(path, token=None).status_code == 401
        assert api.get(path, token=ADMIN_ONLY_TOKEN).status_code == 403


def test_profiles_by_segment_and_stage_show_both(api, people):
    ana, bea, visitor = people
    listed = api.get("/api/v1/profiles", segment="buyers").get_json()
    assert sorted((p["id"], p["lifecycle_stage"], p["segments"]) for p in listed["items"]) == sorted([
        (ana, "retention", ["buyers", "known"]), (bea, "conversion", ["buyers", "known"])])
    assert api.get("/api/v1/profiles", segment="vip").get_json() == {"items": [], "next_cursor": None}
    assert [p["id"] for p in api.get("/api/v1/profiles", segment="known", lifecycle_stage="conversion")
            .get_json()["items"]] == [bea]
    one = api.get(f"/api/v1/profiles/{visitor}").get_json()
    assert (one["lifecycle_stage"], one["segments"]) == ("awareness", [])
    refused = api.get("/api/v1/profiles", segment="VIP")
    assert (refused.status_code, refused.get_json()) == (400, {"error": {
        "code": "bad_request", "message": "segment: unknown segment (configured: buyers, known, vip)"}})
