"""The published contract (docs/schemas, docs/asyncapi.yaml) is what the code generates, and its examples are real."""

import json
import shutil
from pathlib import Path

import jsonschema
import msgspec
import pytest
import yaml

from events import EVENT_TYPES, MalformedMessage, decode
from events.answers import ANSWER_TYPES, AnyAnswer
from projections.heads import decode_head
from services.devtools import contract, contract_asyncapi, contract_schemas

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOCUMENT = yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))
MESSAGES = DOCUMENT["components"]["messages"]
CHANNEL_OF = {
    message: name for name, channel in DOCUMENT["channels"].items() for message in channel["messages"]
}  # message id -> channel id
# The schema of anything a JSON channel may carry: a tagged union per event topic, the head on ledger.heads.
TOPIC_SCHEMA = {
    "votesSubmissions": "schemas/votes.submissions.json",
    "meetingsAdmin": "schemas/meetings.admin.json",
    "ledgerHeads": "schemas/chain.head.json",
    "votesDecisions": "schemas/votes.decisions.json",
}


def schema_at(ref: str) -> dict:
    """A schema file of docs/schemas, by the relative $ref the AsyncAPI document uses."""
    return json.loads((DOCS / ref).read_text(encoding="utf-8"))


def validate(instance, schema: dict) -> None:
    jsonschema.Draft202012Validator(schema).validate(instance)


def examples():
    return [
        pytest.param(message_id, example, id=f"{message_id}:{example['name']}")
        for message_id, message in MESSAGES.items()
        for example in message["examples"]
    ]


def test_the_published_contract_under_docs_is_what_the_code_generates():
    drifted = contract.drifted(DOCS)
    assert not drifted, f"{', '.join('docs/' + n for n in drifted)} differ from the code: run `make contract`"


def test_a_changed_or_missing_or_stale_file_is_named_as_drifted(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    (docs / "schemas" / "vote.cast.json").write_text("{}\n", encoding="utf-8")
    (docs / "asyncapi.yaml").unlink()
    (docs / "schemas" / "vote.retracted.json").write_text("{}\n", encoding="utf-8")
    assert contract.drifted(docs) == ["asyncapi.yaml", "schemas/vote.cast.json", "schemas/vote.retracted.json"]
    assert contract.write(docs) == ["asyncapi.yaml", "schemas/vote.cast.json", "schemas/vote.retracted.json"]
    assert contract.drifted(docs) == []


def test_every_event_type_and_answer_has_a_schema_and_a_message_with_an_example():
    names = {message["name"] for message in MESSAGES.values() if message["examples"]}
    assert set(EVENT_TYPES) | set(ANSWER_TYPES) <= names
    published = {p.name for p in (DOCS / "schemas").glob("*.json")}
    assert {f"{tag}.json" for tag in [*EVENT_TYPES, *ANSWER_TYPES]} <= published


@pytest.mark.parametrize("path", sorted((DOCS / "schemas").glob("*.json")), ids=lambda p: p.name)
def test_every_published_schema_is_a_valid_json_schema_2020_12(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == contract_schemas.DIALECT
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(("message_id", "example"), examples())
def test_every_example_validates_against_its_schemas_and_decodes_with_the_codec(message_id, example):
    message = MESSAGES[message_id]
    payload = example["payload"]
    if message["contentType"] == "application/json":
        validate(payload, schema_at(message["payload"]["$ref"]))
        if message_id in CHANNEL_OF:  # a log row the ledger writes itself (vote.refused) is on no topic
            validate(payload, schema_at(TOPIC_SCHEMA[CHANNEL_OF[message_id]]))
        text = json.dumps(payload).encode()
        if message["name"] in EVENT_TYPES:
            assert type(decode(text)) is EVENT_TYPES[message["name"]]
        elif message["name"] in ANSWER_TYPES:
            assert type(msgspec.json.decode(text, type=AnyAnswer)) is ANSWER_TYPES[message["name"]]
        else:
            assert decode_head(text).type == message["name"]
    else:
        validate(payload, message["payload"])
        validate(example["headers"], schema_at(message["headers"]["$ref"]))
        with pytest.raises(MalformedMessage) as refused:
            decode(payload.encode())
        assert refused.value.reason == example["headers"]["reason"]


def test_the_ledgers_own_log_rows_are_documented_but_on_no_topic_and_every_other_message_is_on_one():
    assert {m for m in MESSAGES if m not in CHANNEL_OF} == {"voteRefused", "voteReinstated"}
    for own in ("voteRefused", "voteReinstated"):
        assert "bindings" not in MESSAGES[own]
        assert own not in DOCUMENT["operations"]["receiveSubmissions"]["messages"]
    admin = {ref["$ref"].rsplit("/", 1)[1] for ref in DOCUMENT["operations"]["receiveAdmin"]["messages"]}
    assert {"meetingAdjourned", "meetingCutoff_changed", "meetingCorrected"} <= admin


@pytest.mark.parametrize(("message_id", "example"), [p for p in examples() if p.values[0] in CHANNEL_OF])
def test_every_examples_key_validates_against_the_kafka_bindings_key_schema(message_id, example):
    key = MESSAGES[message_id]["bindings"]["kafka"]["key"]
    (value,) = key["examples"]
    validate(value, key)
    assert f"Key: {value}." in example["summary"]


def test_the_submissions_schema_refuses_what_the_codec_refuses():
    payload = json.loads(
        contract_asyncapi.doc_examples((DOCS / "wire-contract.md").read_text(encoding="utf-8"))["vote.cast"]
    )
    payload["channel"] = "fax"
    with pytest.raises(jsonschema.ValidationError):
        validate(payload, schema_at("schemas/votes.submissions.json"))
    with pytest.raises(MalformedMessage):
        decode(json.dumps(payload).encode())


def test_the_kafka_server_declares_the_sasl_scram_login_every_client_presents():
    (server,) = DOCUMENT["servers"].values()
    (scheme_ref,) = server["security"]
    name = scheme_ref["$ref"].rsplit("/", 1)[1]
    assert scheme_ref["$ref"] == f"#/components/securitySchemes/{name}"
    assert DOCUMENT["components"]["securitySchemes"][name]["type"] == "scramSha512"
