"""The lenient Kafka reader gives each record's timestamp and whose clock it is (the ledger's appended_at)."""

import struct

from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.record.util import calc_crc32c

from services.adapters.kafka import raw as kafka_raw

APPENDED = 1_767_225_600_000  # what the broker writes as the batch's max timestamp under LogAppendTime


def batch(log_append_time: bool) -> bytes:
    """A batch of two records stamped 1000 and 1005 by the producer; as the broker stores it under LogAppendTime."""
    builder = _DefaultRecordBatchBuilderPy(2, 0, 0, -1, -1, -1, 1 << 20)
    for delta in range(2):
        builder.append(delta, timestamp=1000 + 5 * delta, key=b"k", value=b"v", headers=[])
    data = bytearray(builder.build())
    if log_append_time:
        (attributes,) = struct.unpack_from(">h", data, 21)
        struct.pack_into(">h", data, 21, attributes | 0x08)
        struct.pack_into(">q", data, 35, APPENDED)
        struct.pack_into(">I", data, 17, calc_crc32c(bytes(data[21:])))
    return bytes(data)


def test_a_producer_stamped_record_reads_as_create_time_with_its_own_timestamp():
    assert [(r.timestamp, r.timestamp_type, r.problem) for r in kafka_raw.parse(batch(False))] == [
        (1000, 0, None),
        (1005, 0, None),
    ]


def test_a_broker_stamped_batch_gives_every_record_the_broker_time():
    assert [(r.timestamp, r.timestamp_type, r.problem) for r in kafka_raw.parse(batch(True))] == [
        (APPENDED, 1, None),
        (APPENDED, 1, None),
    ]
