def test_healthz_embedded(make_app):
    response = make_app().test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {
        "database": "ok", "redis": "not configured (embedded jobs)"}}


def test_healthz_with_redis(make_app, redis_url):
    response = make_app(redis_url=redis_url).test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_healthz_names_the_failing_parts_without_secrets(make_app, tmp_path):
    app = make_app(database_url="postgresql+psycopg://hub:pa55word@127.0.0.1:1/nowhere",
                   redis_url="redis://:pa55word@127.0.0.1:1/0")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "checks": {
        "database": "error: OperationalError", "redis": "error: ConnectionError"}}
    assert b"pa55word" not in response.data


def test_unknown_paths_answer_json(make_app):
    response = make_app().test_client().get("/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
