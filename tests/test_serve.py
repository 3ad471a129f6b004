"""`hub serve` in the embedded mode, as `make run` starts it: real gunicorn, real HTTP."""
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.conftest import ROOT, wait_for
from tests.test_faults import free_port

pytestmark = pytest.mark.slow
EXAMPLE = ROOT / "hub.example.yaml"


@pytest.fixture
def served(tmp_path):
    port = free_port()
    env = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "HUB_CONFIG": str(EXAMPLE),
           "HUB_DATABASE_URL": f"sqlite:///{tmp_path}/tributary.db", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port)], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()

    def healthy():
        try:
            return requests.get(f"{base}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            assert process.poll() is None, process.stdout.read()
            return False

    wait_for(healthy, timeout=60, interval=0.2)
    yield base, env, time.monotonic() - started
    process.terminate()
    process.wait(timeout=30)
    process.stdout.close()


def signed_page_view(msg_id: str, event_id: str) -> tuple[str, dict]:
    """A website webhook signed with the example configuration's demo secret."""
    secret = "whsec_dHJpYnV0YXJ5LWRlbW8td2Vic2l0ZS1zZWNyZXQ="
    body = json.dumps({"events": [{"id": event_id, "type": "page.viewed", "anonymous_id": "a1"}]})
    now = datetime.now(timezone.utc)
    return body, {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                  "webhook-signature": Webhook(secret).sign(msg_id, now, body),
                  "content-type": "application/json"}


def inbox_stats(env, cwd) -> list[str]:
    """The last line of `hub inbox stats`, split: connector, pending, processed, failed."""
    result = subprocess.run([sys.executable, "-m", "hub", "inbox", "stats"], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=60)
    return result.stdout.splitlines()[-1].split()


def test_serve_answers_health_then_accepts_and_processes_a_webhook(served, tmp_path):
    base, env, startup = served
    assert startup < 60
    assert requests.get(f"{base}/healthz").json() == {
        "status": "ok", "checks": {"database": "ok", "redis": "not configured (embedded jobs)"}}
    body, headers = signed_page_view("msg_1", "pv-1")
    assert requests.post(f"{base}/webhooks/website", data=body, headers=headers).status_code == 202
    assert requests.post(f"{base}/webhooks/website", data=body, headers=headers).status_code == 200

    wait_for(lambda: inbox_stats(env, tmp_path) == ["website", "0", "1", "0"], timeout=30, interval=0.5)
    metrics = requests.get(f"{base}/metrics").text
    assert 'tributary_inbox_rows{connector="website",status="processed"} 1.0' in metrics
    assert 'tributary_webhook_requests_total{code="202",connector="website"} 1.0' in metrics


def test_concurrent_webhooks_are_each_stored_once_and_answered_for_themselves(served, tmp_path):
    base, env, _ = served
    requests_to_send = [signed_page_view(f"msg_{i}", f"pv-{i}") for i in range(60)]
    requests_to_send += [signed_page_view("msg_7", "pv-7"), signed_page_view("msg_8", "pv-8")]  # redeliveries

    def post(request):
        body, headers = request
        with requests.Session() as session:
            return session.post(f"{base}/webhooks/website", data=body, headers=headers).json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, requests_to_send))
    accepted = [a for a in answers if a["status"] == "accepted"]
    assert len(accepted) == 60 and all(a == {"status": "accepted", "accepted": 1, "duplicates": 0}
                                       for a in accepted)
    assert [a for a in answers if a["status"] != "accepted"] == [
        {"status": "duplicate", "accepted": 0, "duplicates": 1}] * 2
    wait_for(lambda: inbox_stats(env, tmp_path) == ["website", "0", "60", "0"], timeout=60, interval=0.5)


def test_a_chunked_body_over_the_limit_is_413(served):
    base, _, _ = served

    def chunks():
        for _ in range(1100):
            yield b"x" * 1024

    response = requests.post(f"{base}/webhooks/website", data=chunks())
    assert response.status_code == 413
    assert response.json() == {"error": {"code": "too_large", "message": "body over 1048576 bytes"}}
