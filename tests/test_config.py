import subprocess
import sys

import pytest

from hub.config import ConfigError, normalize_database_url, read_config, validate_config
from hub.plugins import collect_connectors, get_plugin_manager
from tests.conftest import BUILT_IN_CONNECTORS, ROOT


def load(tree, env=None):
    pm = get_plugin_manager(["tests.plugins.echo"])
    schemas = {name: c.settings_schema for name, c in collect_connectors(pm).items()}
    return validate_config(read_config(tree, env=env or {}), schemas)


def problems_of(tree, env=None):
    with pytest.raises(ConfigError) as info:
        load(tree, env)
    return info.value.problems


def test_defaults_are_the_embedded_mode():
    config = load({})
    assert config.database_url == "sqlite:///tributary.db"
    assert config.redis_url is None
    assert config.embedded is True
    assert config.webhooks == {"max_body_bytes": 1048576}
    assert config.inbox["batch_size"] == 500
    assert config.inbox["max_attempts"] == 8


def test_env_references_are_resolved_everywhere():
    env = {"SECRET": "s3cr3t-value", "TOKEN": "t" * 20}
    config = load({
        "api_tokens": [{"name": "ops", "token": "${TOKEN}", "scopes": ["read", "admin"]}],
        "connectors": {"echo": {"enabled": True, "webhook_secret": "pre-${SECRET}-$${LITERAL}"}},
    }, env)
    assert config.connectors["echo"] == {"enabled": True, "api_base": None,
                                         "webhook_secret": "pre-s3cr3t-value-${LITERAL}"}
    assert config.api_tokens == [{"name": "ops", "token": "t" * 20, "scopes": ["read", "admin"]}]


def test_missing_env_variable_names_the_key():
    assert problems_of({"connectors": {"echo": {"enabled": True, "webhook_secret": "${NOPE}"}}}) == {
        "connectors.echo.webhook_secret": "environment variable NOPE is not set"
    }


def test_environment_overrides_the_file():
    env = {"HUB_DATABASE_URL": "postgresql://hub@db/hub", "HUB_REDIS_URL": "redis://r:6379/0"}
    config = load({"database_url": "sqlite:///other.db"}, env)
    assert config.database_url == "postgresql+psycopg://hub@db/hub"
    assert config.redis_url == "redis://r:6379/0"
    assert config.embedded is False


def test_unknown_keys_and_bad_values_are_named():
    assert problems_of({"databse_url": "x", "inbox": {"batch_size": "many"}}) == {
        "databse_url": "Unknown field.",
        "inbox.batch_size": "Not a valid integer.",
    }


def test_api_token_rules():
    assert problems_of({"api_tokens": [{"name": "a", "token": "short", "scopes": ["write"]}]}) == {
        "api_tokens[0].token": "must be at least 16 characters",
        "api_tokens[0].scopes[0]": "Must be one of: read, admin.",
    }


def test_unknown_connector_lists_the_known_ones():
    assert problems_of({"connectors": {"nope": {"enabled": True}}}) == {
        "connectors.nope": "unknown connector (known: " + ", ".join(sorted(["echo", *BUILT_IN_CONNECTORS])) + ")"
    }


def test_enabled_connector_needs_its_keys_but_a_disabled_one_does_not():
    assert problems_of({"connectors": {"echo": {"enabled": True}}}) == {
        "connectors.echo.webhook_secret": "Missing data for required field."
    }
    assert load({"connectors": {"echo": {"enabled": False}}}).connectors["echo"] == {"enabled": False}


def test_connector_rejects_unknown_keys_and_bad_api_base():
    assert problems_of({"connectors": {"echo": {"enabled": True, "webhook_secret": "x",
                                                "api_base": "not a url", "colour": 1}}}) == {
        "connectors.echo.api_base": "Not a valid URL.",
        "connectors.echo.colour": "Unknown field.",
    }


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError) as info:
        read_config(tmp_path / "missing.yaml", env={})
    assert info.value.problems == {"HUB_CONFIG": f"file not found: {tmp_path / 'missing.yaml'}"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("connectors: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        read_config(bad, env={})
    assert list(info.value.problems) == ["line 2"]
    assert info.value.problems["line 2"].startswith("not valid YAML")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError) as info:
        read_config(listed, env={})
    assert info.value.problems == {"(top level)": "must be a mapping of keys to values"}


def test_hub_config_env_names_the_file(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text("redis_url: redis://x:1/0\n")
    assert read_config(None, env={"HUB_CONFIG": str(path)})["redis_url"] == "redis://x:1/0"


def test_postgres_urls_use_psycopg3():
    assert normalize_database_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_database_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_cli_reports_config_errors_without_a_traceback(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text("inbox: {batch_size: 0}\nconnectors: {website: {enabled: true}}\n")
    result = subprocess.run([sys.executable, "-m", "hub", "--config", str(path), "connectors", "list"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"invalid {path}:" in result.stderr
    assert "  connectors.website.webhook_secret: Missing data for required field." in result.stderr
    assert "  inbox.batch_size: Must be greater than or equal to 1 and less than or equal to 10000." in result.stderr


def test_two_api_tokens_may_not_share_a_value():
    token = {"token": "x" * 20, "scopes": ["read"]}
    assert problems_of({"api_tokens": [{"name": "a", **token}, {"name": "b", **token}]}) == {
        "api_tokens": "two tokens share the same value"}
