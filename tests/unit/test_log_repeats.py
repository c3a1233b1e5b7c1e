"""aiokafka's repeated failures are told once per kind, then as one count per window."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from services.observability import logs
from services.observability.log_repeats import RepeatsSuppressed

PARENT = "aiokafka.test_repeats"  # under aiokafka (the filter's prefix), but not propagating to the root


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def told():
    """(clock, filter, stream): a handler on PARENT with a RepeatsSuppressed of an injected clock, no timers."""
    clock, stream = Clock(), io.StringIO()
    repeats = RepeatsSuppressed(clock=clock, timers=False)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(repeats)
    parent = logging.getLogger(PARENT)
    parent.propagate, parent.level = False, logging.DEBUG
    parent.addHandler(handler)
    yield clock, repeats, stream
    parent.removeHandler(handler)
    parent.propagate, parent.level = True, logging.NOTSET


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_thousand_identical_records_make_one_line_then_one_count_when_the_window_ends(told):
    clock, repeats, stream = told
    log = logging.getLogger(PARENT)
    for i in range(1000):
        log.error("Unable connect to node with id %s: %s", 1, f"attempt {i}")
        clock.now += 0.05  # 1,000 records in 50 s: all inside the 60 s window
    assert _lines(stream) == [f"ERROR {PARENT} Unable connect to node with id 1: attempt 0"]
    clock.now += 11  # past the window's end (60 s after the first)
    repeats.flush()
    assert _lines(stream)[1:] == [
        f"ERROR {PARENT} 999 more like this in the last 60 s: Unable connect to node with id %s: %s"
    ]
    repeats.flush()  # told once: the next window had no repeats
    assert len(_lines(stream)) == 2


def test_each_kind_by_logger_and_template_passes_once_whatever_its_arguments(told):
    clock, _, stream = told
    parent, child = logging.getLogger(PARENT), logging.getLogger(PARENT + ".fetcher")
    for node in range(50):
        parent.error("Unable connect to node with id %s: %s", node, "refused")
        parent.error("Unable to update metadata from %s", [node])
        child.error("Unable to update metadata from %s", [node])  # same template, another logger: another kind
    assert _lines(stream) == [
        f"ERROR {PARENT} Unable connect to node with id 0: refused",
        f"ERROR {PARENT} Unable to update metadata from [0]",
        f"ERROR {PARENT}.fetcher Unable to update metadata from [0]",
    ]


def test_a_failure_that_goes_on_prints_one_count_a_window_and_one_that_stopped_passes_again_later(told):
    clock, _, stream = told
    log = logging.getLogger(PARENT)
    for _ in range(3 * 60):  # one a second for three minutes
        log.warning("Heartbeat failed")
        clock.now += 1
    log.warning("Heartbeat failed")  # at 180 s: tells the third window's count, is counted in the fourth
    assert _lines(stream) == [f"WARNING {PARENT} Heartbeat failed"] + [
        f"WARNING {PARENT} {n} more like this in the last 60 s: Heartbeat failed" for n in (59, 60, 60)
    ]
    clock.now += 3600  # an hour later: the fourth window's one repeat is told, then the kind passes again
    log.warning("Heartbeat failed")
    assert _lines(stream)[4:] == [
        f"WARNING {PARENT} 1 more like this in the last 60 s: Heartbeat failed",
        f"WARNING {PARENT} Heartbeat failed",
    ]


def test_other_loggers_records_are_never_filtered(told):
    _, repeats, _ = told
    record = logging.LogRecord("services.runtime.ledger", logging.ERROR, __file__, 1, "same", None, None)
    assert all(repeats.filter(record) for _ in range(10))


def test_the_count_is_told_when_the_window_ends_even_if_no_record_follows():
    stream = io.StringIO()
    repeats = RepeatsSuppressed(window=0.2)
    handler = logging.StreamHandler(stream)
    handler.addFilter(repeats)
    parent = logging.getLogger(PARENT)
    parent.propagate, parent.level = False, logging.DEBUG
    parent.addHandler(handler)
    try:
        for _ in range(5):
            parent.error("Unable to update metadata from %s", [1])
        deadline = time.monotonic() + 5
        while len(_lines(stream)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        repeats.cancel()
        parent.removeHandler(handler)
        parent.propagate, parent.level = True, logging.NOTSET
    assert _lines(stream) == [
        "Unable to update metadata from [1]",
        "4 more like this in the last 0.2 s: " + ("Unable to update metadata from %s"),
    ]


def test_every_process_s_log_handler_tells_aiokafka_s_repeats_once(capsys):
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        logs.setup_logging(False, "json")
        (ours,) = [h for h in root.handlers if h not in handlers]
        for node in range(100):
            logging.getLogger("aiokafka.consumer.fetcher").error("Unexpected error in fetcher routine %s", node)
            logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", node, "refused")
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            for repeats in [f for f in handler.filters if isinstance(f, RepeatsSuppressed)]:
                repeats.cancel()  # its timers would tell the counts into a later test's output
            root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["event"]) for line in lines] == [
        ("aiokafka.consumer.fetcher", "Unexpected error in fetcher routine 0"),
        ("aiokafka", "Unable connect to node with id 0: refused"),
    ]
