"""`hub serve` in the embedded mode, as `make run` starts it: real gunicorn, real HTTP."""
import json
import subprocess
import sys
import time
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


def test_serve_answers_health_then_accepts_and_processes_a_webhook(served, tmp_path):
    base, env, startup = served
    assert startup < 60
    assert requests.get(f"{base}/healthz").json() == {
        "status": "ok", "checks": {"database": "ok", "redis": "not configured (embedded jobs)"}}
    secret = "whsec_dHJpYnV0YXJ5LWRlbW8td2Vic2l0ZS1zZWNyZXQ="  # the example's demo secret
    body = json.dumps({"events": [{"id": "pv-1", "type": "page.viewed", "anonymous_id": "a1"}]})
    now = datetime.now(timezone.utc)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(secret).sign("msg_1", now, body),
               "content-type": "application/json"}
    assert requests.post(f"{base}/webhooks/website", data=body, headers=headers).status_code == 202
    assert requests.post(f"{base}/webhooks/website", data=body, headers=headers).status_code == 200

    def stats():
        result = subprocess.run([sys.executable, "-m", "hub", "inbox", "stats"], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        return result.stdout.splitlines()[-1].split() == ["website", "0", "1", "0"]

    wait_for(stats, timeout=30, interval=0.5)
    metrics = requests.get(f"{base}/metrics").text
    assert 'tributary_inbox_rows{connector="website",status="processed"} 1.0' in metrics
    assert 'tributary_webhook_requests_total{code="202",connector="website"} 1.0' in metrics


def test_a_chunked_body_over_the_limit_is_413(served):
    base, _, _ = served

    def chunks():
        for _ in range(1100):
            yield b"x" * 1024

    response = requests.post(f"{base}/webhooks/website", data=chunks())
    assert response.status_code == 413
    assert response.json() == {"error": {"code": "too_large", "message": "body over 1048576 bytes"}}
