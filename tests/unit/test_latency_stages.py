"""Splitting each publish -> tally delay into its stages (services/devtools/bench/latency_stages.py)."""

from services.devtools.bench.latency_stages import STAGES, split

OFFSET = 1_000.0  # epoch seconds = perf_counter + OFFSET


def _row(position: int, event_id: str, appended: float | None, recorded: float) -> dict:
    return {"position": position, "event_id": event_id, "appended": appended, "recorded": recorded}


def test_each_delay_is_cut_at_the_broker_the_ledgers_append_and_both_commits():
    rows = [_row(11, "a", OFFSET + 0.002, OFFSET + 0.030), _row(12, "b", OFFSET + 0.004, OFFSET + 0.030)]
    published = {"a": 0.0, "b": 0.001}
    committed = [(10, -1.0), (12, 0.040)]  # the ledger's batch 11..12 committed at 40 ms
    projected = [(12, 0.070)]
    visible = {"a": 0.075, "b": 0.075}
    result = split(rows, published, visible, committed, projected, OFFSET)
    assert result["measured"] == 2
    assert result["kafka"] == {"p50": 3.0, "p99": 3.0, "max": 3.0}
    assert result["ledger_fetch_decide"]["max"] == 28.0
    assert result["ledger_commit"]["p50"] == 10.0
    assert result["projector"]["p50"] == 30.0
    assert result["poller"]["max"] == 5.0
    assert result["worst_stage"] == {"projector": 1}


def test_rows_not_published_here_not_seen_or_without_a_broker_stamp_are_left_out():
    rows = [_row(1, "other", OFFSET, OFFSET), _row(2, "unseen", OFFSET, OFFSET), _row(3, "create_time", None, OFFSET)]
    published = {"unseen": 0.0, "create_time": 0.0}
    result = split(rows, published, {"create_time": 1.0}, [(3, 0.5)], [(3, 0.9)], OFFSET)
    assert result["measured"] == 0
    assert all(result[stage] == {"p50": None, "p99": None, "max": None} for stage in STAGES)
    assert result["worst_stage"] == {}


def test_a_row_is_stamped_by_the_first_commit_whose_head_covers_it():
    rows = [_row(5, "a", OFFSET + 0.001, OFFSET + 0.002)]
    committed = [(4, 0.003), (9, 0.010), (12, 0.020)]
    projected = [(4, 0.004), (12, 0.030)]
    result = split(rows, {"a": 0.0}, {"a": 0.031}, committed, projected, OFFSET)
    assert result["ledger_commit"]["p50"] == 8.0
    assert result["projector"]["p50"] == 20.0
