"""Structured logs: the standard library's records rendered by structlog, as JSON lines or terminal text."""

from __future__ import annotations

import io
import json
import logging

import pytest

from services.observability import logs


@pytest.fixture
def emit():
    """A logger whose records one handler with our formatter writes to a string; returns (logger, fmt -> text)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("vote_ledger.test_logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)

    def use(fmt: str) -> io.StringIO:
        handler.setFormatter(logs.formatter(fmt))
        return stream

    yield logger, use
    logger.removeHandler(handler)
    logger.propagate = True


def test_a_json_line_parses_and_carries_the_bound_context_and_the_extra_fields(emit):
    logger, use = emit
    stream = use("json")
    with logs.bind(meeting_id="m1", partition=2, offset=41, event_id="e-7", unset=None):
        logger.warning("parked %s", "e-7", extra={"position": 12})
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "parked e-7"
    assert record["level"] == "warning" and record["logger"] == "vote_ledger.test_logs"
    assert (record["meeting_id"], record["partition"], record["offset"], record["event_id"], record["position"]) == (
        "m1",
        2,
        41,
        "e-7",
        12,
    )
    assert "unset" not in record  # None is not bound: a key present always means something
    assert record["timestamp"].endswith("Z") and record["timestamp"][10] == "T"  # ISO 8601, UTC


def test_the_context_ends_with_its_block(emit):
    logger, use = emit
    stream = use("json")
    with logs.bind(meeting_id="m1"):
        logger.info("inside")
    logger.info("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["meeting_id"] == "m1" and "meeting_id" not in outside


def test_an_exception_is_one_json_object_with_its_traceback_as_text(emit):
    logger, use = emit
    stream = use("json")
    secret = "postgresql://owner:hunter2@db/vote"  # a local variable a frame-by-frame traceback would print
    try:
        raise ValueError(f"cannot reach {secret.split('@')[1]}")
    except ValueError:
        logger.exception("batch failed")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "batch failed" and record["level"] == "error"
    assert record["exception"].startswith("Traceback") and "ValueError: cannot reach db/vote" in record["exception"]
    assert "hunter2" not in line


def test_text_mode_reads_as_before_with_the_context_as_key_values_and_no_json(emit):
    logger, use = emit
    stream = use("text")
    with logs.record_context("votes.submitted", 3, 99):
        logger.error("stalled at %d", 99)
    (line,) = stream.getvalue().splitlines()
    assert " ERROR vote_ledger.test_logs: stalled at 99 " in line
    assert "partition=3" in line and "offset=99" in line and "topic=votes.submitted" in line
    assert "{" not in line and '"' not in line


def test_text_mode_prints_a_traceback_under_its_line(emit):
    logger, use = emit
    stream = use("text")
    try:
        raise KeyError("m9")
    except KeyError:
        logger.exception("meeting failed")
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("ERROR vote_ledger.test_logs: meeting failed")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "KeyError: 'm9'"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="text or json"):
        logs.formatter("xml")


def test_setting_up_twice_writes_each_line_once(capsys):
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        logs.setup_logging(False, "json")
        logs.setup_logging(False, "json")
        logging.getLogger("vote_ledger.test_logs.root").info("once")
        logging.getLogger("aiokafka").info("a rebalance step")  # chatty library: WARNING and above only
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["once"]


def test_a_batch_binds_its_offsets_per_partition_once_whatever_their_order():
    from services.runtime.ingest import Consumed, batch_context

    records = [Consumed("votes", 1, offset, None, b"") for offset in (7, 5, 6)] + [Consumed("admin", 0, 3, None, b"")]
    assert batch_context(records) == {"batch": "admin/0:3 votes/1:5-7"}
