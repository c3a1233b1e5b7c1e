"""The contract's JSON Schemas: one per event and per topic from the msgspec structs, and the parked headers."""

from __future__ import annotations

from typing import Any

import msgspec

from events import EVENT_TYPES, SCHEMA_VERSION, UPCASTERS, AdminEvent, Submission
from events.answers import ANSWER_TYPES, ANSWER_VERSION, AnyAnswer
from events.codec import TIME_FIELDS, YEARS
from projections.heads import Head
from services.runtime.ledger import PARKED_COPY_MAX, PARKED_KEY_MAX
from services.settings import ADMIN_TOPIC, DECISIONS_TOPIC, SUBMISSIONS_TOPIC

DIALECT = "https://json-schema.org/draft/2020-12/schema"
PARKED_HEADERS = "ledger.parked.headers"

# The one hand-written schema: ledger.parked carries the original record's bytes, and what went
# wrong travels in Kafka headers (services/runtime/ledger.py, parked_headers). Reasons are not an
# enum: the ledger may add one, and a client must not refuse a parked copy for that.
_PARKED_HEADERS_SCHEMA: dict[str, Any] = {
    "title": "ParkedHeaders",
    "description": "Headers of a parked message's copy on ledger.parked (UTF-8 strings).",
    "type": "object",
    "properties": {
        "reason": {
            "type": "string",
            "description": "Why it was parked: a decoder reason (empty_message, invalid_utf8, invalid_json,"
            " invalid_event, invalid_version, unsupported_version) or a ledger reason (unprocessable,"
            " refused_by_database, unreadable_record, lost_in_kafka); see docs/wire-contract.md.",
        },
        "detail": {"type": "string", "maxLength": 500, "description": "What went wrong and where."},
        "source": {
            "type": "string",
            "pattern": "^.+/[0-9]+/[0-9]+$",
            "description": "topic/partition/offset of the original record.",
        },
        "truncated_from": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": f"Only if the value was over {PARKED_COPY_MAX:,} bytes and was cut:"
            " its original length in bytes.",
        },
        "key_truncated_from": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": f"Only if the key was over {PARKED_KEY_MAX:,} bytes and was cut:"
            " its original length in bytes.",
        },
        "content-type": {
            "type": "string",
            "description": "Set by FastStream, the ledger's Kafka framework (empty: raw bytes); not part of"
            " this contract's guarantees.",
        },
        "correlation_id": {
            "type": "string",
            "description": "Set by FastStream (a UUID per copy); not part of this contract's guarantees.",
        },
    },
    "required": ["reason", "detail", "source"],
}


def _with_dialect(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DIALECT, **schema}


# msgspec's schemas say what its types say; the codec refuses more (events/codec.py). Where JSON
# Schema can say it, the published schemas say it too; docs/wire-contract.md lists the rest.
_NO_NUL = "^[^\\u0000]*$"  # the log's text cannot hold NUL (in JSON: the escape \u0000)
# The years 1900-9000 (events.codec.YEARS) as the codec checks them: on the year as written.
_STORABLE_YEAR = "^(19[0-9]{2}|[2-8][0-9]{3}|9000)-[^\\u0000]*$"
assert YEARS == (1900, 9000), "_STORABLE_YEAR spells out events.codec.YEARS: update it"


def _versions(tag: str) -> list[int]:
    """The versions of an event the codec decodes: the current one and those an upcaster chain lifts to it."""
    accepted, version = [SCHEMA_VERSION], SCHEMA_VERSION - 1
    while (tag, version) in UPCASTERS:
        accepted.insert(0, version)
        version -= 1
    return accepted


def _tighten(node: Any, tag_of_def: dict[str, str]) -> Any:
    """A copy of a msgspec schema with the codec's own limits added: versions, years, no NUL."""
    if isinstance(node, list):
        return [_tighten(item, tag_of_def) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$defs", "properties"):  # names -> schemas
            out[key] = {name: _tighten(schema, tag_of_def) for name, schema in value.items()}
        elif key in ("anyOf", "items", "additionalProperties"):
            out[key] = _tighten(value, tag_of_def)
        else:
            out[key] = value
    tag = tag_of_def.get(out.get("title", ""))
    if tag is not None:  # an event: its version, and the timestamps the log stores in columns
        props = out["properties"]
        props["v"] = {**props["v"], "enum": _versions(tag)}
        for field in TIME_FIELDS:
            if field in props:
                props[field] = _dated(props[field])
    if out.get("type") == "string" and "enum" not in out and "pattern" not in out:
        out["pattern"] = _NO_NUL
    if out.get("type") == "object" and isinstance(out.get("additionalProperties"), dict):
        out["propertyNames"] = {"pattern": _NO_NUL}
    return out


def _dated(node: dict[str, Any]) -> dict[str, Any]:
    """A timestamp field (or its non-null branch) restricted to the years the log stores."""
    if "anyOf" in node:
        return {**node, "anyOf": [_dated(branch) for branch in node["anyOf"]]}
    if node.get("format") == "date-time":
        return {**node, "pattern": _STORABLE_YEAR}
    return node


def _event_schema(cls_or_union: Any) -> dict[str, Any]:
    """msgspec's schema of an event or a union of events, tightened to what the codec accepts."""
    tag_of_def = {cls.__name__: tag for tag, cls in EVENT_TYPES.items()}
    tightened: dict[str, Any] = _tighten(msgspec.json.schema(cls_or_union), tag_of_def)
    return tightened


def _answer_schema(cls_or_union: Any) -> dict[str, Any]:
    """msgspec's schema of an answer or their union, with its one version and no NUL in strings."""
    schema: dict[str, Any] = _tighten(msgspec.json.schema(cls_or_union), {})
    for node in [schema, *schema.get("$defs", {}).values()]:
        if node.get("title") in {cls.__name__ for cls in ANSWER_TYPES.values()}:
            node["properties"]["v"] = {**node["properties"]["v"], "enum": [ANSWER_VERSION]}
    return schema


def schemas() -> dict[str, dict[str, Any]]:
    """Every JSON Schema of the contract, by file stem: per event and answer, per topic, heads, parked headers."""
    out = {tag: _with_dialect(_event_schema(cls)) for tag, cls in EVENT_TYPES.items()}
    out.update({tag: _with_dialect(_answer_schema(cls)) for tag, cls in ANSWER_TYPES.items()})
    out[DECISIONS_TOPIC] = _with_dialect(
        {
            "title": f"{DECISIONS_TOPIC} message",
            "description": "Any answer to a channel: a union tagged by its `type` field.",
            **_answer_schema(AnyAnswer),
        }
    )
    for topic, union, what in ((SUBMISSIONS_TOPIC, Submission, "submission"), (ADMIN_TOPIC, AdminEvent, "admin")):
        out[topic] = _with_dialect(
            {
                "title": f"{topic} message",
                "description": f"Any {what} event: a union tagged by its `type` field.",
                **_event_schema(union),
            }
        )
    out["chain.head"] = _with_dialect(msgspec.json.schema(Head))
    out[PARKED_HEADERS] = _with_dialect(_PARKED_HEADERS_SCHEMA)
    return out
