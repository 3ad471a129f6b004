"""Property-based run of schemathesis against the served OpenAPI document.

Every operation gets generated requests (valid and invalid), with a read+admin token (or the
generated, invalid Authorization header of a negative case), on a
live profile, a merged-away one and generated ids; each answer must not be a 5xx and must
conform to the document (status, content type, headers, body schema).
"""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hub import evaluation
from tests.api.conftest import OPS_TOKEN, T0, TOKENS, act, rec

AUTH = {"Authorization": f"Bearer {OPS_TOKEN}"}  # read and admin: every operation can succeed
#: values only the server can mint (a cursor) or that must name a configured segment: schema-valid yet refused
SERVER_MINTED = {"cursor", "segment"}
MAX_EXAMPLES = 20


@pytest.fixture
def served(make_app, store):
    """The app with a live profile (traits, activities, a stage, a segment) and a merged-away one."""
    store.write(rec("shopify", ("email", "gus@example.com"), ("shopify_customer_id", "g-1"), at=0,
                    traits={"first_name": "Gus", "address": {"city": "Porto"}},
                    activities=[act("order.placed", "o-1", 1, amount="12.00", currency="EUR"),
                                act("page.viewed", "pv-1", 2, url="/")]))
    store.write(rec("website", ("website_anonymous_id", "anon-g"), at=1))
    merged = store.profile_of("website_anonymous_id", "anon-g")
    store.write(rec("website", ("website_anonymous_id", "anon-g"), ("email", "gus@example.com"), at=3))
    live = store.profile_of("email", "gus@example.com")
    app = make_app(api_tokens=TOKENS, lifecycle={"preset": "standard"},
                   segments={"buyers": {"rule": {"stage": "conversion"}, "description": "Bought once"}})
    hub = app.extensions["tributary"]
    with hub.session.begin() as session:
        evaluation.evaluate(session, hub.config, [live], T0, full=[live])
    store.pin(live, lead_score=61.0, churn_risk=0.4)
    return app, live, merged


def run_operation(operation, mode, path_parameters):
    """Bounded hypothesis run of one operation in one generation mode."""

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def check(case):
        header = (case.meta.components if case.meta else {}).get(ParameterLocation.HEADER)
        if header is None or header.mode is GenerationMode.POSITIVE:
            case.headers = {**(case.headers or {}), **AUTH}  # a generated token would just be refused
        excluded = [positive_data_acceptance] if SERVER_MINTED & set(case.query or {}) else []
        response = case.call_and_validate(excluded_checks=excluded)
        assert response.status_code < 500

    check()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms_to_the_document(served, mode):
    app, live, merged = served
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    operations.sort(key=lambda operation: operation.method == "delete")  # erase last: reads see live data
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        fixed_values = ([{"profile_id": live}, {"profile_id": merged}, None] if "profile_id" in names
                        else [{"name": "buyers"}, None] if "name" in names else [None])
        for fixed in fixed_values:
            run_operation(operation, mode, fixed)
