"""``GET /api/v1/profiles/{id}`` (with provenance, 301 after a merge, 404) and ``/identities``."""
import pytest
from sqlalchemy import text

from hub.db import READ_PLAN_LIFETIME
from tests.api.conftest import BASE, rec


@pytest.fixture
def bo(store):
    """A person seen by Mailchimp then Shopify."""
    store.write(rec("mailchimp", ("email", "bo@example.com"), ("mailchimp_member_id", "m-1"), at=0,
                    traits={"first_name": "Bo", "email_consent": "subscribed"}))
    store.write(rec("shopify", ("email", "BO@example.com"), ("shopify_customer_id", "7"), at=5,
                    traits={"last_name": "Berg", "address": {"city": "Oslo", "country": "NO"}}))
    profile = store.profile_of("email", "bo@example.com")
    store.pin(profile, updated_at=BASE, metrics={"orders_count": 0})
    return profile


def test_a_profile_exactly(api, bo):
    response = api.get(f"/api/v1/profiles/{bo}")
    assert response.status_code == 200
    assert response.get_json() == {
        "id": bo,
        "traits": {"address": {"city": "Oslo", "country": "NO"}, "email_consent": "subscribed",
                   "first_name": "Bo", "last_name": "Berg"},
        "identities": [{"type": "email", "value": "bo@example.com", "source": "mailchimp"},
                       {"type": "mailchimp_member_id", "value": "m-1", "source": "mailchimp"},
                       {"type": "shopify_customer_id", "value": "7", "source": "shopify"}],
        "lifecycle_stage": None,
        "lead_score": None,
        "churn_risk": None,
        "metrics": {"orders_count": 0},
        "segments": [],
        "created_at": "2026-10-01T09:00:00+00:00",
        "updated_at": "2026-11-01T12:00:00+00:00",
    }
    assert list(response.get_json()) == ["id", "traits", "identities", "lifecycle_stage", "lead_score",
                                         "churn_risk", "metrics", "segments", "created_at", "updated_at"]


def test_provenance_gives_each_trait_its_source_and_time(api, bo):
    traits = api.get(f"/api/v1/profiles/{bo}", provenance="1").get_json()["traits"]
    assert traits == {
        "address": {"value": {"city": "Oslo", "country": "NO"}, "source": "shopify",
                    "observed_at": "2026-10-01T14:00:00+00:00"},
        "email_consent": {"value": "subscribed", "source": "mailchimp", "observed_at": "2026-10-01T09:00:00+00:00"},
        "first_name": {"value": "Bo", "source": "mailchimp", "observed_at": "2026-10-01T09:00:00+00:00"},
        "last_name": {"value": "Berg", "source": "shopify", "observed_at": "2026-10-01T14:00:00+00:00"},
    }
    assert api.get(f"/api/v1/profiles/{bo}", provenance="true").get_json()["traits"] == traits
    assert api.get(f"/api/v1/profiles/{bo}", provenance="0").get_json()["traits"]["first_name"] == "Bo"


def test_provenance_must_be_a_boolean(api, bo):
    response = api.get(f"/api/v1/profiles/{bo}", provenance="maybe")
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_request", "message": "provenance: Not a valid boolean."}}


@pytest.fixture
def merged(store):
    """(survivor, merged-away id): an anonymous visitor later identified as a known customer."""
    store.write(rec("shopify", ("email", "di@example.com"), at=0, traits={"first_name": "Di"}))
    store.write(rec("website", ("website_anonymous_id", "anon-1"), at=1))
    survivor = store.profile_of("email", "di@example.com")
    gone = store.profile_of("website_anonymous_id", "anon-1")
    store.write(rec("website", ("website_anonymous_id", "anon-1"), ("email", "di@example.com"), at=2))
    return survivor, gone


@pytest.mark.parametrize("suffix", ["", "/timeline", "/identities"])
def test_a_merged_away_id_answers_301_to_the_survivor(api, merged, suffix):
    survivor, gone = merged
    response = api.get(f"/api/v1/profiles/{gone}{suffix}")
    assert response.status_code == 301
    assert response.headers["Location"] == f"/api/v1/profiles/{survivor}{suffix}"
    assert response.data == b""
    assert api.get(response.headers["Location"]).status_code == 200


def test_the_redirect_keeps_the_query(api, merged):
    survivor, gone = merged
    response = api.get(f"/api/v1/profiles/{gone}", provenance="1")
    assert response.headers["Location"] == f"/api/v1/profiles/{survivor}?provenance=1"


def test_a_redirect_still_needs_a_token(api, merged):
    assert api.get(f"/api/v1/profiles/{merged[1]}", token=None).status_code == 401


@pytest.mark.parametrize("suffix", ["", "/timeline", "/identities"])
def test_unknown_ids_answer_404(api, suffix):
    for profile_id in ["00000000-0000-0000-0000-000000000000", "nope", "x" * 300, "%00"]:
        response = api.get(f"/api/v1/profiles/{profile_id}{suffix}")
        assert response.status_code == 404, profile_id
        assert response.get_json() == {"error": {"code": "not_found", "message": "profile not found"}}


def test_identities_with_first_and_last_seen(api, bo, store):
    store.pin_identity("email", "bo@example.com", last_seen_at=BASE)
    response = api.get(f"/api/v1/profiles/{bo}/identities")
    assert response.status_code == 200
    assert response.get_json() == {"items": [
        {"type": "email", "value": "bo@example.com", "source": "mailchimp",
         "first_seen_at": "2026-10-01T09:00:00+00:00", "last_seen_at": "2026-11-01T12:00:00+00:00"},
        {"type": "mailchimp_member_id", "value": "m-1", "source": "mailchimp",
         "first_seen_at": "2026-10-01T09:00:00+00:00", "last_seen_at": "2026-10-01T09:00:00+00:00"},
        {"type": "shopify_customer_id", "value": "7", "source": "shopify",
         "first_seen_at": "2026-10-01T14:00:00+00:00", "last_seen_at": "2026-10-01T14:00:00+00:00"},
    ], "next_cursor": None}


def test_the_survivor_holds_the_merged_identities(api, merged):
    survivor, _ = merged
    items = api.get(f"/api/v1/profiles/{survivor}/identities").get_json()["items"]
    assert [(i["type"], i["value"], i["source"]) for i in items] == [
        ("email", "di@example.com", "shopify"), ("website_anonymous_id", "anon-1", "website")]


@pytest.mark.parametrize("suffix", ["", "/identities"])
def test_unknown_parameters_are_refused(api, bo, suffix):
    response = api.get(f"/api/v1/profiles/{bo}{suffix}", limit="5")
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_request", "message": "limit: Unknown field."}}


@pytest.mark.postgres
def test_reads_run_as_prepared_statements_on_their_own_recycled_pool(api, bo, store):
    hub = api.app.extensions["tributary"]
    for _ in range(8):
        assert api.get(f"/api/v1/profiles/{bo}").status_code == 200
    store.pin(bo, metrics={"orders_count": 3})
    assert api.get(f"/api/v1/profiles/{bo}").get_json()["metrics"] == {"orders_count": 3}
    prepared = text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%identity_list%'")
    with hub.read_engine.connect() as connection:  # the one pooled connection the requests used
        assert connection.scalar(prepared) == 1
    with hub.engine.connect() as connection:  # writes never prepare: their plans follow the tables
        assert connection.scalar(prepared) == 0
    assert hub.read_engine.pool is not hub.engine.pool
    assert hub.read_engine.pool._recycle == READ_PLAN_LIFETIME == 600
