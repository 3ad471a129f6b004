"""The standard tests every installed connector must pass (in the spirit of singer-sdk's)."""
import pytest
from marshmallow import ValidationError

from hub.config import ConnectorSettingsSchema
from hub.connector import Connector, SignatureError, WebhookRequest
from hub.mapping import MAPPINGS_DIR, load_mapping
from hub.plugins import collect_connectors, collect_transforms, get_plugin_manager
from hub.unified import ACTIVITY_TYPES
from tests.conftest import BUILT_IN_CONNECTORS

PM = get_plugin_manager()
CONNECTORS = collect_connectors(PM)
TRANSFORMS = collect_transforms(PM)


def test_every_built_in_connector_is_installed():
    assert sorted(CONNECTORS) == BUILT_IN_CONNECTORS


@pytest.fixture(params=BUILT_IN_CONNECTORS)
def connector(request) -> Connector:
    return CONNECTORS[request.param]


def test_it_declares_its_settings(connector):
    schema = connector.settings_schema
    assert issubclass(schema, ConnectorSettingsSchema)
    assert {"enabled", "api_base"} <= set(schema().fields)
    with pytest.raises(ValidationError) as info:
        schema().load({"enabled": True})  # an enabled connector needs its secret
    assert all(messages == ["Missing data for required field."] for messages in info.value.messages.values())


@pytest.mark.parametrize("body, headers", [
    (b"", {}),
    (b'{"id": "evt_1", "type": "x"}', {}),
    (b"\x00\xff garbage", {"X-Signature": "v1,AAAA", "Authorization": "Basic Zm9vOmJhcg=="}),
])
def test_its_signature_check_rejects_garbage(connector, body, headers):
    request = WebhookRequest(method="POST", headers=headers, query={}, body=body)
    settings = {name: _filler(name) for name, field in connector.settings_schema().fields.items()
                if field.required}
    with pytest.raises(SignatureError):
        connector.verify(request, settings)


def _filler(name: str) -> str:
    """A plausible setting value that signs nothing the garbage carries."""
    if name == "verification_key":  # a P-256 public key (SendGrid)
        return ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPT"
                "pRdhUa3YAKKO/j9fsh5ml4o+gA==")
    if name == "webhook_secret":
        return "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
    return "configured-value-0123456789"


def test_its_mapping_is_valid_and_speaks_the_vocabulary(connector):
    mapping = load_mapping(connector.name, TRANSFORMS, {"default_region": "US"})
    assert mapping is not None, f"mappings/{connector.name}.yaml is missing"
    emitted = {a["type"] for event in mapping.events.values() for a in event.get("activities", [])}
    assert emitted and emitted <= set(ACTIVITY_TYPES)
    assert (MAPPINGS_DIR / f"{connector.name}.yaml").exists()
