"""GET /api/v1/changes: the ordered change feed."""
from tests.api.conftest import act, rec


def test_the_feed_lists_changes_in_order_and_pages_after_a_cursor(api, store):
    store.write(rec("website", ("website_anonymous_id", "v1"), at=1, activities=[act("page.viewed", "pv", 1)]))
    store.write(rec("mailchimp", ("email", "fe@example.com"), at=0, traits={"first_name": "Fe"}))
    store.write(rec("website", ("website_anonymous_id", "v1"), ("email", "fe@example.com"), at=2))
    fe = store.profile_of("email", "fe@example.com")
    first = api.get("/api/v1/changes", limit=2)
    assert first.status_code == 200
    body = first.get_json()
    visitor = body["items"][0]["profile_id"]
    assert [(c["id"], c["type"], c["profile_id"], c["data"]) for c in body["items"]] == [
        (1, "profile.created", visitor, {}),
        (2, "profile.updated", visitor, {"fields": ["identities", "metrics", "timeline"]}),
    ]
    assert body["next_cursor"] == "2"
    rest = api.get("/api/v1/changes", after=body["next_cursor"]).get_json()
    assert [(c["id"], c["type"], c["profile_id"], c["data"]) for c in rest["items"]] == [
        (3, "profile.created", fe, {}),
        (4, "profile.updated", fe, {"fields": ["identities", "traits.first_name"]}),
        (5, "profile.merged", fe, {"survivor_id": fe, "merged_id": visitor, "identifier_type": "website_anonymous_id"}),
    ]
    assert rest["next_cursor"] is None
    assert api.get("/api/v1/changes", after=5).get_json() == {"items": [], "next_cursor": None}


def test_bad_parameters_and_missing_tokens(api):
    bad = api.get("/api/v1/changes", after="soon")
    assert bad.status_code == 400
    assert bad.get_json() == {"error": {"code": "bad_request", "message": "after: Not a valid integer."}}
    assert api.get("/api/v1/changes", limit=0).status_code == 400
    assert api.get("/api/v1/changes", token=None).status_code == 401
