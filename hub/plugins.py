"""The plugin manager: hookspecs, built-in plugins, entry points, then ``check_pending()``."""
from __future__ import annotations

import importlib
from typing import Iterable

import pluggy

from hub import hookspecs
from hub.connector import Connector

ENTRY_POINT_GROUP = "tributary.connectors"

#: the hub's own plugins, registered before anything else through the same hooks
DEFAULT_PLUGINS: tuple[str, ...] = ("hub.transforms", "hub.pipeline")


class PluginError(Exception):
    """A plugin could not be loaded or contradicts another one."""


def get_plugin_manager(extra_plugins: Iterable[str | object] = ()) -> pluggy.PluginManager:
    """Build a plugin manager: built-ins, entry points, then ``extra_plugins`` (modules or names)."""
    pm = pluggy.PluginManager("tributary")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        if isinstance(plugin, str):
            try:
                module = importlib.import_module(plugin)
            except ImportError as exc:
                raise PluginError(f"plugins: cannot import {plugin!r} ({exc})") from None
            if pm.is_registered(module):
                continue
            pm.register(module, name=plugin)
        elif not pm.is_registered(plugin):
            pm.register(plugin)
    pm.check_pending()
    return pm


def collect_connectors(pm: pluggy.PluginManager) -> dict[str, Connector]:
    """Every registered connector by name; a duplicate or nameless connector is an error."""
    found: dict[str, Connector] = {}
    for batch in pm.hook.register_connectors():
        for connector in batch or ():
            if not isinstance(connector, Connector) or not connector.name:
                raise PluginError(f"{connector!r} is not a named hub.connector.Connector")
            if connector.name in found:
                raise PluginError(f"two plugins register the connector {connector.name!r}")
            found[connector.name] = connector
    return dict(sorted(found.items()))


def collect_transforms(pm: pluggy.PluginManager) -> dict:
    """Every named mapping transform; a name registered twice is an error."""
    found: dict = {}
    for batch in pm.hook.register_transforms():
        for name, fn in (batch or {}).items():
            if name in found:
                raise PluginError(f"two plugins register the transform {name!r}")
            found[name] = fn
    return found
