"""What a channel signs (projections.signing): RFC 8785 canonical bytes, batch leaves and Ed25519 signatures."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import msgspec
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from events import ChannelAuth, VoteCast, VoteRevoked, decode, encode
from projections import merkle, signing
from tests.factories import cast

PRIVATE = bytes(range(32)).hex()  # a fixed test key, never a real channel's
PUBLIC = signing.public_key_of(PRIVATE)

SAFE_INT = 2**53 - 1  # RFC 8785 numbers are IEEE doubles: integers are exact up to here
keys = st.text(max_size=8)
scalars = st.none() | st.booleans() | st.integers(-SAFE_INT, SAFE_INT) | st.text(max_size=12)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=20
)
json_objects = st.dictionaries(keys, json_values, max_size=6)
bmp_text = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=12)


def batch(n: int) -> list[bytes]:
    votes = [cast("R-1", {"2": "for"}, event_id=f"desk-1:v{i}", channel="internet") for i in range(n)]
    return signing.sign_batch(votes, "desk-1", "k1", PRIVATE)


def auth_of(payload: bytes) -> ChannelAuth:
    auth = decode(payload).auth
    assert auth is not None
    return auth


@given(json_objects)
def test_canonical_bytes_are_rfc8785_of_any_json_object_without_floats(obj: dict) -> None:
    payload = json.dumps(obj, ensure_ascii=False)
    expected = rfc8785.dumps({k: v for k, v in obj.items() if k != "auth"})
    assert signing.canonical_bytes(payload) == expected
    assert signing.canonical_bytes(payload.encode()) == expected
    assert signing.canonical_bytes(json.dumps(obj)) == expected  # \\u escapes, surrogate pairs too


@given(st.dictionaries(bmp_text, st.recursive(st.none() | st.integers(-SAFE_INT, SAFE_INT) | bmp_text, st.lists)))
def test_the_fast_path_itself_writes_rfc8785_for_text_within_the_bmp(obj: dict) -> None:
    assert signing._sorted.encode(obj) == rfc8785.dumps(obj)


def test_keys_above_the_bmp_are_sorted_by_utf16_code_units_through_the_fallback() -> None:
    obj = {"\U0001f600": 1, "\ufb01": 2}  # code points sort 😀 last; UTF-16 units (D83D < FB01) first
    assert signing.canonical_bytes(json.dumps(obj)) == rfc8785.dumps(obj) != signing._sorted.encode(obj)
    assert signing.canonical_bytes(json.dumps(obj, ensure_ascii=False)) == rfc8785.dumps(obj)


@given(json_objects, st.floats(allow_nan=False, allow_infinity=False))
def test_a_payload_with_a_float_is_canonicalized_by_the_reference_library(obj: dict, number: float) -> None:
    obj = {**obj, "x": number}
    obj.pop("auth", None)
    assert signing.canonical_bytes(json.dumps(obj)) == rfc8785.dumps(obj)


def test_a_float_is_written_as_ecmascript_writes_it() -> None:
    assert signing.canonical_bytes('{"b": 5.0, "a": 1e21, "c": 0.1}') == b'{"a":1e+21,"b":5,"c":0.1}'


def test_the_auth_member_is_left_out_and_nothing_else() -> None:
    assert signing.canonical_bytes('{"z": 1, "auth": {"x": 1}, "a": [2, {"auth": 3}]}') == b'{"a":[2,{"auth":3}],"z":1}'


def test_what_is_not_a_json_object_cannot_be_canonicalized() -> None:
    for bad in ("[1]", "1", "{", '{"a": NaN}', '{"a": "\\ud800"}', '{"a": 1.5, "b": 9007199254740993}', b"{\xff}"):
        try:
            signing.canonical_bytes(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was canonicalized")


@given(st.integers(1, 40))
def test_every_member_of_a_signed_batch_verifies_and_carries_its_own_proof(n: int) -> None:
    payloads = batch(n)
    leaves = [signing.leaf_of(p) for p in payloads]
    for index, payload in enumerate(payloads):
        auth = auth_of(payload)
        assert (auth.batch_size, auth.leaf_index, auth.channel_id, auth.key_id) == (n, index, "desk-1", "k1")
        assert bytes.fromhex(auth.root) == merkle.root(leaves)
        assert signing.verify(payload, auth, PUBLIC)
        assert signing.verify(payload.decode(), auth, PUBLIC)


def test_a_single_submission_is_a_batch_of_one_whose_root_is_its_leaf() -> None:
    [payload] = batch(1)
    auth = auth_of(payload)
    assert auth.path == [] and bytes.fromhex(auth.root) == signing.leaf_of(payload)


def replaced(payload: bytes, **fields: object) -> bytes:
    raw = json.loads(payload)
    raw.update(fields)
    return json.dumps(raw).encode()


@given(st.integers(2, 12), st.data())
def test_any_changed_field_path_index_size_root_or_signature_fails(n: int, draw: st.DataObject) -> None:
    payloads = batch(n)
    index = draw.draw(st.integers(0, n - 1))
    payload, auth = payloads[index], auth_of(payloads[index])
    assert signing.verify(payload, auth, PUBLIC)
    # A changed field of the submission: its canonical bytes, so its leaf, change.
    assert not signing.verify(replaced(payload, control_number="R-2"), auth, PUBLIC)
    assert not signing.verify(replaced(payload, extra=None), auth, PUBLIC)
    flipped = draw.draw(st.integers(0, len(auth.path) - 1))
    path = [*auth.path[:flipped], merkle.node_hash(b"", b"").hex(), *auth.path[flipped + 1 :]]
    for forged in (
        msgspec.structs.replace(auth, path=path),
        msgspec.structs.replace(auth, path=auth.path[:-1]),
        msgspec.structs.replace(auth, leaf_index=(index + 1) % n),
        msgspec.structs.replace(auth, batch_size=n + 1),
        msgspec.structs.replace(auth, root=merkle.leaf_hash(b"x").hex()),
        msgspec.structs.replace(auth, signature=("0" if auth.signature[0] != "0" else "1") + auth.signature[1:]),
    ):
        assert not signing.verify(payload, forged, PUBLIC)
    assert not signing.verify(payload, auth, signing.generate_key()[1])  # another key


def test_a_batch_signed_for_one_size_does_not_verify_as_another_even_with_the_same_hashes() -> None:
    # Leaf 0 of a 3-batch has the same path hashes' count as in a 4-batch: the size is signed.
    payloads = batch(3)
    auth = auth_of(payloads[0])
    assert signing.root_holds(payloads[0], msgspec.structs.replace(auth, batch_size=4))
    assert not signing.verify(payloads[0], msgspec.structs.replace(auth, batch_size=4), PUBLIC)


def test_the_signed_message_is_the_context_the_size_and_the_root() -> None:
    root = bytes(range(32))
    assert signing.batch_message(2, root) == b"vote-ledger batch v1\n\x00\x00\x00\x00\x00\x00\x00\x02" + root


def test_a_generated_key_signs_what_its_public_half_verifies() -> None:
    private, public = signing.generate_key()
    assert len(private) == len(public) == 64 and signing.public_key_of(private) == public
    [payload] = signing.sign_batch([cast("R-1", {}, event_id="c:1")], "c", "k", private)
    assert signing.verify(payload, auth_of(payload), public)


def test_a_float_payload_signed_by_a_channel_verifies_through_the_fallback() -> None:
    [payload] = batch(1)
    raw = json.loads(payload)
    raw["weight"] = 2.50  # a member the schema does not know, signed as received: JCS writes it 2.5
    raw.pop("auth")
    leaf = merkle.leaf_hash(rfc8785.dumps(raw))
    auth = auth_of(payload)
    from nacl.signing import SigningKey

    signature = SigningKey(bytes.fromhex(PRIVATE)).sign(signing.batch_message(1, leaf)).signature.hex()
    signed = json.dumps({**raw, "auth": {**json.loads(encode(auth)), "root": leaf.hex(), "signature": signature}})
    assert signing.verify(signed, auth_of(signed.encode()), PUBLIC)
    assert signing.canonical_bytes(signed) == rfc8785.dumps(raw)
    assert b'"weight":2.5' in signing.canonical_bytes(signed)


# --- The worked example in docs/rules.md ("Channel authentication"), generated here so it cannot drift ---------

RULES = Path(__file__).parents[2] / "docs" / "rules.md"
BEGIN, END = "<!-- signing-example:begin -->\n", "<!-- signing-example:end -->\n"


def worked_example() -> str:
    """The markdown of docs/rules.md's worked example: a 2-submission batch signed with the fixed test key."""
    times = {"executed_at": "2026-05-04T09:15:00Z", "received_at": "2026-05-04T09:15:02Z"}
    events = [
        VoteCast(
            event_id="desk-1:0001",
            meeting_id="m1",
            control_number="R-1",
            channel="internet",
            submitted_by="Zoë Ng",
            choices={"2": "for", "3": {"for": 600, "against": 400}},
            **{k: datetime.fromisoformat(v) for k, v in times.items()},
        ),
        VoteRevoked(
            event_id="desk-1:0002",
            meeting_id="m1",
            control_number="R-2",
            channel="internet",
            submitted_by="web",
            **{k: datetime.fromisoformat(v) for k, v in times.items()},
        ),
    ]
    signed = signing.sign_batch(events, "desk-1", "k1", PRIVATE)
    canon = [signing.canonical_bytes(p) for p in signed]
    leaves = [merkle.leaf_hash(c) for c in canon]
    head = merkle.root(leaves)
    auth = auth_of(signed[0])
    lines = [
        "Private key (Ed25519 seed, a test key: never use it): `" + PRIVATE + "`; public key `" + PUBLIC + "`.",
        "",
        "The two submissions as the channel publishes them, `auth` included (`vote-ledger` encodes fields in",
        "schema order; any order and spacing give the same canonical bytes):",
        "",
        "```json",
        *(p.decode() for p in signed),
        "```",
        "",
        "Their canonical bytes (UTF-8; `ë` is the two bytes `c3 ab`), leaf hashes SHA-256(0x00 || bytes):",
        "",
        "```text",
    ]
    for i, (c, leaf) in enumerate(zip(canon, leaves, strict=True)):
        lines += [f"canonical[{i}] = {c.decode()}", f"leaf[{i}]      = {leaf.hex()}"]
    lines += [
        f"root         = SHA-256(0x01 || leaf[0] || leaf[1]) = {head.hex()}",
        f"message      = {signing.batch_message(2, head).hex()}",
        '               ("vote-ledger batch v1\\n", then 2 as 8 bytes big-endian, then the root)',
        f"signature    = {auth.signature}",
        "```",
        "",
        "Each submission's `path` is the other's leaf hash: submission 0 carries `leaf_index` 0 and",
        f"`path` [`{leaves[1].hex()}`], submission 1 `leaf_index` 1 and `path` [`{leaves[0].hex()}`].",
        "",
    ]
    return "\n".join(lines)


def test_the_worked_example_in_the_rules_is_what_the_code_computes() -> None:
    text = RULES.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "docs/rules.md lost its signing example markers"
    assert text.split(BEGIN, 1)[1].split(END, 1)[0] == worked_example(), (
        "docs/rules.md's signing example drifted: python -m tests.unit.test_signing --write"
    )


if (
    __name__ == "__main__"
):  # python -m tests.unit.test_signing [--write]: print (or write into docs/rules.md) the example
    import sys

    if "--write" in sys.argv:
        text = RULES.read_text(encoding="utf-8")
        before, rest = text.split(BEGIN, 1)
        RULES.write_text(before + BEGIN + worked_example() + END + rest.split(END, 1)[1], encoding="utf-8")
    else:
        print(worked_example())
