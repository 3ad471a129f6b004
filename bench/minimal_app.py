"""The baseline for bench/ingest.py: verify the HMAC, INSERT the body, enqueue, nothing else."""
import base64
import hashlib
import hmac
import os

import redis
from flask import Flask, request
from sqlalchemy import create_engine, text

SECRET = base64.b64decode(os.environ["BENCH_SECRET"].removeprefix("whsec_"))
engine = create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=5)
queue = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
app = Flask(__name__)
INSERT = text("INSERT INTO minimal_inbox (key, body) VALUES (:key, :body) "
              "ON CONFLICT (key) DO NOTHING RETURNING id")


@app.post("/webhooks/website")
def receive():
    body = request.get_data()
    msg_id, stamp = request.headers["webhook-id"], request.headers["webhook-timestamp"]
    digest = hmac.new(SECRET, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    if not hmac.compare_digest(expected, request.headers.get("webhook-signature", "")):
        return "bad signature", 401
    with engine.begin() as connection:
        row = connection.execute(INSERT, {"key": msg_id, "body": body}).first()
    if row is None:
        return "duplicate", 200
    queue.lpush("minimal:queue", row[0])
    return "accepted", 202


hello = Flask("hello")


@hello.post("/webhooks/website")
def answer_only():
    return "accepted", 202
