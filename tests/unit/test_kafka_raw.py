"""The lenient reader of Kafka's record format: every record, its problem named, never a raise."""

import random
import struct

from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from services.adapters.kafka import raw as kafka_raw


class RawKey(str):
    """A header key whose bytes are not UTF-8."""

    def encode(self, *_args, **_kwargs) -> bytes:
        return b"\xff\xfe"


def batch(base: int, records, codec: int = 0) -> bytes:
    """One v2 record batch as the broker stores it, the base offset set."""
    builder = _DefaultRecordBatchBuilderPy(2, codec, 0, -1, -1, -1, 1 << 20)
    for delta, (key, value, headers) in enumerate(records):
        builder.append(delta, timestamp=0, key=key, value=value, headers=headers)
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base)
    return bytes(data)


def test_records_are_read_with_their_offsets_keys_values_and_headers():
    data = batch(10, [(b"k1", b"v1", []), (None, b"v2", [("trace", b"\xff")]), (b"k3", None, [])])
    read = list(kafka_raw.parse(data))
    assert [(r.offset, r.key, r.value, r.headers, r.problem) for r in read] == [
        (10, b"k1", b"v1", [], None),
        (11, None, b"v2", [(b"trace", b"\xff")], None),
        (12, b"k3", None, [], None),
    ]


def test_a_header_key_that_is_not_utf8_names_the_problem_and_spares_its_neighbours():
    data = batch(0, [(b"a", b"1", []), (b"b", b"2", [(RawKey("x"), b"v")]), (b"c", b"3", [])])
    assert [(r.offset, r.value, r.problem is None) for r in kafka_raw.parse(data)] == [
        (0, b"1", True),
        (1, b"2", False),
        (2, b"3", True),
    ]


def test_a_compressed_batch_is_read_like_any_other():
    data = batch(5, [(b"k", b"x" * 1000, []), (b"k", b"y", [])], codec=1)  # gzip
    assert [(r.offset, r.value[:1]) for r in kafka_raw.parse(data)] == [(5, b"x"), (6, b"y")]


def test_a_batch_whose_crc_fails_is_every_offset_of_it_unreadable():
    data = bytearray(batch(0, [(b"a", b"1", []), (b"b", b"2", [])]))
    data[-1] ^= 0xFF
    assert [(r.offset, r.problem) for r in kafka_raw.parse(bytes(data))] == [
        (0, "the batch's CRC does not match its bytes"),
        (1, "the batch's CRC does not match its bytes"),
    ]


def test_a_batch_cut_by_the_fetch_size_is_left_for_the_next_fetch():
    first, second = batch(0, [(b"a", b"1", [])]), batch(1, [(b"b", b"2", [])])
    assert [r.offset for r in kafka_raw.parse(first + second[:-3])] == [0]


def test_random_bytes_never_raise():
    rng = random.Random(7)
    good = batch(0, [(b"k", b"value", [("h", b"v")])] * 3)
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        list(kafka_raw.parse(bytes(data)))  # whatever it yields, it returns
        list(kafka_raw.parse(rng.randbytes(rng.randrange(200))))
