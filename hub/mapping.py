"""The mapping engine: ``mappings/<connector>.yaml`` turns a platform document into unified records.

Declarative only: field paths (dotted, list indexes as numbers; ``$topic``, ``$key`` and
``$received_at`` read the inbox record), ``coalesce`` by listing several paths, constants, a chain of named
transforms, ``when`` conditions on activities, and ``each: <path>`` for one activity per element
of a list (inside it, paths read the element; ``^path`` reads the event's root). A broken file
stops the start with the file, the key and the reason.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from hub.config import ConfigError, _flatten
from hub.unified import ACTIVITY_TYPES, UnifiedActivity, UnifiedRecord

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"
MISSING = object()


class FieldSpec(fields.Field):
    """A path, or ``{path | value, transform, arg, default}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return {"path": [value]}
        if not isinstance(value, dict):
            raise ValidationError("expected a path or a mapping with path/value")
        return _SPEC.load(value)


class _SpecSchema(Schema):
    class Meta:
        unknown = RAISE

    path = fields.Raw()
    value = fields.Raw()
    transform = fields.Raw()
    arg = FieldSpec()
    default = fields.Raw()

    @validates_schema
    def _one_source(self, data, **_):
        if ("path" in data) == ("value" in data):
            raise ValidationError("give exactly one of path or value")
        path = data.get("path")
        if path is not None and not (isinstance(path, str) or (
                isinstance(path, list) and path and all(isinstance(p, str) for p in path))):
            raise ValidationError("path must be a string or a list of strings (coalesce)", "path")
        transform = data.get("transform")
        if transform is not None and not (isinstance(transform, str) or (
                isinstance(transform, list) and all(isinstance(t, str) for t in transform))):
            raise ValidationError("transform must be a name or a list of names", "transform")

    def load(self, data, **kwargs):
        spec = super().load(data, **kwargs)
        if isinstance(spec.get("path"), str):
            spec["path"] = [spec["path"]]
        if isinstance(spec.get("transform"), str):
            spec["transform"] = [spec["transform"]]
        return spec


_SPEC = _SpecSchema()


class _IdentitySpec(_SpecSchema):
    type = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{1,63}$"))


class _WhenSchema(Schema):
    class Meta:
        unknown = RAISE

    path = fields.String(required=True)
    equals = fields.Raw()
    in_ = fields.List(fields.Raw(), data_key="in")
    present = fields.Boolean()


class _ActivitySpec(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True, validate=validate.OneOf(ACTIVITY_TYPES))
    id = FieldSpec(required=True)
    occurred_at = FieldSpec()
    properties = fields.Dict(keys=fields.String(), values=FieldSpec(), load_default=dict)
    when = fields.Nested(_WhenSchema)
    each = fields.String(metadata={"description": "one activity per element of the list at this path"})


class _AboutSpec(_SpecSchema):
    activity = fields.String(required=True, validate=validate.OneOf(ACTIVITY_TYPES))


class _EventSpec(Schema):
    class Meta:
        unknown = RAISE

    root = fields.String()
    about = fields.List(fields.Nested(_AboutSpec), load_default=list)
    skip = fields.Boolean(load_default=False)
    observed_at = FieldSpec()
    identities = fields.List(fields.Nested(_IdentitySpec), load_default=list)
    retired = fields.List(fields.Nested(_IdentitySpec), load_default=list)
    traits = fields.Dict(keys=fields.String(), values=FieldSpec(), load_default=dict)
    activities = fields.List(fields.Nested(_ActivitySpec), load_default=list)


class MappingFileSchema(Schema):
    """The shape of ``mappings/<connector>.yaml``."""

    class Meta:
        unknown = RAISE

    source = fields.String(required=True)
    defaults = fields.Nested(_EventSpec, load_default=dict)
    events = fields.Dict(keys=fields.String(), values=fields.Nested(_EventSpec), required=True)


@dataclass
class Document:
    """What a mapping reads: the parsed payload plus the inbox record's own facts."""

    data: Any
    topic: str | None
    received_at: datetime
    inbox_id: int
    key: str = ""


