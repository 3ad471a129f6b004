"""The OpenAPI document, the error shape everywhere under /api/v1, and the rest of the app untouched."""
from hub.api import init_api, queries


def test_the_document_names_the_api_and_its_operations(api):
    spec = api.get("/api/v1/openapi.json", token=None).get_json()
    assert (spec["openapi"], spec["info"]["title"]) == ("3.0.3", "Tributary")
    assert sorted(spec["paths"]) == ["/api/v1/changes", "/api/v1/profiles", "/api/v1/profiles/{profile_id}",
                                     "/api/v1/profiles/{profile_id}/export",
                                     "/api/v1/profiles/{profile_id}/identities",
                                     "/api/v1/profiles/{profile_id}/timeline", "/api/v1/segments",
                                     "/api/v1/segments/{name}/members", "/api/v1/stats/lifecycle"]
    listing = spec["paths"]["/api/v1/profiles"]["get"]
    assert [p["name"] for p in listing["parameters"]] == [
        "limit", "cursor", "email", "phone", "identifier", "lifecycle_stage", "segment", "updated_since"]
    assert listing["responses"]["400"] == {"$ref": "#/components/responses/BAD_REQUEST"}
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    assert spec["components"]["schemas"]["Profile"]["required"] == sorted([
        "id", "traits", "identities", "lifecycle_stage", "lead_score", "churn_risk", "metrics", "segments",
        "created_at", "updated_at"])
    moved = spec["paths"]["/api/v1/profiles/{profile_id}"]["get"]["responses"]["301"]
    assert "Location" in moved["headers"]
    assert sorted(spec["paths"]["/api/v1/profiles/{profile_id}"]) == ["delete", "get", "parameters"]
    erase = spec["paths"]["/api/v1/profiles/{profile_id}"]["delete"]
    assert sorted(erase["responses"]) == ["204", "400", "401", "403", "404", "default"]


def test_init_api_twice_changes_nothing(api_app):
    assert init_api(api_app) is init_api(api_app)


def test_unknown_paths_and_methods_under_the_api_answer_the_error_shape(api):
    missing = api.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"
    wrong_method = api.client.post("/api/v1/profiles", headers={"Authorization": "Bearer x"})
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["error"]["code"] == "method_not_allowed"


def test_an_unexpected_failure_answers_500_without_details(api, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database said something internal")

    monkeypatch.setattr(queries, "profile_page", broken)
    response = api.get("/api/v1/profiles")
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal_error", "message": "internal server error"}}


def test_the_rest_of_the_app_keeps_its_own_error_handler(api_app):
    client = api_app.test_client()
    response = client.get("/not-an-api-path")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert client.get("/healthz").status_code == 200
