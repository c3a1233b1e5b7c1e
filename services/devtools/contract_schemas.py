"""The contract's JSON Schemas: one per event and per topic from the msgspec structs, and the parked headers."""

from __future__ import annotations

from typing import Any

import msgspec

from events import EVENT_TYPES, AdminEvent, Submission
from projections.heads import Head
from services.runtime.ledger import PARKED_COPY_MAX, PARKED_KEY_MAX
from services.settings import ADMIN_TOPIC, SUBMISSIONS_TOPIC

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
    },
    "required": ["reason", "detail", "source"],
}


def _with_dialect(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DIALECT, **schema}


def schemas() -> dict[str, dict[str, Any]]:
    """Every JSON Schema of the contract, by file stem: one per event, one per topic, heads, parked headers."""
    out = {tag: _with_dialect(msgspec.json.schema(cls)) for tag, cls in EVENT_TYPES.items()}
    for topic, union, what in ((SUBMISSIONS_TOPIC, Submission, "submission"), (ADMIN_TOPIC, AdminEvent, "admin")):
        out[topic] = _with_dialect(
            {
                "title": f"{topic} message",
                "description": f"Any {what} event: a union tagged by its `type` field.",
                **msgspec.json.schema(union),
            }
        )
    out["chain.head"] = _with_dialect(msgspec.json.schema(Head))
    out[PARKED_HEADERS] = _with_dialect(_PARKED_HEADERS_SCHEMA)
    return out
