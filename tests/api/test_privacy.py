"""Export and erase: everything held on a person comes out whole, and goes away for good."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from hub.models import Base, Change, InboxRecord, InboxState
from hub.rebuild import rebuild
from tests.api.conftest import ADMIN_ONLY_TOKEN, OPS_TOKEN, READ_TOKEN, TOKENS, ApiClient, rec
from tests.conftest import profiles_snapshot, settle, wait_for
from tests.connectors.test_shopify import SECRET, fixture_body, post, shopify_headers

BOB = "706405506930370084"
JOHN = "115310627314723954"
#: what must not survive Bob's erasure anywhere, in any case: e-mail, name, phone, customer id
BOB_TRACES = ("bob@biller.com", "biller", "zoë", "6135550123", BOB)


@pytest.fixture
def app(make_app):
    return make_app(api_tokens=TOKENS, inbox={"max_attempts": 1},
                    connectors={"echo": {"enabled": False}, "shopify": {"enabled": True, "webhook_secret": SECRET}})


@pytest.fixture
def api(app) -> ApiClient:
    return ApiClient(app)


def deliver(app, topic: str, body: bytes, webhook_id: str, fails: bool = False) -> None:
    """Post a signed webhook and wait until it is processed (or, if it ``fails``, failed)."""
    response = post(app.test_client(), body, shopify_headers(topic, webhook_id))
    assert response.status_code == 202
    if not fails:
        settle(app)
        return
    hub = app.extensions["tributary"]

    def failed():
        with hub.session() as session:
            return session.scalar(select(InboxState.status).join_from(InboxRecord, InboxState)
                                  .where(InboxRecord.key == webhook_id)) == "failed"

    wait_for(failed)


def variant(name: str, **changes) -> bytes:
    document = json.loads(fixture_body(name))
    document.update(changes)
    return json.dumps(document, separators=(",", ":")).encode()


def delete(api: ApiClient, profile_id: str, token: str | None = ADMIN_ONLY_TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api.client.delete(f"/api/v1/profiles/{profile_id}", headers=headers)


def profile_of(api: ApiClient, identifier: str) -> str:
    items = api.get("/api/v1/profiles", identifier=identifier).get_json()["items"]
    assert len(items) == 1
    return items[0]["id"]


def traces_in_database(engine, needles=BOB_TRACES) -> list[tuple[str, str]]:
    """(table, needle) for every needle found in any column of any table (bodies decoded)."""
    found = []
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                flat = " ".join(value.decode("utf-8", "replace") if isinstance(value, (bytes, memoryview))
                                else str(value) for value in (bytes(v) if isinstance(v, memoryview) else v
                                                              for v in row))
                found.extend((table.name, n) for n in needles if n in flat.lower())
    return sorted(set(found))


@pytest.fixture
def bob_and_john(app):
    """Bob (created, updated with his phone as he typed it, one order that fails to map) and John."""
    deliver(app, "customers/create", fixture_body("customers_create"), "w-1")
    deliver(app, "customers/update", variant("customers_update", phone="(613) 555-0123"), "w-2")
    john = json.loads(fixture_body("orders_create"))
    john["billing_address"].update(first_name="John", last_name="Smith", name="John Smith")  # Shopify's sample
    deliver(app, "orders/create", json.dumps(john).encode(), "w-3")  # bills Bob Biller: not here
    broken = variant("orders_create", email="Bob@Biller.com", customer={"id": "not-a-number"}, total_price="x")
    deliver(app, "orders/create", broken, "w-4", fails=True)
    return app


def inbox(app) -> list[tuple]:
    with app.extensions["tributary"].session() as session:
        return [tuple(r) for r in session.execute(select(InboxRecord.id, InboxRecord.key, InboxState.status)
                                                  .join_from(InboxRecord, InboxState).order_by(InboxRecord.id))]


def test_the_export_holds_the_profile_its_provenance_timeline_and_every_raw_record(bob_and_john, api):
    bob = profile_of(api, f"shopify_customer_id:{BOB}")
    assert [r[2] for r in inbox(bob_and_john)] == ["processed", "processed", "processed", "failed"]
    response = api.get(f"/api/v1/profiles/{bob}/export", token=OPS_TOKEN)
    assert response.status_code == 200
    export = response.get_json()
    assert export["profile"]["id"] == bob
    assert export["profile"]["traits"]["email"] == {"value": "bob@biller.com", "source": "shopify",
                                                    "observed_at": "2024-11-20T13:12:45+00:00"}
    assert [(i["type"], i["value"]) for i in export["identities"]] == [
        ("email", "bob@biller.com"), ("phone", "+16135550123"), ("shopify_customer_id", BOB)]
    assert [(a["type"], a["occurred_at"]) for a in export["timeline"]] == [
        ("customer.updated", "2024-11-20T13:12:45+00:00"), ("customer.created", "2024-11-14T15:30:00+00:00")]
    assert export["merged_ids"] == [] and export["merges"] == []
    # the two records he was derived from, and the failed order that names his e-mail address
    assert [(r["key"], r["status"], r["body_encoding"]) for r in export["inbox"]] == [
        ("w-1", "processed", "utf-8"), ("w-2", "processed", "utf-8"), ("w-4", "failed", "utf-8")]
    assert export["inbox"][0]["body"] == fixture_body("customers_create").decode()
    assert export["inbox"][1]["headers"]["x-shopify-topic"] == "customers/update"


def test_export_and_erase_need_the_admin_scope(bob_and_john, api):
    bob = profile_of(api, f"shopify_customer_id:{BOB}")
    assert api.get(f"/api/v1/profiles/{bob}/export", token=READ_TOKEN).status_code == 403
    assert api.get(f"/api/v1/profiles/{bob}/export", token=None).status_code == 401
    assert delete(api, bob, token=READ_TOKEN).status_code == 403
    assert delete(api, bob, token=None).status_code == 401
    assert delete(api, bob, token="wrong").get_json() == {
        "error": {"code": "unauthorized", "message": "a valid bearer token is required (Authorization: Bearer <token>)"}}
    assert api.get(f"/api/v1/profiles/{bob}").status_code == 200


def test_after_an_erase_no_table_holds_anything_of_the_person(bob_and_john, api, db_engine):
    bob = profile_of(api, f"shopify_customer_id:{BOB}")
    john = profile_of(api, "email:john@example.com")
    assert ("inbox", "bob@biller.com") in traces_in_database(db_engine)
    john_before = api.get(f"/api/v1/profiles/{john}/export", token=OPS_TOKEN).get_json()

    response = delete(api, bob)
    assert (response.status_code, response.data) == (204, b"")

    assert traces_in_database(db_engine) == []
    assert [(key.startswith("erased:"), status) for _, key, status in inbox(bob_and_john)] == [
        (True, "erased"), (True, "erased"), (False, "processed"), (True, "erased")]
    assert api.get(f"/api/v1/profiles/{john}/export", token=OPS_TOKEN).get_json() == john_before
    gone = api.get(f"/api/v1/profiles/{bob}")
    assert (gone.status_code, gone.get_json()) == (410, {"error": {"code": "gone", "message": "profile erased"}})
    assert api.get(f"/api/v1/profiles/{bob}/timeline").status_code == 410
    assert api.get(f"/api/v1/profiles/{bob}/export", token=OPS_TOKEN).status_code == 410
    assert api.get("/api/v1/profiles", email="bob@biller.com").get_json() == {"items": [], "next_cursor": None}
    changes = api.get("/api/v1/changes").get_json()["items"]
    assert [(c["type"], c["profile_id"], c["data"]) for c in changes if c["type"] == "profile.erased"] == [
        ("profile.erased", bob, {"merged_ids": []})]


def test_an_erase_is_idempotent_and_an_unknown_id_is_404(bob_and_john, api):
    bob = profile_of(api, f"shopify_customer_id:{BOB}")
    assert delete(api, bob).status_code == 204
    assert delete(api, bob).status_code == 204
    missing = delete(api, "00000000-0000-0000-0000-000000000000")
    assert (missing.status_code, missing.get_json()) == (404, {"error": {"code": "not_found",
                                                                         "message": "profile not found"}})
    assert delete(api, "x" * 37).status_code == 404
    with api.app.extensions["tributary"].session() as session:
        erased = session.scalars(select(Change.type).where(Change.type == "profile.erased")).all()
    assert erased == ["profile.erased"]


def test_later_records_about_an_erased_person_create_nothing_and_keep_nothing(bob_and_john, api, db_engine):
    bob = profile_of(api, f"shopify_customer_id:{BOB}")
    assert delete(api, bob).status_code == 204
    store = profiles_snapshot(db_engine)

    deliver(bob_and_john, "customers/update", variant("customers_update", updated_at="2025-01-01T00:00:00Z",
                                                      email="  BOB@biller.com"), "w-5")
    deliver(bob_and_john, "customers/update", fixture_body("customers_update"), "w-2")  # a platform retry

    assert profiles_snapshot(db_engine) == store
    assert traces_in_database(db_engine) == []
    assert [status for _, _, status in inbox(bob_and_john)][-2:] == ["erased", "erased"]


def test_a_rebuild_after_an_erase_gives_the_same_store(bob_and_john, api, db_engine):
    bob = profile_of(api, f"shopify_customer_id:{BOB}")
    assert delete(api, bob).status_code == 204
    store = profiles_snapshot(db_engine)
    assert rebuild(bob_and_john.extensions["tributary"]) == 1  # John's order: Bob's records are erased
    assert profiles_snapshot(db_engine) == store
    assert traces_in_database(db_engine) == []


def test_erasing_a_merged_away_id_erases_the_whole_person(api, store, db_engine):
    store.write(rec("shop", ("email", "ana@example.com"), traits={"first_name": "Ana"}))
    store.write(rec("pay", ("phone", "+14155550100"), at=1))
    store.write(rec("desk", ("email", "ana@example.com"), ("phone", "+14155550100"), at=2))
    survivor = store.profile_of("email", "ana@example.com")
    with db_engine.connect() as connection:
        merged = connection.scalar(text("SELECT merged_id FROM merges"))
    assert merged != survivor

    assert delete(api, merged).status_code == 204

    assert traces_in_database(db_engine, ("ana", "4155550100")) == []
    assert api.get(f"/api/v1/profiles/{survivor}").status_code == 410
    assert api.get(f"/api/v1/profiles/{merged}").status_code == 410
    changes = api.get("/api/v1/changes").get_json()["items"]
    assert [(c["profile_id"], c["data"]) for c in changes if c["type"] == "profile.erased"] == [
        (survivor, {"merged_ids": [merged]})]
