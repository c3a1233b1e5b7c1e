"""The benchmark's streamed workload and the many-meetings report, without Kafka or PostgreSQL."""

from __future__ import annotations

from events import decode
from services.devtools.bench import meetings
from services.devtools.bench.scale import merge_scale
from services.devtools.bench.stream import interleaved, stream
from services.devtools.bench.workload import build


def test_a_streamed_workload_publishes_the_same_bytes_as_the_built_one():
    built = build(600, positions=300)
    streamed = stream(600, positions=300)
    assert streamed.admin_payloads == built.admin_payloads and streamed.positions == built.positions
    assert list(streamed.payloads()) == built.submission_payloads
    assert list(streamed.payloads()) == built.submission_payloads  # generated afresh, same seed: same bytes again


def test_renamed_meetings_share_no_admin_event_id_and_their_submissions_name_their_meeting():
    one, other = stream(50, positions=200, meeting_id="m-01"), stream(50, positions=200, meeting_id="m-02", seed=6)
    ids = [{decode(v).event_id for _, v in w.admin_payloads} for w in (one, other)]
    assert ids[0] and not ids[0] & ids[1]
    assert {decode(v).meeting_id for _, v in other.payloads()} == {"m-02"}


def test_interleaving_takes_one_submission_of_each_meeting_in_turn_until_all_are_published():
    short, long = stream(2, positions=200, meeting_id="a"), stream(4, positions=200, meeting_id="b")
    order = [decode(v).meeting_id for _, v in interleaved([short, long])]
    assert order == ["a", "b", "a", "b", "b", "b"]


def test_a_scale_only_run_adds_its_points_to_the_main_runs_and_replaces_a_size_both_measured():
    main = {"scale": [{"submissions": 10, "x": "main"}, {"submissions": 100, "x": "main"}]}
    scale_run = {"date": "d", "scale": [{"submissions": 100, "x": "scale"}, {"submissions": 1000, "x": "scale"}]}
    merged = merge_scale(main, scale_run)
    assert [(p["submissions"], p["x"]) for p in merged["scale"]] == [(10, "main"), (100, "scale"), (1000, "scale")]
    kept = merge_scale(main, scale_run, replace=False)
    assert [(p["submissions"], p["x"]) for p in kept["scale"]] == [(10, "main"), (100, "main"), (1000, "scale")]
    assert kept["scale"][-1]["run"] == "d"


def _part(rate: int, lock: float, cpu: float, machine: float) -> dict:
    states = {"idle in transaction (the ledger's Python)": 0.5, "running SQL": 0.5 - lock, "Lock:transactionid": lock}
    watch = {"backend_states": states, "lock_wait_share": lock, "machine_cpu_busy": machine}
    return {"submissions_per_s": rate, "processes_cpu_busy": cpu, "watch": watch}


def _result(lock: float, cpu: float = 0.97, machine: float = 0.99) -> dict:
    runs = [
        {
            "ledgers": n,
            "one_meeting": _part(1000, lock * (n - 1), cpu, machine),
            "many_meetings": _part(900 * n, lock * (n - 1), cpu, machine),
            "many_vs_one": 0.9 * n,
        }
        for n in (1, 2)
    ]
    return {"meetings": 50, "positions_per_meeting": 200, "submissions": 3000, "runs": runs}


def test_the_lock_is_named_the_limit_only_when_ledgers_wait_for_it_while_the_cpu_has_room():
    assert meetings._verdict(_result(0.45, cpu=0.6)["runs"]).startswith(
        "yes: one ledger waits for a lock in 0% of its samples, two in 45%,"
        " while our processes used as little as 60% of the machine's cores"
    )
    assert meetings._verdict(_result(0.45, cpu=0.97)["runs"]).startswith(
        "no, the CPU is: our processes used at least 97% of the machine's cores in every run"
    )
    assert meetings._verdict(_result(0.05, cpu=0.6)["runs"]).startswith("no: one ledger waits for a lock in 0%")
    assert meetings._verdict(_result(0.05)["runs"]).endswith("2 ledgers vs 1 on 50 meetings: 2.00x")


def test_the_many_meetings_table_has_a_row_per_ledger_count_and_meeting_count_and_the_verdict():
    m = _result(0.1)
    m["lock_limits"] = meetings._verdict(m["runs"])
    lines = meetings.markdown(m)
    rows = [line for line in lines if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert rows[0].startswith("| 1 | 1 | 1,000 |  | 0% | 50% | 50% | 97% | 99% |")
    assert rows[3].startswith("| 2 | 50 | 1,800 | 1.80 | 10% | 50% | 40% | 97% | 99% |")
    assert lines[-1].startswith("Is the global append lock the limit? no, the CPU is")


def test_the_verdict_weighs_our_processes_cpu_not_the_whole_machines_busy_with_other_work():
    # Other work filled the machine (100% busy), our processes used 55% of its cores: the lock waits decide.
    verdict = meetings._verdict(_result(0.45, cpu=0.55, machine=1.0)["runs"])
    assert verdict.startswith("yes: one ledger waits for a lock in 0% of its samples, two in 45%")


def test_our_processes_cpu_busy_sums_the_ledgers_projector_postgresql_and_kafka_over_the_steady_window():
    cpu = {
        "ledger": 3.0,
        "ledger2": 2.0,
        "projector": 1.0,
        "postgresql": 1.5,
        "kafka": 0.5,
        "bench (publisher, poller)": 9,
    }
    assert meetings.processes_busy(cpu, window=5.0, cores=2) == 0.8  # 8 s of 2 cores x 5 s; the bench's own not counted
    assert meetings.processes_busy({}, window=0.0, cores=2) == 0.0
    summary = meetings._summary(
        {
            **{
                k: 1 for k in ("submissions", "log_rows", "accepted", "rejected", "steady_seconds", "submissions_per_s")
            },
            "cpu_us_per_submission": {},
            "steady_cpu_seconds": {"ledger": 4.0},
            "steady_cpu_window_seconds": 2.0,
        }
    )
    assert summary["processes_cpu_busy"] == round(4.0 / (2.0 * meetings.psutil.cpu_count()), 3)


def test_a_many_meetings_table_of_results_measured_before_our_processes_cpu_shows_a_dash():
    m = _result(0.1)
    for run in m["runs"]:
        del run["one_meeting"]["processes_cpu_busy"], run["many_meetings"]["processes_cpu_busy"]
    m["lock_limits"] = "no"
    rows = [line for line in meetings.markdown(m) if line.startswith("| 1 |")]
    assert rows[0].endswith("| 50% | — | 99% |")
