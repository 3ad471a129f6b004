"""Every hook a Tributary plugin can implement, grouped by phase.

Hooks are called with keyword arguments. Built-in behaviour uses the same hooks as
third-party plugins; connectors are registered through the ``tributary.connectors``
entry-point group.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy import Row
    from sqlalchemy.orm import Session

    from hub.connector import Connector
    from hub.runtime import Hub

hookspec = pluggy.HookspecMarker("tributary")
hookimpl = pluggy.HookimplMarker("tributary")


# -- registration -------------------------------------------------------------------

@hookspec
def register_connectors() -> Sequence["Connector"]:
    """Return the connector objects this plugin provides (one per platform).

    Each connector's ``name`` is the key of its section under ``connectors:`` in
    ``hub.yaml`` and the last segment of its webhook URL. Two plugins registering the
    same name stop the start.
    """


@hookspec
def register_transforms() -> dict:
    """Return named transforms for mapping files: ``{name: fn(value, arg, context)}``.

    ``arg`` is the resolved ``arg`` field of the spec that names the transform (the
    currency for ``minor_units``), ``context`` holds settings such as ``default_region``.
    A transform returns the new value, or raises ``ValueError`` for a value it cannot
    read. Two plugins registering the same name stop the start.
    """


# -- processing -----------------------------------------------------------------------

@hookspec
def process_batch(hub: "Hub", session: "Session", records: Sequence["Row"]) -> None:
    """Derive the store from a batch of claimed inbox records, inside the drain transaction.

    Each record is a row with the inbox record's columns as attributes (``id``, ``connector``,
    ``kind``, ``key``, ``topic``, ``body``, ``received_at``, ``occurred_at``), all but
    ``headers``, and its state's (``status``, ``attempts``, ``next_attempt_at``...).

    Every implementation is called for every batch. Write effects through ``session`` only:
    the records are marked processed in the same transaction, so the effects and the
    status commit together or not at all. Raise to fail the batch; the hub then retries
    the records one by one to isolate the one that fails.
    """
