"""The running hub: validated config, plugins, connectors, database and queue in one object."""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable, Mapping

from flask import current_app

from hub.config import Config, read_config, validate_config
from hub.connector import Connector
from hub.db import make_engine, make_read_engine, make_sessionmaker
from hub.group_commit import InboxWriter
from hub.identity import IdentityRules
from hub.mapping import load_mappings
from hub.models import utcnow
from hub.plugins import collect_connectors, collect_transforms, get_plugin_manager
from hub.queue import EmbeddedQueue, RedisQueue

log = logging.getLogger(__name__)


class Hub:
    """Everything a request handler, a job or a command needs, built once per process."""

    def __init__(self, config: Config, pm, connectors: Mapping[str, Connector],
                 run_in_context: Callable[[Callable[[], Any]], Any] | None = None):
        self.config = config
        self.pm = pm
        self.connectors = dict(connectors)
        self.transforms = collect_transforms(pm)
        self.mappings = load_mappings(self.connectors, self.transforms,
                                      {"default_region": config.identity.get("default_region", "US")})
        connector_limits = {k: v for c in self.connectors.values() for k, v in c.identity_limits.items()}
        self.identity_rules = IdentityRules.from_config(
            {**config.identity, "limits": {**connector_limits, **config.identity.get("limits", {})}})
        #: when this process took up its configuration (a new outbound subscription starts here)
        self.started_at = utcnow()
        self.engine = make_engine(config.database_url)
        self.session = make_sessionmaker(self.engine)
        #: reads that need no transaction: each statement runs on its own
        self.read_engine = make_read_engine(self.engine)
        self.reader = make_sessionmaker(self.read_engine)
        if config.redis_url:
            self.queue: EmbeddedQueue | RedisQueue = RedisQueue(config.redis_url)
        else:
            self.queue = EmbeddedQueue(run_in_context or (lambda fn: fn()))
        #: webhook deliveries into the inbox, concurrent requests sharing one commit
        self.inbox_writer = InboxWriter(self.engine, on_stored=self.signal_drain)

    def connector(self, name: str) -> tuple[Connector, Mapping] | None:
        """The enabled connector called ``name`` with its settings, or None."""
        connector = self.connectors.get(name)
        settings = self.config.connectors.get(name)
        if connector is None or not settings or not settings.get("enabled"):
            return None
        return connector, settings

    def signal_drain(self) -> bool:
        """Wake a worker to drain the inbox; never raises (the sweeper covers a lost signal)."""
        return self._signal(self.queue.signal_drain)

    def signal_deliver(self) -> bool:
        """Wake a worker to send outbound webhooks; never raises (the sweeper covers a lost signal)."""
        return self._signal(self.queue.signal_deliver)

    @staticmethod
    def _signal(method: Callable[[], bool]) -> bool:
        try:
            return method()
        except Exception as exc:  # Redis down: the work waits in the database until the sweeper re-signals
            log.warning("could not signal the workers (%s); the sweeper will", type(exc).__name__)
            return False

    def close(self) -> None:
        """Release connections and stop the embedded job thread."""
        self.queue.shutdown(wait=True)
        self.engine.dispose()
        self.read_engine.dispose()


def build_hub(source: str | os.PathLike | Mapping | None = None,
              env: Mapping[str, str] | None = None, plugins: Iterable[str | object] = (),
              run_in_context: Callable[[Callable[[], Any]], Any] | None = None) -> Hub:
    """Read and validate the configuration, load plugins and connectors, connect the stores."""
    tree = read_config(source, env)
    extra = list(tree.get("plugins") or []) if isinstance(tree.get("plugins"), list) else []
    pm = get_plugin_manager([*extra, *plugins])
    connectors = collect_connectors(pm)
    config = validate_config(tree, {name: c.settings_schema for name, c in connectors.items()})
    return Hub(config, pm, connectors, run_in_context)


def current_hub() -> Hub:
    """The hub of the current Flask application context."""
    return current_app.extensions["tributary"]
