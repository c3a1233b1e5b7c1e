"""The contract's AsyncAPI 3 document: the ledger's topics, keys, headers, with examples from docs/wire-contract.md."""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import msgspec

from events import ADMIN_TAGS, EVENT_TYPES, SCHEMA_VERSION, LedgerEvent, MalformedMessage, Submission, decode
from events.answers import ANSWER_TYPES, AnyAnswer, SubmissionDecided
from projections.heads import Head, decode_head
from services.adapters.kafka.topics import key_for
from services.devtools.contract_schemas import PARKED_HEADERS
from services.runtime.ledger import PARKED_COPY_MAX, PARKED_KEY_MAX
from services.settings import ADMIN_TOPIC, DECISIONS_TOPIC, HEADS_TOPIC, PARKED_TOPIC, SUBMISSIONS_TOPIC

KAFKA_BINDING = "0.5.0"
SUBMISSION_TAGS = [tag for tag, cls in EVENT_TYPES.items() if cls in typing.get_args(Submission)]
# Rows the ledger writes to its log itself (vote.refused, R19): no channel's message, on no topic. A channel
# publishing one is rejected `reserved_type`; the contract documents them for auditors reading the log.
LOG_ROW_TAGS = [tag for tag, cls in EVENT_TYPES.items() if cls in (typing.get_args(LedgerEvent) or (LedgerEvent,))]

# A real parked message: a channel's record cut short in flight. Its headers are what the decoder
# says about it (computed below, so the example cannot drift from the code).
_PARKED_SOURCE = f"{SUBMISSIONS_TOPIC}/2/18233"
_PARKED_KEY = "4417-2210-8093-1155"
_PARKED_VALUE = '{"type": "vote.cast", "v": 1, "event_id": "0b9e6a52-3f1c-4f0e-9d8a-5a7c2e1f4b10", "meeting_id": "cb'


def _key_description(tag: str) -> str:
    """What key_for (services/adapters/kafka/topics.py) keys an event by: its control number if it has one."""
    has_number = "control_number" in EVENT_TYPES[tag].__struct_fields__
    return "The control number (UTF-8)." if has_number else "The meeting id (UTF-8)."


def doc_examples(markdown: str) -> dict[str, str]:
    """The first JSON block under each heading of docs/wire-contract.md, by the heading's first `name`."""
    examples: dict[str, str] = {}
    name = None
    for block in re.split(r"^(#+ .*)$", markdown, flags=re.MULTILINE):
        if block.startswith("#"):
            match = re.search(r"`([^`]+)`", block)
            name = match.group(1) if match else None
            continue
        code = re.search(r"^```json\n(.*?)^```", block, flags=re.MULTILINE | re.DOTALL)
        if name and code and name not in examples:
            examples[name] = code.group(1)
    return examples


def _key(description: str, example: str | None, nullable: bool = False) -> dict[str, Any]:
    """The Kafka binding's key schema, with the examples' key (AsyncAPI 3.0 examples have no key field)."""
    return {"type": ["string", "null"] if nullable else "string", "description": description, "examples": [example]}


def _summary(docstring: str | None) -> str:
    """A struct's one-line docstring as a summary, its reST ``code`` as CommonMark `code`."""
    return (docstring or "").strip().replace("``", "`")


def _example_summary(key: str | None) -> str:
    return f"From docs/wire-contract.md. Key: {key}."


def _event_message(tag: str, key: str, examples: dict[str, str]) -> dict[str, Any]:
    cls = EVENT_TYPES[tag]
    text = examples[tag]
    example_key = key_for(decode(text)).decode()
    return {
        "name": tag,
        "title": cls.__name__,
        "summary": _summary(cls.__doc__),
        "contentType": "application/json",
        "payload": {"$ref": f"schemas/{tag}.json"},
        "bindings": {"kafka": {"key": _key(key, example_key), "bindingVersion": KAFKA_BINDING}},
        "examples": [
            {"name": tag.replace(".", "_"), "summary": _example_summary(example_key), "payload": json.loads(text)}
        ],
    }


def _log_row_message(tag: str, examples: dict[str, str]) -> dict[str, Any]:
    """A row the ledger appends to its log itself: documented with its schema, but no Kafka record (no binding)."""
    cls = EVENT_TYPES[tag]
    text = examples[tag]
    return {
        "name": tag,
        "title": cls.__name__,
        "summary": _summary(cls.__doc__).split("\n")[0]
        + " A row of the ledger's log, never a Kafka message: one published on a topic is rejected `reserved_type`.",
        "contentType": "application/json",
        "payload": {"$ref": f"schemas/{tag}.json"},
        "examples": [
            {"name": tag.replace(".", "_"), "summary": "From docs/wire-contract.md.", "payload": json.loads(text)}
        ],
    }


