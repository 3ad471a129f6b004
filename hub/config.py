"""Configuration: ``hub.yaml`` (path in ``HUB_CONFIG``), ``${ENV}`` references, env overrides.

Loading is two-phase: the file is read and its ``${NAME}`` references resolved, then the
whole tree is validated by marshmallow schemas. Connector sections are validated by each
connector's own schema, so the connectors must be known before validation finishes.
Every problem is raised as one :class:`ConfigError` naming the key and the reason.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from hub.lifecycle import Lifecycle, LifecycleSchema
from hub.segments import NAME as SEGMENT_NAME, Segment, SegmentField, Trigger, unknown_stages
from hub.signing import PREFIX as SECRET_PREFIX, decode_secret

DEFAULT_DATABASE_URL = "sqlite:///tributary.db"
#: every environment variable the hub reads (besides ``${NAME}`` references in the file)
ENVIRONMENT = ("HUB_CONFIG", "HUB_DATABASE_URL", "HUB_REDIS_URL")
ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SCOPES = ("read", "admin")


class ConfigError(Exception):
    """A configuration problem; ``str()`` names each bad key and its reason."""

    def __init__(self, problems: Mapping[str, str], source: str = "configuration"):
        self.problems = dict(problems)
        self.source = source
        lines = [f"  {key}: {reason}" for key, reason in sorted(self.problems.items())]
        super().__init__(f"invalid {source}:\n" + "\n".join(lines))


class ApiTokenSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1))
    token = fields.String(required=True, validate=validate.Length(min=16, error="must be at least 16 characters"))
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), load_default=lambda: ["read"])


class WebhookSettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    max_body_bytes = fields.Integer(load_default=1024 * 1024, validate=validate.Range(min=1024))


class InboxSettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    batch_size = fields.Integer(load_default=500, validate=validate.Range(min=1, max=10_000))
    max_attempts = fields.Integer(load_default=8, validate=validate.Range(min=1))
    backoff_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0))
    backoff_max_seconds = fields.Float(load_default=3600.0, validate=validate.Range(min=0))
    sweep_interval_seconds = fields.Float(load_default=5.0, validate=validate.Range(min=0.05))
    drain_time_budget_seconds = fields.Float(load_default=5.0, validate=validate.Range(min=0.01))
    linger_seconds = fields.Float(load_default=0.02, validate=validate.Range(min=0, max=5))


class ChangeFeedSettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    retention_days = fields.Integer(load_default=30, allow_none=True, validate=validate.Range(min=1))


class IdentitySettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    default_region = fields.String(load_default="US", validate=validate.Regexp(
        r"^[A-Za-z]{2}$", error="must be a two-letter region code such as US or GB"))
    blocked = fields.List(fields.String(), load_default=list)
    limits = fields.Dict(keys=fields.String(), values=fields.Integer(validate=validate.Range(min=1)),
                         load_default=dict)
    priority = fields.List(fields.String(), load_default=list)


class TraitSettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    #: per trait, sources in order of trust: a listed source beats a newer value from a later one
    priority = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), load_default=dict)


def _webhook_secret(value: str) -> None:
    """A Standard Webhooks secret: ``whsec_`` and at least 16 base64-encoded bytes (never echoed)."""
    if not value.startswith(SECRET_PREFIX):
        raise ValidationError(f"must start with {SECRET_PREFIX} followed by base64")
    try:
        decode_secret(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class OutboundSubscriptionSchema(Schema):
    """One receiver of the change feed: where to POST, the signing secret, which change types."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", error="1 to 64 letters, digits, '_', '-' or '.'"))
    url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    secret = fields.String(required=True, validate=_webhook_secret)
    #: change types (``profile.updated``, ...; see :class:`hub.models.Change`), or ``*`` for every one
    events = fields.List(fields.String(validate=validate.Regexp(
        r"^(\*|[a-z][a-z_]*\.[a-z][a-z_]*)$", error="must be a change type such as profile.updated, or *")),
        load_default=lambda: ["*"], validate=validate.Length(min=1))
    enabled = fields.Boolean(load_default=True)
    timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=60))


class HubConfigSchema(Schema):
    """The top level of ``hub.yaml``; connector sections are checked by their own schemas."""

    class Meta:
        unknown = RAISE

    database_url = fields.String(load_default=None, allow_none=True)
    redis_url = fields.String(load_default=None, allow_none=True)
    api_tokens = fields.List(fields.Nested(ApiTokenSchema), load_default=list)
    connectors = fields.Dict(keys=fields.String(), values=fields.Dict(allow_none=True), load_default=dict)
    plugins = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    webhooks = fields.Nested(WebhookSettingsSchema, load_default=lambda: WebhookSettingsSchema().load({}))
    inbox = fields.Nested(InboxSettingsSchema, load_default=lambda: InboxSettingsSchema().load({}))
    changes = fields.Nested(ChangeFeedSettingsSchema, load_default=lambda: ChangeFeedSettingsSchema().load({}))
    identity = fields.Nested(IdentitySettingsSchema, load_default=lambda: IdentitySettingsSchema().load({}))
    traits = fields.Nested(TraitSettingsSchema, load_default=lambda: TraitSettingsSchema().load({}))
    lifecycle = fields.Nested(LifecycleSchema, load_default=Lifecycle)
    segments = fields.Dict(keys=fields.String(validate=SEGMENT_NAME), values=SegmentField(), load_default=dict)
    triggers = fields.Dict(keys=fields.String(validate=SEGMENT_NAME), values=SegmentField(), load_default=dict)
    #: how often (per process) the sweeper re-evaluates every profile when a rule reads the clock; null: never
    segments_refresh_minutes = fields.Integer(load_default=60, allow_none=True, validate=validate.Range(min=1))
    outbound = fields.List(fields.Nested(OutboundSubscriptionSchema), load_default=list)


