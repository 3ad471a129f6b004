"""Bearer tokens and scopes: 401 without a valid token, 403 without the scope, no token leaks."""
import hmac
import logging

import pytest

from hub.api import auth
from tests.api.conftest import ADMIN_ONLY_TOKEN, OPS_TOKEN, READ_TOKEN, TOKENS, rec

ENDPOINTS = ["/api/v1/profiles", "/api/v1/profiles/{id}", "/api/v1/profiles/{id}/timeline",
             "/api/v1/profiles/{id}/identities", "/api/v1/segments", "/api/v1/stats/lifecycle"]
UNAUTHORIZED = {"error": {"code": "unauthorized",
                          "message": "a valid bearer token is required (Authorization: Bearer <token>)"}}


@pytest.fixture
def fay(store):
    store.write(rec("shopify", ("email", "fay@example.com"), at=0))
    return store.profile_of("email", "fay@example.com")


WRONG_AUTHORIZATIONS = [
    None,
    f"Bearer {READ_TOKEN}x",
    f"Bearer {READ_TOKEN[:-1]}",
    "Bearer ",
    "Bearer",
    f"Basic {READ_TOKEN}",
    READ_TOKEN,
]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_missing_or_wrong_token_answers_401(api, fay, path):
    for authorization in WRONG_AUTHORIZATIONS:
        headers = {"Authorization": authorization} if authorization is not None else {}
        response = api.get(path.format(id=fay), token=None, headers=headers)
        assert response.status_code == 401, authorization
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.get_json() == UNAUTHORIZED


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_token_without_the_read_scope_answers_403(api, fay, path):
    response = api.get(path.format(id=fay), token=ADMIN_ONLY_TOKEN)
    assert response.status_code == 403
    assert response.get_json() == {"error": {"code": "forbidden", "message": "this token lacks the 'read' scope"}}


@pytest.mark.parametrize("path", ENDPOINTS)
def test_tokens_with_the_read_scope_are_let_in(api, fay, path):
    for token in (READ_TOKEN, OPS_TOKEN):
        assert api.get(path.format(id=fay), token=token).status_code == 200


def test_the_scheme_is_case_insensitive_and_spaces_are_trimmed(api, fay):
    response = api.get("/api/v1/profiles", token=None, headers={"Authorization": f"bearer   {READ_TOKEN} "})
    assert response.status_code == 200


def test_authentication_comes_before_validation(api):
    assert api.get("/api/v1/profiles", token=None, limit="0").status_code == 401
    assert api.get("/api/v1/profiles", token=ADMIN_ONLY_TOKEN, limit="0").status_code == 403
    assert api.get("/api/v1/profiles", limit="0").status_code == 400


def test_no_token_configured_lets_nobody_in(make_app):
    from tests.api.conftest import ApiClient

    client = ApiClient(make_app())
    assert client.get("/api/v1/profiles").status_code == 401


def test_every_configured_token_is_compared_even_after_a_match(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    assert auth.match_token(READ_TOKEN, TOKENS)["name"] == "analytics"
    assert len(calls) == len(TOKENS)
    calls.clear()
    assert auth.match_token("wrong", TOKENS) is None
    assert len(calls) == len(TOKENS)


def test_tokens_never_reach_logs_or_responses(api, fay, caplog, monkeypatch):
    from hub.api import queries

    caplog.set_level(logging.DEBUG)
    bodies = [api.get("/api/v1/profiles", token=token).data
              for token in (READ_TOKEN, ADMIN_ONLY_TOKEN, READ_TOKEN + "x")]
    monkeypatch.setattr(queries, "profile_page", lambda *a, **k: 1 / 0)
    failed = api.get("/api/v1/profiles", token=READ_TOKEN)
    assert failed.status_code == 500
    bodies.append(failed.data)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "ZeroDivisionError" in logged
    for token in (READ_TOKEN, ADMIN_ONLY_TOKEN, OPS_TOKEN):
        assert token not in logged
        assert all(token.encode() not in body for body in bodies)


def test_the_document_is_public_and_declares_the_bearer_scheme(api):
    response = api.get("/api/v1/openapi.json", token=None)
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["components"]["securitySchemes"] == {"bearerAuth": {
        "type": "http", "scheme": "bearer",
        "description": "A token from `api_tokens` in hub.yaml: `Authorization: Bearer <token>`"}}
    operations = [op for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)
                  and "responses" in op]
    assert len(operations) == 10
    for operation in operations:
        assert operation["security"] == [{"bearerAuth": []}]
        assert {"401", "403"} <= set(operation["responses"])