def _parked_message() -> dict[str, Any]:
    try:
        decode(_PARKED_VALUE.encode())
    except MalformedMessage as exc:
        reason, detail = exc.reason, exc.detail
    else:
        raise AssertionError("the parked example must be a message the decoder refuses")
    return {
        "name": "parked",
        "title": "Parked message",
        "summary": "A copy of a record the ledger could not log: the original key and value bytes, as received.",
        "contentType": "application/octet-stream",
        "headers": {"$ref": f"schemas/{PARKED_HEADERS}.json"},
        "payload": {
            "type": "string",
            "description": f"The parked record's value as received (first {PARKED_COPY_MAX:,} bytes;"
            " empty for lost_in_kafka): not necessarily JSON, nor UTF-8.",
        },
        "bindings": {
            "kafka": {
                "key": _key(
                    f"The parked record's key as received (first {PARKED_KEY_MAX:,} bytes); none for lost_in_kafka.",
                    _PARKED_KEY,
                    nullable=True,
                ),
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "examples": [
            {
                "name": "cut_short",
                "summary": f"A vote.cast cut short in flight, parked as invalid JSON. Key: {_PARKED_KEY}.",
                "headers": {"reason": reason, "detail": detail[:500], "source": _PARKED_SOURCE},
                "payload": _PARKED_VALUE,
            }
        ],
    }


def _head_message(examples: dict[str, str]) -> dict[str, Any]:
    text = examples[HEADS_TOPIC]
    head = decode_head(text.encode())
    return {
        "name": "chain.head",
        "title": "Chain head",
        "summary": _summary(Head.__doc__),
        "contentType": "application/json",
        "payload": {"$ref": "schemas/chain.head.json"},
        "bindings": {
            "kafka": {
                "key": _key(
                    "The meeting id (UTF-8); none for the parked messages' chain.", head.meeting_id, nullable=True
                ),
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "examples": [
            {"name": "meeting_head", "summary": _example_summary(head.meeting_id), "payload": json.loads(text)}
        ],
    }


# The keys of the answers, as the relay gives them (services/runtime/answer_of.py decided_key, parked).
_ANSWER_KEYS = {
    "submission.decided": "The submission's control number (UTF-8); the meeting id when it has none.",
    "submission.parked": "The control number (else the meeting id) read from the parked record's bytes, as"
    " UTF-8; none when neither could be read.",
}
# The control number of the record the parked answer's example stands for (a vote.cast with a naive time).
_PARKED_ANSWER_KEY = "4417-2210-8093-1155"


def _answer_message(tag: str, examples: dict[str, str]) -> dict[str, Any]:
    cls = ANSWER_TYPES[tag]
    text = examples[tag]
    answer = msgspec.json.decode(text, type=AnyAnswer)
    decided = isinstance(answer, SubmissionDecided)
    example_key = (answer.control_number or answer.meeting_id) if decided else _PARKED_ANSWER_KEY
    return {
        "name": tag,
        "title": cls.__name__,
        "summary": _summary(cls.__doc__),
        "contentType": "application/json",
        "payload": {"$ref": f"schemas/{tag}.json"},
        "bindings": {
            "kafka": {
                "key": _key(_ANSWER_KEYS[tag], example_key, nullable=not decided),
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "examples": [
            {"name": tag.replace(".", "_"), "summary": _example_summary(example_key), "payload": json.loads(text)}
        ],
    }


def _channel(topic: str, description: str, messages: list[str], partitions: int, **config: int) -> dict[str, Any]:
    kafka: dict[str, Any] = {"topic": topic, "partitions": partitions}
    if config:
        kafka["topicConfiguration"] = {name.replace("_", "."): value for name, value in config.items()}
    return {
        "address": topic,
        "description": description,
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        "bindings": {"kafka": {**kafka, "bindingVersion": KAFKA_BINDING}},
    }


def _operation(action: str, channel: str, messages: list[str], summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in messages],
    }


def _message_id(tag: str) -> str:
    head, *rest = tag.split(".")
    return head + "".join(part.capitalize() for part in rest)


def asyncapi(markdown: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the ledger's five topics, seen from the ledger."""
    examples = doc_examples(markdown)
    submission_ids = [_message_id(t) for t in SUBMISSION_TAGS]
    admin_ids = [_message_id(t) for t in ADMIN_TAGS]
    messages = {
        _message_id(tag): _event_message(tag, _key_description(tag), examples)
        for tag in EVENT_TYPES
        if tag not in LOG_ROW_TAGS
    }
    messages.update({_message_id(tag): _log_row_message(tag, examples) for tag in LOG_ROW_TAGS})
    messages["parked"] = _parked_message()
    messages["chainHead"] = _head_message(examples)
    answer_ids = [_message_id(tag) for tag in ANSWER_TYPES]
    messages.update({_message_id(tag): _answer_message(tag, examples) for tag in ANSWER_TYPES})
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "vote-ledger wire contract",
            "version": str(SCHEMA_VERSION),
            "description": "What voting channels, meeting administration and auditors exchange with the ledger"
            " through Kafka. Operations are seen from the ledger: it receives on votes.submissions and"
            " meetings.admin and sends on votes.decisions, ledger.parked and ledger.heads; a channel does the"
            " opposite. A submission carries its channel's Ed25519 signature (`auth`: canonical bytes, batches,"
            " docs/wire-contract.md and docs/channels.md)."
            " Every event is one JSON object tagged by `type`; unknown fields are ignored; `v` is the schema"
            " version. VOTE_LEDGER_TOPIC_PREFIX may prefix every address (empty in production)."
            " Generated by `make contract` from the code; the prose is docs/wire-contract.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Kafka cluster the ledger reads (VOTE_LEDGER_KAFKA_BOOTSTRAP). Clients log in"
                " with SASL/SCRAM-SHA-512 (SASL_PLAINTEXT on the local stack) as their role's principal; the"
                " broker's ACLs say what each may read and write.",
                "variables": {"bootstrap": {"description": "host:port of a bootstrap broker."}},
                "security": [{"$ref": "#/components/securitySchemes/scramSha512"}],
            }
        },
        "channels": {
            "votesSubmissions": _channel(
                SUBMISSIONS_TOPIC,
                "Submissions of the voting channels, keyed by control number (proxy.substituted: by"
                " meeting id). One payload schema for the whole topic: schemas/votes.submissions.json.",
                submission_ids,
                4,
            ),
            "meetingsAdmin": _channel(
                ADMIN_TOPIC,
                "Meeting administration, keyed by meeting id; one partition, since order matters."
                " One payload schema for the whole topic: schemas/meetings.admin.json.",
                admin_ids,
                1,
            ),
            "votesDecisions": _channel(
                DECISIONS_TOPIC,
                "The ledger's answer to every submission it logged or parked, keyed like the submission;"
                " written by a transactional producer, exactly once: read it read_committed. One payload"
                " schema for the whole topic: schemas/votes.decisions.json.",
                answer_ids,
                4,
            ),
            "ledgerParked": _channel(
                PARKED_TOPIC, "Copies of the records the ledger could not log, as received.", ["parked"], 1
            ),
            "ledgerHeads": _channel(
                HEADS_TOPIC,
                "Chain heads anchoring the log outside the database; never expires.",
                ["chainHead"],
                1,
                retention_ms=-1,
                retention_bytes=-1,
            ),
        },
        "operations": {
            "receiveSubmissions": _operation(
                "receive", "votesSubmissions", submission_ids, "The ledger judges and logs each submission."
            ),
            "receiveAdmin": _operation(
                "receive", "meetingsAdmin", admin_ids, "The ledger logs meeting administration."
            ),
            "sendDecisions": _operation(
                "send", "votesDecisions", answer_ids, "The ledger answers each submission, in log order."
            ),
            "sendParked": _operation("send", "ledgerParked", ["parked"], "The ledger copies what it parked."),
            "sendHeads": _operation("send", "ledgerHeads", ["chainHead"], "The ledger publishes its chain heads."),
        },
        "components": {
            "messages": messages,
            "securitySchemes": {
                "scramSha512": {
                    "type": "scramSha512",
                    "description": "A SCRAM-SHA-512 login per role (VOTE_LEDGER_KAFKA_LEDGER_LOGIN, _ADMIN_LOGIN,"
                    " _CHANNEL_LOGIN, _OPERATOR_LOGIN as user:password). A channel principal may write"
                    " votes.submissions, read votes.decisions and use consumer groups named <user>.<anything>;"
                    " meeting administration writes meetings.admin; the ledger the rest (README, Kafka logins).",
                }
            },
        },
    }
