"""A record without a value, a tombstone's None or a zero-length b"", is parked as empty_message."""

import pytest

from services.runtime import ingest


@pytest.mark.parametrize("value", [None, b""], ids=["tombstone", "zero_length"])
def test_a_record_with_no_value_is_parked_as_empty_message_not_invalid_json(value):
    decoded, parked = ingest.decode_batch([ingest.Consumed("votes.submissions", 0, 7, b"R-1", value)])
    assert decoded == []
    assert [(p.source_offset, p.reason) for p in parked] == [(7, "empty_message")]


def test_a_single_space_is_still_a_value_and_parked_as_invalid_json():
    _, parked = ingest.decode_batch([ingest.Consumed("votes.submissions", 0, 8, b"R-1", b" ")])
    assert [p.reason for p in parked] == ["invalid_json"]
