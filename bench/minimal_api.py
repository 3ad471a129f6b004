"""The baseline for bench/api.py: the same lookups as one indexed SELECT each, answered as JSON."""
import hmac
import os

from flask import Flask, abort, jsonify, request
from sqlalchemy import create_engine, text

TOKEN = os.environ["BENCH_API_TOKEN"]
engine = create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=5)
app = Flask(__name__)
BY_EMAIL = text("SELECT p.id, p.metrics, p.updated_at FROM identities i JOIN profiles p ON p.id = i.profile_id "
                "WHERE i.type = 'email' AND i.value = :email")
BY_ID = text("SELECT id, metrics, updated_at FROM profiles WHERE id = :id")


def _authorized() -> None:
    if not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {TOKEN}"):
        abort(401)


def _document(row) -> dict:
    return {"id": row.id, "metrics": row.metrics, "updated_at": row.updated_at.isoformat()}


@app.get("/api/v1/profiles")
def by_email():
    _authorized()
    with engine.connect() as connection:
        rows = connection.execute(BY_EMAIL, {"email": request.args["email"].strip().lower()}).all()
    return jsonify(items=[_document(r) for r in rows], next_cursor=None)


@app.get("/api/v1/profiles/<profile_id>")
def by_id(profile_id: str):
    _authorized()
    with engine.connect() as connection:
        row = connection.execute(BY_ID, {"id": profile_id}).first()
    if row is None:
        abort(404)
    return jsonify(_document(row))


@app.get("/healthz")
def healthz():
    return "ok"