class ConnectorSettingsSchema(Schema):
    """Keys every connector takes; a connector's schema subclasses this and adds its own."""

    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(load_default=False)
    api_base = fields.Url(load_default=None, allow_none=True, require_tld=False)


@dataclass(frozen=True)
class Config:
    """The validated configuration the hub runs with."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    api_tokens: list[dict] = field(default_factory=list)
    connectors: dict[str, dict] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    webhooks: dict = field(default_factory=dict)
    inbox: dict = field(default_factory=dict)
    changes: dict = field(default_factory=lambda: {"retention_days": 30})
    identity: dict = field(default_factory=dict)
    traits: dict = field(default_factory=dict)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    segments: dict[str, Segment] = field(default_factory=dict)
    triggers: dict[str, Trigger] = field(default_factory=dict)
    segments_refresh_minutes: int | None = 60
    outbound: list[dict] = field(default_factory=list)

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: jobs run in-process."""
        return not self.redis_url


def read_config(source: str | os.PathLike | Mapping | None = None, env: Mapping[str, str] | None = None) -> dict:
    """Read the raw tree: a mapping, a YAML file path, or ``HUB_CONFIG``; resolve ``${NAME}``."""
    env = os.environ if env is None else env
    name = "configuration"
    if source is None:
        source = env.get("HUB_CONFIG") or None
    if source is None:
        raw: Any = {}
    elif isinstance(source, Mapping):
        raw = source
    else:
        path = Path(source)
        name = str(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError({"HUB_CONFIG": f"file not found: {path}"}) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else "file"
            raise ConfigError({where: f"not valid YAML ({getattr(exc, 'problem', exc)})"}, name) from None
    if not isinstance(raw, Mapping):
        raise ConfigError({"(top level)": "must be a mapping of keys to values"}, name)
    problems: dict[str, str] = {}
    tree = _resolve(dict(raw), env, "", problems)
    for key, var in (("database_url", "HUB_DATABASE_URL"), ("redis_url", "HUB_REDIS_URL")):
        if env.get(var):
            tree[key] = env[var]
    if problems:
        raise ConfigError(problems, name)
    tree["_source"] = name
    return tree


def _resolve(value: Any, env: Mapping[str, str], path: str, problems: dict[str, str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _resolve(v, env, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            if match.group(0) == "$$":
                return "$"
            var = match.group(1)
            if var not in env:
                problems[path] = f"environment variable {var} is not set"
                return ""
            return env[var]

        return ENV_REFERENCE.sub(substitute, value)
    return value


def validate_config(tree: Mapping, connector_schemas: Mapping[str, type[Schema]]) -> Config:
    """Validate the raw tree; ``connector_schemas`` maps each known connector to its schema."""
    tree = dict(tree)
    source = tree.pop("_source", "configuration")
    problems: dict[str, str] = {}
    try:
        data = HubConfigSchema().load(tree)
    except ValidationError as exc:
        _flatten(exc.messages, "", problems)
        data = None
    sections = data["connectors"] if data else tree.get("connectors")
    connectors = _validate_connectors(sections if isinstance(sections, Mapping) else {},
                                      connector_schemas, problems)
    if data is not None:
        tokens = [t["token"] for t in data["api_tokens"]]
        if len(set(tokens)) != len(tokens):
            problems["api_tokens"] = "two tokens share the same value"
        names = [s["name"] for s in data["outbound"]]
        for i, name in enumerate(names):
            if name in names[:i]:
                problems[f"outbound[{i}].name"] = f"{name} is already the name of outbound[{names.index(name)}]"
        problems.update(unknown_stages(data["segments"], data["lifecycle"]))
        problems.update(unknown_stages(data["triggers"], data["lifecycle"], "triggers"))
    if data is None or problems:
        raise ConfigError(problems, source)
    data["connectors"] = connectors
    data["database_url"] = normalize_database_url(data["database_url"] or DEFAULT_DATABASE_URL)
    return Config(**data)


def _validate_connectors(sections: Mapping, connector_schemas: Mapping[str, type[Schema]],
                         problems: dict[str, str]) -> dict[str, dict]:
    """Each connector section through its connector's schema; required keys only when enabled."""
    connectors = {}
    for name, section in sections.items():
        schema = connector_schemas.get(name)
        if schema is None:
            known = ", ".join(sorted(connector_schemas)) or "none installed"
            problems[f"connectors.{name}"] = f"unknown connector (known: {known})"
            continue
        section = section if isinstance(section, Mapping) else {}
        try:
            connectors[name] = schema().load(section, partial=not section.get("enabled", False))
        except ValidationError as exc:
            _flatten(exc.messages, f"connectors.{name}", problems)
    return connectors


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _flatten(messages: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(messages, dict) and set(messages) == {"value"}:
        messages = messages["value"]  # a Dict field's per-entry errors: no extra path level
    if isinstance(messages, dict):
        for key, value in messages.items():
            key = "(field)" if key == "_schema" else key
            sub = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
            _flatten(value, sub, out)
    elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        out[path or "(top level)"] = " ".join(messages)
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            _flatten(value, f"{path}[{i}]", out)
    else:
        out[path or "(top level)"] = str(messages)
