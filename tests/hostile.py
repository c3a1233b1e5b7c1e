"""Malformed messages as hostile or broken clients send them, for the fuzz tests of every tier."""

from __future__ import annotations

import random


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One of the malformations a hostile or broken client sends, applied to a valid message."""
    kind = rng.randrange(11)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 300))  # random bytes
    if kind == 1:
        return data[: rng.randrange(len(data))]  # truncated JSON
    if kind == 2:
        at = rng.randrange(len(data))
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]  # one byte flipped
    if kind == 3:
        depth = rng.choice([10, 999, 1001, 50_000])  # deep nesting
        return data[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == 4:  # huge, negative and non-finite numbers, lone surrogates, nulls where values belong
        return data.replace(
            b'"for"',
            rng.choice(
                [
                    b"1e999",
                    b"NaN",
                    b"-1",
                    b"9" * 400,
                    b'"\\ud800"',
                    b"null",
                    b"-9223372036854775809",
                    b"18446744073709551616",
                ]
            ),
            1,
        )
    if kind == 5:
        return data[:-1] + b', "note": "' + rng.randbytes(8) + b'"}'  # invalid UTF-8 in a value
    if kind == 6:  # unknown, empty, mistyped and oversized meetings
        return data.replace(b'"m1"', rng.choice([b'"nope"', b'""', b"7", b'"' + b"m" * 5000 + b'"']), 1)
    if kind == 7:  # unknown and misplaced types
        return data.replace(b'"vote.cast"', rng.choice([b'"vote.exploded"', b'"meeting.scheduled"', b"1"]), 1)
    if kind == 8:  # versions
        return data.replace(b'"v":1', rng.choice([b'"v":2', b'"v":-1', b'"v":1e3', b'"v":"1"']), 1)
    if kind == 9:  # wrong types for shares and choices
        return data.replace(
            b'"choices":{',
            rng.choice(
                [
                    b'"shares":-5,"choices":{',
                    b'"shares":1e3,"choices":{',
                    b'"shares":"10","choices":{',
                    b'"choices":[],"x":{',
                ]
            ),
            1,
        )
    return data + b" " * rng.randrange(1, 200_000)  # oversized: valid JSON with a long tail
