"""Kafka records read leniently: a raw fetch and a parser of the v2 record format that never raises.

aiokafka parses a fetched record batch lazily but from its first record, and raises on a header
key that is not UTF-8 (the broker accepts any bytes). Every later record of that producer batch is
then unreadable through it too, even when asked for by offset. The stall watch reads such a
partition here instead: each record's key, value and headers as bytes, and what is wrong with it.
Format: https://kafka.apache.org/documentation/#recordbatch (magic 2, the only one Kafka 4 writes).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.codec import gzip_decode, lz4_decode, snappy_decode, zstd_decode
from aiokafka.errors import for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.util import calc_crc32c, decode_varint

_HEADER = struct.Struct(">qiiBIhiqqqhii")  # base offset .. record count: 61 bytes
_DECOMPRESS = {
    1: gzip_decode,
    2: lambda data: snappy_decode(bytes(data)),
    3: lambda data: lz4_decode(bytes(data)),
    4: zstd_decode,
}
_CONTROL = 0x20
_TRANSACTIONAL = 0x10
_LOG_APPEND_TIME = 0x08


@dataclass
class RawRecord:
    """One record as stored: bytes only; ``problem`` says why a strict client cannot read it."""

    offset: int
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    problem: str | None = None
    control: bool = False  # a transaction marker: no message, but it takes an offset
    timestamp: int | None = None  # milliseconds since 1970
    timestamp_type: int | None = None  # 0 CreateTime (the producer's), 1 LogAppendTime (the broker's)


def parse(data: bytes, aborted: list[tuple[int, int]] | None = None) -> Iterator[RawRecord]:
    """Every record of the complete batches in a fetched message set, in offset order.

    Read committed, as the ledger's consumer reads: records of the transactions in ``aborted``
    ((producer id, first offset), as the fetch response lists them) come out as markers, like the
    transaction markers themselves: they take an offset but carry no message.
    """
    pending = sorted(aborted or [], key=lambda item: item[1])
    aborting: set[int] = set()
    pos = 0
    while pos + _HEADER.size <= len(data):
        (base, length, _epoch, magic, crc, attributes, last_delta, first_time, max_time, pid, _pepoch, _seq, count) = (
            _HEADER.unpack_from(data, pos)
        )
        end = pos + 12 + length
        if length < _HEADER.size - 12:
            return  # no batch is this short: the rest cannot be framed (the caller parks the offset)
        if end > len(data):
            return  # a batch cut by the fetch size: the next fetch starts with it
        # Offsets the batch claims, no more than its bytes can hold (a record takes 7 bytes at least):
        # a garbled header must not make us list billions of them.
        offsets = range(base, base + max(min(last_delta, (length - 49) // 7 - 1), 0) + 1)
        while pending and pending[0][1] <= base:  # transactions aborted from here on
            aborting.add(pending.pop(0)[0])
        if magic != 2:  # older formats lay their header out otherwise: only the base offset is known
            yield RawRecord(base, problem=f"record format v{magic} is not read")
        elif calc_crc32c(data[pos + 21 : end]) != crc:
            yield from (RawRecord(o, problem="the batch's CRC does not match its bytes") for o in offsets)
        elif attributes & _CONTROL:  # transaction markers carry no message
            markers = list(_records(data[pos + _HEADER.size : end], base, attributes & 0x07, count, offsets))
            if any(r.key and len(r.key) >= 4 and struct.unpack_from(">h", r.key, 2)[0] == 0 for r in markers):
                aborting.discard(pid)  # the abort marker ends that producer's aborted transaction
            yield from (RawRecord(o, control=True) for o in offsets)
        elif attributes & _TRANSACTIONAL and pid in aborting:
            yield from (RawRecord(o, control=True) for o in offsets)  # never committed: no message
        else:
            # LogAppendTime (attribute bit 3): the broker stamped the batch, every record has its max timestamp.
            log_append = bool(attributes & _LOG_APPEND_TIME)
            for record in _records(data[pos + _HEADER.size : end], base, attributes & 0x07, count, offsets, first_time):
                if log_append and record.timestamp is not None:
                    record.timestamp, record.timestamp_type = max_time, 1
                yield record
        pos = end


def _records(
    body: bytes, base: int, codec: int, count: int, offsets: range, first_time: int = 0
) -> Iterator[RawRecord]:
    done = -1
    if codec:
        # A codec this process lacks raises here, out of the reader: the environment's fault, so
        # the partition waits (reported) rather than its records being parked.
        if codec not in _DECOMPRESS:
            yield from (RawRecord(o, problem=f"unknown compression codec {codec}") for o in offsets)
            return
        try:
            body = _DECOMPRESS[codec](body)
        except (NotImplementedError, ImportError):
            raise
        except Exception as exc:  # noqa: BLE001 - bytes that do not decompress are the batch's fault
            yield from (RawRecord(o, problem=f"the batch does not decompress ({type(exc).__name__})") for o in offsets)
            return
    try:
        pos = 0
        for _ in range(count):
            length, pos = decode_varint(body, pos)
            stop = pos + length
            pos += 1  # attributes: unused
            time_delta, pos = decode_varint(body, pos)
            delta, pos = decode_varint(body, pos)
            key, pos = _bytes(body, pos)
            value, pos = _bytes(body, pos)
            n, pos = decode_varint(body, pos)
            headers = []
            for _ in range(n):
                name, pos = _bytes(body, pos)
                content, pos = _bytes(body, pos)
                headers.append((name or b"", content))
            if pos != stop:
                raise ValueError("record length disagrees with its fields")
            record = RawRecord(base + delta, key, value, headers, timestamp=first_time + time_delta, timestamp_type=0)
            record.problem = _strict_problem(record)
            done = record.offset
            yield record
    except Exception as exc:  # noqa: BLE001 - whatever is left of the batch is unreadable
        problem = f"malformed record batch ({type(exc).__name__}: {exc})"
        yield from (RawRecord(o, problem=problem) for o in offsets if o > done)


def _bytes(body: bytes, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(body, pos)
    if size < 0:
        return None, pos
    if pos + size > len(body):
        raise ValueError("a field runs past the end of its batch")
    return bytes(body[pos : pos + size]), pos + size


def _strict_problem(record: RawRecord) -> str | None:
    """What makes aiokafka raise on this record: a header key that is not UTF-8."""
    for name, _ in record.headers:
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            return f"a header key is not UTF-8 ({name[:40]!r})"
    return None


async def fetch(
    client, tp: TopicPartition, offset: int, max_bytes: int = 8 << 20
) -> tuple[bytes, list[tuple[int, int]]]:
    """A partition's raw message set from ``offset``, read committed (whole batches, about ``max_bytes``).

    Returns the bytes and the aborted transactions they hold, for ``parse``.
    """
    node_id = client.cluster.leader_for_partition(tp)
    if node_id is None or node_id < 0:
        await client.force_metadata_update()
        node_id = client.cluster.leader_for_partition(tp)
    request = FetchRequest(500, 1, max_bytes, _READ_COMMITTED, [(tp.topic, [(tp.partition, offset, max_bytes)])])
    response = await client.send(node_id, request)
    for _topic, partitions in response.topics:
        for _partition, error_code, _highwater, *part_data in partitions:
            if error_code:
                raise for_code(error_code)(f"fetching {tp.topic}/{tp.partition} at {offset}")
            # The layout aiokafka's fetcher reads: aborted transactions at [2] from v11, else [-2].
            aborted = (part_data[2] if response.API_VERSION >= 11 else part_data[-2]) if len(part_data) >= 3 else None
            return bytes(part_data[-1] or b""), [(pid, first) for pid, first in (aborted or [])]
    return b"", []


_READ_COMMITTED = 1
