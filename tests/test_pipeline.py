"""From webhook to profile: the website source through the real pipeline, and rebuild."""
import json

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.cli import main
from hub.models import Activity, Identity, InboxRecord, InboxState, Profile, Trait
from hub.rebuild import rebuild
from tests.conftest import wait_for
from tests.test_website import SECRET, send


def snapshot(engine):
    """The store in a form that does not depend on ids: people by identities, with their data."""
    with Session(engine) as session:
        people = {}
        for ident in session.scalars(select(Identity)):
            people.setdefault(ident.profile_id, []).append((ident.type, ident.value))
        result = []
        for profile_id, idents in people.items():
            traits = {t.name: t.value for t in session.scalars(select(Trait).where(Trait.profile_id == profile_id))}
            timeline = sorted((a.type, a.source_id, a.occurred_at.isoformat()) for a in session.scalars(
                select(Activity).where(Activity.profile_id == profile_id)))
            metrics = session.get(Profile, profile_id).metrics
            result.append((sorted(idents), traits, timeline, metrics))
        return sorted(result, key=repr)


def settled(app):
    hub = app.extensions["tributary"]
    with hub.session() as session:
        return not session.scalar(select(InboxState.inbox_id).where(InboxState.status == "pending"))


def test_an_anonymous_visitor_joins_the_person_when_identified(make_app, db_engine, tmp_path, database_url):
    app = make_app(connectors={"echo": {"enabled": False},
                               "website": {"enabled": True, "webhook_secret": SECRET}})
    client = app.test_client()
    pages = [{"id": f"pv-{i}", "type": "page.viewed", "anonymous_id": "anon-7",
              "timestamp": f"2026-11-01T10:0{i}:00Z", "properties": {"url": f"https://shop.example.com/{i}"}}
             for i in range(2)]
    assert send(client, {"events": pages}, msg_id="m1").status_code == 202
    identify = {"id": "id-1", "type": "identify", "anonymous_id": "anon-7", "email": " Ana@Example.com ",
                "timestamp": "2026-11-01T10:05:00Z", "traits": {"first_name": "Ana"}}
    form = {"id": "f-1", "type": "form.submitted", "email": "ana@example.com",
            "timestamp": "2026-11-01T10:06:00Z", "properties": {"form_id": "newsletter"}}
    assert send(client, {"events": [identify, form]}, msg_id="m2").status_code == 202
    wait_for(lambda: settled(app))
    assert snapshot(db_engine) == [(
        [("email", "ana@example.com"), ("website_anonymous_id", "anon-7")],
        {"email": "ana@example.com", "first_name": "Ana"},
        [("form.submitted", "f-1", "2026-11-01T10:06:00+00:00"),
         ("page.viewed", "pv-0", "2026-11-01T10:00:00+00:00"),
         ("page.viewed", "pv-1", "2026-11-01T10:01:00+00:00")],
        {"orders_count": 0, "total_spent": {}, "currency": None, "last_order_at": None, "payments_count": 0,
         "total_paid": {}, "open_tickets": 0, "first_seen_at": "2026-11-01T10:00:00+00:00",
         "last_seen_at": "2026-11-01T10:06:00+00:00"},
    )]
    config = tmp_path / "hub.yaml"
    config.write_text(json.dumps({"database_url": database_url, "connectors": {
        "website": {"enabled": True, "webhook_secret": SECRET}}}))
    shown = CliRunner().invoke(main, ["--config", str(config), "profiles", "show", "ANA@example.com"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    assert document["identities"] == [
        {"type": "email", "value": "ana@example.com", "source": "website"},
        {"type": "website_anonymous_id", "value": "anon-7", "source": "website"}]
    assert [a["source_id"] for a in document["timeline"]] == ["f-1", "pv-1", "pv-0"]
    missing = CliRunner().invoke(main, ["--config", str(config), "profiles", "show", "email:nobody@example.com"])
    assert (missing.exit_code, missing.output.strip()) == (1, "no profile holds email:nobody@example.com")


def test_rebuild_gives_the_same_store_as_incremental_processing(make_app, db_engine):
    app = make_app(connectors={"echo": {"enabled": False},
                               "website": {"enabled": True, "webhook_secret": SECRET}})
    client = app.test_client()
    events = []
    for person in range(6):
        anon = f"anon-{person}"
        events += [{"id": f"pv-{person}-{i}", "type": "page.viewed", "anonymous_id": anon,
                    "timestamp": f"2026-11-0{1 + i}T10:00:00Z"} for i in range(3)]
        events.append({"id": f"id-{person}", "type": "identify", "anonymous_id": anon,
                       "email": f"p{person % 4}@example.com", "timestamp": "2026-11-05T10:00:00Z",
                       "traits": {"first_name": f"P{person}"}})
    for start in range(0, len(events), 5):
        assert send(client, {"events": events[start:start + 5]}, msg_id=f"m{start}").status_code == 202
    wait_for(lambda: settled(app))
    incremental = snapshot(db_engine)
    assert len(incremental) == 4  # six visitors, four e-mail addresses
    hub = app.extensions["tributary"]
    with app.app_context():
        assert rebuild(hub) == len(events)
    assert snapshot(db_engine) == incremental


def test_a_record_the_mapping_cannot_read_fails_alone(make_app, db_engine):
    app = make_app(connectors={"echo": {"enabled": False},
                               "website": {"enabled": True, "webhook_secret": SECRET}},
                   inbox={"max_attempts": 1})
    client = app.test_client()
    good = {"id": "ok", "type": "page.viewed", "anonymous_id": "a1"}
    bad = {"id": "bad", "type": "page.viewed", "anonymous_id": "a2", "timestamp": "yesterday"}
    assert send(client, {"events": [good, bad]}).status_code == 202
    wait_for(lambda: settled(app))
    hub = app.extensions["tributary"]
    with hub.session() as session:
        rows = session.execute(select(InboxRecord.key, InboxState.status, InboxState.error)
                               .join_from(InboxRecord, InboxState).order_by(InboxRecord.id)).all()
    assert [tuple(r) for r in rows] == [("ok", "processed", None),
                                        ("bad", "failed", "ValueError: not a timestamp: 'yesterday'")]
    assert [p[0] for p in snapshot(db_engine)] == [[("website_anonymous_id", "a1")]]


def test_a_bad_merge_is_split_and_stays_split(make_app, db_engine, tmp_path, database_url):
    app = make_app(connectors={"echo": {"enabled": False},
                               "website": {"enabled": True, "webhook_secret": SECRET}})
    client = app.test_client()
    # a shared computer: two people browse with the same anonymous id and both identify
    first = [{"id": "a1", "type": "page.viewed", "anonymous_id": "kiosk", "timestamp": "2026-11-01T10:00:00Z"},
             {"id": "a2", "type": "form.submitted", "email": "amy@example.com", "timestamp": "2026-11-01T10:01:00Z",
              "traits": {"first_name": "Amy"}}]
    assert send(client, {"events": first}, msg_id="m1").status_code == 202
    wait_for(lambda: settled(app))
    second = [{"id": "b1", "type": "form.submitted", "email": "ben@example.com", "timestamp": "2026-11-01T11:00:00Z",
               "traits": {"first_name": "Ben"}},
              {"id": "b2", "type": "identify", "anonymous_id": "kiosk", "email": "ben@example.com",
               "timestamp": "2026-11-01T11:05:00Z"}]
    assert send(client, {"events": second}, msg_id="m2").status_code == 202
    wait_for(lambda: settled(app))
    assert sorted(p[0] for p in snapshot(db_engine)) == [
        [("email", "amy@example.com")], [("email", "ben@example.com"), ("website_anonymous_id", "kiosk")]]
    with Session(db_engine) as session:
        ben = session.scalar(select(Identity.profile_id).where(Identity.value == "ben@example.com"))
        kiosk = session.scalar(select(Identity.profile_id).where(Identity.value == "kiosk"))
        merged = session.scalar(select(Profile.id).where(Profile.merged_into.is_not(None)))
    assert ben == kiosk and merged is not None
    config = tmp_path / "hub.yaml"
    config.write_text(json.dumps({"database_url": database_url, "connectors": {
        "website": {"enabled": True, "webhook_secret": SECRET}}}))
    result = CliRunner().invoke(main, ["--config", str(config), "profiles", "unmerge", merged])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"split {merged} from {ben}"
    after = sorted(p[:3] for p in snapshot(db_engine))
    assert after == sorted([
        ([("email", "amy@example.com")], {"email": "amy@example.com", "first_name": "Amy"},
         [("form.submitted", "a2", "2026-11-01T10:01:00+00:00")]),
        ([("email", "ben@example.com")], {"email": "ben@example.com", "first_name": "Ben"},
         [("form.submitted", "b1", "2026-11-01T11:00:00+00:00")]),
        ([("website_anonymous_id", "kiosk")], {}, [("page.viewed", "a1", "2026-11-01T10:00:00+00:00")]),
    ])
    # the same evidence again does not merge them back
    again = [{"id": "b3", "type": "identify", "anonymous_id": "kiosk", "email": "ben@example.com",
              "timestamp": "2026-11-01T12:00:00Z"}]
    assert send(client, {"events": again}, msg_id="m3").status_code == 202
    wait_for(lambda: settled(app))
    assert sorted(p[0] for p in snapshot(db_engine)) == [
        [("email", "amy@example.com")], [("email", "ben@example.com")], [("website_anonymous_id", "kiosk")]]
    twice = CliRunner().invoke(main, ["--config", str(config), "profiles", "unmerge", merged])
    assert (twice.exit_code, twice.output.strip()) == (1, f"hub: profile {merged} is not merged into another")