class CompiledMapping:
    """One compiled mapping file."""

    def __init__(self, source: str, spec: dict, transforms: Mapping[str, Callable], context: dict,
                 origin: str):
        self.source = source
        self.transforms = transforms
        self.context = context
        self.origin = origin
        self.defaults = spec.get("defaults") or {}
        self.events = spec["events"]
        #: each event's traits, its own over the defaults
        self.traits = {topic: {**self.defaults.get("traits", {}), **event.get("traits", {})}
                       for topic, event in self.events.items()}
        problems = {}
        for where, name in self._transform_names(spec):
            if name not in transforms:
                problems[where] = f"unknown transform {name!r} (known: {', '.join(sorted(transforms))})"
        if problems:
            raise ConfigError(problems, origin)

    def _transform_names(self, spec):
        def walk(node, where):
            if isinstance(node, dict):
                for name in node.get("transform") or ():
                    if isinstance(name, str):
                        yield f"{where}.transform", name
                for key, value in node.items():
                    if key != "transform":
                        yield from walk(value, f"{where}.{key}" if where else str(key))
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    yield from walk(value, f"{where}[{i}]")

        yield from walk(spec, "")

    def map(self, document: Document) -> UnifiedRecord | None:
        """The unified record the document describes, or None for an ignored topic."""
        topic = document.topic or ""
        event = self.events.get(topic)
        if not event:
            topic, event = "*", self.events.get("*")
        if event is None or event.get("skip"):
            return None
        root = _walk(document.data, event["root"]) if event.get("root") else document.data
        scope = (root, document, root)
        observed_spec = event.get("observed_at") or self.defaults.get("observed_at")
        observed = self._value(observed_spec, scope) if observed_spec else None
        record = UnifiedRecord(source=self.source, inbox_id=document.inbox_id,
                               observed_at=observed or document.received_at)
        record.identities = self._identities(event.get("identities", []), scope)
        record.retired = self._identities(event.get("retired", []), scope)
        for spec in event.get("about", []):
            value = self._value(spec, scope)
            if value not in (None, ""):
                record.about.append((spec["activity"], str(value)))
        for name, spec in self.traits[topic].items():
            value = self._value(spec, scope)
            if value is not None and value != "":
                record.traits[name] = value
        for spec in event.get("activities", []):
            if "each" not in spec:
                self._activity(spec, scope, record)
                continue
            items = _walk(root, spec["each"])
            for item in items if isinstance(items, list) else ():
                self._activity(spec, (item, document, root), record)
        return record

    def _activity(self, spec: dict, scope, record: UnifiedRecord) -> None:
        """Append the activity ``spec`` describes in ``scope``, unless its ``when`` or id is wanting."""
        if spec.get("when") and not _holds(spec["when"], scope):
            return
        source_id = self._value(spec["id"], scope)
        if source_id in (None, ""):
            return
        occurred = self._value(spec["occurred_at"], scope) if spec.get("occurred_at") else None
        properties = {}
        for name, prop in spec.get("properties", {}).items():
            value = self._value(prop, scope)
            if value is not None:
                properties[name] = value.isoformat() if isinstance(value, datetime) else value
        record.activities.append(UnifiedActivity(spec["type"], str(source_id),
                                                 occurred or record.observed_at, properties))

    def _identities(self, specs, scope) -> list[tuple[str, str]]:
        found = []
        for spec in specs:
            value = self._value(spec, scope)
            if value not in (None, ""):
                found.append((spec["type"], str(value)))
        return found

    def _value(self, spec: dict, scope) -> Any:
        if "value" in spec:
            value = spec["value"]
        else:
            value = MISSING
            for path in spec["path"]:
                candidate = _lookup(path, scope)
                if candidate not in (MISSING, None, ""):
                    value = candidate
                    break
        if value is MISSING or value is None:
            return spec.get("default")
        arg = self._value(spec["arg"], scope) if spec.get("arg") else None
        for name in spec.get("transform") or ():
            value = self.transforms[name](value, arg, self.context)
            if value is None:
                return spec.get("default")
        return value


def _lookup(path: str, scope) -> Any:
    node, document, root = scope
    if path.startswith("$"):
        return {"$topic": document.topic, "$received_at": document.received_at,
                "$inbox_id": document.inbox_id, "$key": document.key}.get(path, MISSING)
    if path.startswith("^"):
        return _walk(root, path[1:])
    return _walk(node, path)


def _walk(node: Any, path: str) -> Any:
    for part, index in _steps(path):
        if isinstance(node, dict):
            node = node.get(part, MISSING)
        elif isinstance(node, list) and index is not None:
            node = node[index] if -len(node) <= index < len(node) else MISSING
        else:
            return MISSING
        if node is MISSING:
            return MISSING
    return node


@functools.cache
def _steps(path: str) -> tuple[tuple[str, int | None], ...]:
    """A dotted path cut into its steps once: each key, and the list index it also reads as."""
    return tuple((part, int(part) if part.lstrip("-").isdigit() else None) for part in path.split("."))


def _holds(when: dict, scope) -> bool:
    value = _lookup(when["path"], scope)
    if "equals" in when:
        return value == when["equals"]
    if "in_" in when:
        return value in when["in_"]
    if "present" in when:
        return (value not in (MISSING, None, "")) == when["present"]
    return True


def load_mapping(name: str, transforms: Mapping[str, Callable], context: dict,
                 directory: Path = MAPPINGS_DIR) -> CompiledMapping | None:
    """Read and validate ``<directory>/<name>.yaml``; None if the connector has no mapping."""
    path = directory / f"{name}.yaml"
    if not path.exists():
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError({"(file)": f"not valid YAML ({exc})"}, str(path)) from None
    try:
        spec = MappingFileSchema().load(raw if isinstance(raw, dict) else {})
    except ValidationError as exc:
        problems: dict[str, str] = {}
        _flatten(exc.messages, "", problems)
        raise ConfigError(problems, str(path)) from None
    if spec["source"] != name:
        raise ConfigError({"source": f"must be {name!r}, the file's connector"}, str(path))
    return CompiledMapping(name, spec, transforms, context, str(path))


def load_mappings(connectors: Mapping[str, Any], transforms: Mapping[str, Callable],
                  context: dict) -> dict[str, CompiledMapping]:
    """Every connector's mapping, validated now so a broken file stops the start."""
    found = {}
    for name, connector in connectors.items():
        directory = Path(connector.mapping_dir) if connector.mapping_dir else MAPPINGS_DIR
        mapping = load_mapping(name, transforms, context, directory)
        if mapping is not None:
            found[name] = mapping
    return found
