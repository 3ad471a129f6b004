"""GET /stats/lifecycle: count, entries, exits, conversion and median time per stage, exact."""
import pytest

from tests.api.conftest import TOKENS, ApiClient, act, rec
from tests.test_lifecycle import process

STAGES = ["awareness", "interest", "consideration", "conversion", "retention", "advocacy"]
HOUR = 3600.0


@pytest.fixture
def app(make_app):
    return make_app(api_tokens=TOKENS, lifecycle={"preset": "standard"})


@pytest.fixture
def api(app):
    return ApiClient(app)


def email(name):
    return ("email", f"{name}@example.com")


@pytest.fixture
def funnel(app):
    """Stays, in hours: Ana interest 0-2, conversion 2-5, retention 5-; Bea interest 1-4, conversion 4-;
    Cid awareness 0-3, interest 3-; Dan interest 2-6, consideration 6-."""
    process(app, rec("shopify", email("ana"), at=0), rec("website", ("website_anonymous_id", "cid"), at=0))
    process(app, rec("shopify", email("bea"), at=1))
    process(app, rec("shopify", email("ana"), at=2, activities=[act("order.placed", "a-1", 2)]),
            rec("website", email("dan"), at=2))
    process(app, rec("website", ("website_anonymous_id", "cid"), email("cid"), at=3))
    process(app, rec("shopify", email("bea"), at=4, activities=[act("order.placed", "b-1", 4)]))
    process(app, rec("shopify", email("ana"), at=5, activities=[act("order.placed", "a-2", 5)]))
    process(app, rec("website", email("dan"), at=6, activities=[act("form.submitted", "d-1", 6)]))


def row(stage, count=0, entered=0, exited=0, converted=0, conversion=None, median_seconds=None):
    return {"stage": stage, "count": count, "entered": entered, "exited": exited, "converted": converted,
            "conversion": conversion, "median_seconds": median_seconds}


def test_all_time(api, funnel):
    response = api.get("/api/v1/stats/lifecycle")
    assert response.status_code == 200
    assert response.get_json() == {"items": [
        row("awareness", 0, 1, 1, 1, 1.0, 3 * HOUR),
        row("interest", 1, 4, 3, 3, 0.75, 3 * HOUR),
        row("consideration", 1, 1, 0, 0, 0.0),
        row("conversion", 1, 2, 1, 1, 0.5, 3 * HOUR),
        row("retention", 1, 1, 0, 0, 0.0),
        row("advocacy"),
    ], "next_cursor": None}


def test_in_a_window(api, funnel):
    items = api.get("/api/v1/stats/lifecycle", since="2026-10-01T11:00:00Z", until="2026-10-01T14:00:00+00:00"
                    ).get_json()["items"]
    assert items == [
        row("awareness", 0, 0, 1, 0, None, 3 * HOUR),
        row("interest", 1, 2, 2, 1, 0.5, 2.5 * HOUR),
        row("consideration", 1),
        row("conversion", 1, 2, 0, 1, 0.5),
        row("retention", 1),
        row("advocacy"),
    ]
    assert api.get("/api/v1/stats/lifecycle", since="2026-10-01T14:00:00Z", until="2026-10-01T11:00:00Z"
                   ).get_json()["items"] == [row(s, count=c) for s, c in zip(STAGES, (0, 1, 1, 1, 1, 0))]


def test_a_merged_away_profile_does_not_count(api, app):
    process(app, rec("website", ("website_anonymous_id", "eve"), at=0))
    process(app, rec("mailchimp", email("eve"), at=1))
    process(app, rec("website", ("website_anonymous_id", "eve"), email("eve"), at=7))
    assert api.get("/api/v1/stats/lifecycle").get_json()["items"][:2] == [
        row("awareness", 0, 1, 1, 1, 1.0, 1 * HOUR), row("interest", 1, 1, 0, 0, 0.0)]


def test_bad_parameters_are_named_and_no_lifecycle_means_no_stages(api, make_app):
    assert api.get("/api/v1/stats/lifecycle", since="yesterday").get_json() == {"error": {
        "code": "bad_request", "message": "since: Not a valid datetime."}}
    assert api.get("/api/v1/stats/lifecycle", stage="interest").get_json() == {"error": {
        "code": "bad_request", "message": "stage: Unknown field."}}
    bare = ApiClient(make_app(api_tokens=TOKENS))
    assert bare.get("/api/v1/stats/lifecycle").get_json() == {"items": [], "next_cursor": None}
