import ast
import importlib.metadata
import inspect
import textwrap
from pathlib import Path

import pluggy
import pytest

import connectors.website
from hub import hookspecs
from hub.connector import Connector
from hub.hookspecs import hookimpl
from tests.conftest import BUILT_IN_CONNECTORS
from hub.plugins import ENTRY_POINT_GROUP, PluginError, collect_connectors, get_plugin_manager

TESTS = Path(__file__).parent


def test_built_in_connectors_come_through_the_entry_points():
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert names == {name: f"connectors.{name}" for name in BUILT_IN_CONNECTORS}
    pm = get_plugin_manager()
    assert pm.get_plugin("website") is connectors.website
    assert list(collect_connectors(pm)) == BUILT_IN_CONNECTORS


def test_a_third_party_plugin_installed_with_an_entry_point_is_found(tmp_path, monkeypatch):
    (tmp_path / "acme_connector.py").write_text(textwrap.dedent('''
        from hub.connector import Connector
        from hub.hookspecs import hookimpl

        class Acme(Connector):
            name = "acme"

        @hookimpl
        def register_connectors():
            return [Acme()]
    '''))
    dist = tmp_path / "acme_connector-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-connector\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nacme = acme_connector\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = get_plugin_manager()
    assert pm.get_plugin("acme").__name__ == "acme_connector"
    assert list(collect_connectors(pm)) == sorted(["acme", *BUILT_IN_CONNECTORS])


def test_an_unknown_hookimpl_fails_check_pending():
    class Typo:
        @hookimpl
        def register_conectors(self):
            return []

    with pytest.raises(pluggy.PluginValidationError, match="register_conectors"):
        get_plugin_manager([Typo()])


def test_plugins_named_in_config_must_import():
    with pytest.raises(PluginError, match="plugins: cannot import 'no.such.module'"):
        get_plugin_manager(["no.such.module"])


def test_two_connectors_with_one_name_are_refused():
    class Again:
        @hookimpl
        def register_connectors(self):
            return [connectors.website.Website()]

    with pytest.raises(PluginError, match="two plugins register the connector 'website'"):
        collect_connectors(get_plugin_manager([Again()]))


def test_a_connector_must_be_a_named_connector():
    class Nameless:
        @hookimpl
        def register_connectors(self):
            return [Connector()]

    with pytest.raises(PluginError, match="is not a named hub.connector.Connector"):
        collect_connectors(get_plugin_manager([Nameless()]))


def test_every_hookspec_is_documented_and_tested():
    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(fn, "tributary_spec")]
    assert specs == ["process_batch", "register_connectors", "register_transforms"]
    test_sources = "\n".join(p.read_text() for p in TESTS.rglob("*.py") if p.name != "test_plugins.py")
    for name in specs:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc) > 80, f"{name} needs a real docstring"
        assert f"def {name}(" in test_sources, f"no test implements the hook {name}"


def test_hook_calls_use_keywords_only():
    """pluggy hooks are called with keywords: grep the hub for positional calls."""
    root = Path(__file__).parent.parent
    for path in list((root / "hub").rglob("*.py")) + list((root / "webhooks").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = ast.unparse(node.func)
                if ".hook." in target:
                    assert not node.args, f"{path.name}: {target} called with positional arguments"
