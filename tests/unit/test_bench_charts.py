"""The benchmark's charts and the report's issue 15 targets, drawn from the committed results.json."""

from __future__ import annotations

import copy
import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from services.devtools.bench import chart_curves, chart_throughput, charts, report
from services.devtools.bench.scale import merge_scale

COMMITTED = Path(__file__).resolve().parents[2] / "bench-results" / "results.json"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def results() -> dict[str, Any]:
    return json.loads(COMMITTED.read_text())


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The committed results drawn once for the tests that only read the files (a draw takes seconds)."""
    out = tmp_path_factory.mktemp("bench-results")
    return out, charts.write(json.loads(COMMITTED.read_text()), out)


def _texts(path: Path) -> list[str]:
    """Every text of an SVG file, parsed as XML (a file that does not parse fails here)."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_the_committed_results_draw_three_svg_charts_with_their_series_labelled(results, drawn):
    tmp_path, written = drawn

    assert [p.name for p in written] == ["throughput.svg", "scale.svg", "latency.svg"]
    throughput = _texts(tmp_path / "throughput.svg")
    ingest, bare = results["ingest"]["submissions_per_s"], results["limits"]["copy"]["unindexed_rows_per_s"]
    ours = "ours: signed, projector running" if results["workload"].get("signed") else "ours: projector running"
    assert {ours, "raw COPY, bare table", "reading the rows alone (the replay's columns)"} <= set(throughput)
    assert any(t.startswith(f"{ingest:,} ({ingest / bare:.2f}× bare COPY") for t in throughput)
    assert {"peer naive", "issue 15 target", "limit of a part, same run"} <= set(throughput)
    scale = _texts(tmp_path / "scale.svg")
    assert {"ledger (ingest)", "projector (ingest)", "replay", "rebuild", "ledger", "all processes"} <= set(scale)
    assert "Peak RSS (MiB)" in scale and " ledger target ≤ 300 MiB" in scale
    latency = _texts(tmp_path / "latency.svg")
    assert f"p99 {results['latency']['p99_ms']:,.1f} ms" in latency and "target: p99 ≤ 100 ms" in latency


def test_drawing_the_same_results_twice_writes_byte_identical_files(results, drawn, tmp_path):
    first = [p.read_bytes() for p in drawn[1]]
    second = [p.read_bytes() for p in charts.write(results, tmp_path)]

    assert first == second
    assert b"<dc:date>" not in first[0]


def test_a_run_without_peers_limits_or_the_unsigned_ingest_still_draws_every_chart(results, tmp_path):
    for part in ("peers", "limits", "ingest_unsigned"):
        results.pop(part, None)

    written = charts.write(results, tmp_path)

    assert [p.name for p in written] == ["throughput.svg", "scale.svg", "latency.svg"]
    throughput = _texts(tmp_path / "throughput.svg")
    assert any(t.startswith("ours: ") and t.endswith("projector running") for t in throughput)
    assert not any(t.startswith(("peer ", "raw COPY")) for t in throughput)


def test_a_scale_only_run_writes_only_the_scale_chart_and_leaves_the_others(results, tmp_path):
    (tmp_path / "latency.svg").write_text("earlier run")
    scale_run = {
        "date": results["date"],
        "scale": [{**p, "cpu_us_per_submission": {"ledger": 20.0}} for p in results["scale"]],
    }

    written = charts.write(scale_run, tmp_path)

    assert [p.name for p in written] == ["scale.svg"]
    assert (tmp_path / "latency.svg").read_text() == "earlier run"
    assert not (tmp_path / "throughput.svg").exists()


def test_the_latency_chart_draws_the_recorded_distribution_as_one_curve(results):
    lat = results["latency"]
    lat["delays_ms"] = [[q, float(q)] for q in (*range(1, 100), 99.9)] + [[100, 500.0]]

    qs, ms, full = chart_curves.latency_points(lat)
    figure = chart_curves.latency(results)

    assert full and len(qs) == len(ms) == 101 and qs[-1] == 100
    curve = figure.axes[0].lines[0]
    assert list(curve.get_ydata()) == ms
    # The tail spread out: p90, p99 and p99.9 one unit apart, the max at its rank among the observed.
    xs = list(curve.get_xdata())
    assert xs[89] == pytest.approx(1.0) and xs[98] == pytest.approx(2.0) and xs[99] == pytest.approx(3.0)
    assert xs[100] == pytest.approx(max(3.0, math.log10(lat["observed"])))


def test_without_the_distribution_the_latency_chart_shows_the_three_recorded_points_only(results):
    results["latency"].pop("delays_ms", None)

    qs, ms, full = chart_curves.latency_points(results["latency"])
    curve = chart_curves.latency(results).axes[0].lines[0]

    assert not full and qs == [50.0, 99.0, 100.0]
    assert curve.get_linestyle() == "None" and len(curve.get_xdata()) == 3


def test_the_scale_series_take_cpu_from_each_point_and_the_main_run_for_its_own_size(results):
    main = results["ingest"]["submissions"]
    results["scale"] = [p for p in results["scale"] if p["submissions"] == main] + [
        {"submissions": 10_000_000, "ledger_peak_rss_mib": 280.0, "cpu_us_per_submission": {"ledger": 20.0}}
    ]

    sizes, cpu, rss = chart_curves.scale_series(results)

    assert sizes == [main, 10_000_000]
    assert cpu["ledger"] == [results["ingest"]["cpu_us_per_submission"]["ledger"], 20.0]
    assert cpu["projector"][1] is None and rss["ledger (ingest)"][1] == 280.0
    assert rss["replay"][1] is None


def test_embedding_replaces_only_the_chart_block_with_paths_relative_to_the_readme(drawn, tmp_path):
    out = drawn[0]
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{charts.CHARTS_START}\nold\n{charts.CHARTS_END}\nafter\n")

    assert charts.embed(readme, out)

    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{charts.CHARTS_END}\nafter\n")
    assert "old" not in text
    relative = Path(os.path.relpath(out, tmp_path)).as_posix()
    assert [line.split("](")[1] for line in text.splitlines() if line.startswith("![")] == [
        f"{relative}/throughput.svg)",
        f"{relative}/scale.svg)",
        f"{relative}/latency.svg)",
    ]


def test_a_readme_without_the_chart_markers_is_left_as_it_was(results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n")

    assert not charts.embed(readme, tmp_path)
    assert readme.read_text() == "# x\n"


def _row(table: str, starts: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(starts))
    return [cell.strip() for cell in line.strip("|").split("|")]


def _scaled(results: dict[str, Any], ingest: float, replay: float, rebuild: float, rss: float, p99: float) -> dict:
    """The committed results with ours set to the given multiples of the run's own limits."""
    r = copy.deepcopy(results)
    r["ingest"]["submissions_per_s"] = round(ingest * r["limits"]["copy"]["unindexed_rows_per_s"])
    fl = r["replay"]["from_log"]
    fl["events_per_s"] = round(replay * fl["read_rows_per_s"])
    r["replay"]["rebuild"]["events_per_s"] = round(rebuild * fl["events_per_s"])
    max(r["scale"], key=lambda p: p["submissions"])["ledger_peak_rss_mib"] = rss
    r["latency"]["p99_ms"] = p99
    return r


@pytest.mark.parametrize(("factor", "rss", "p99", "met"), [(1.02, 299.0, 99.0, "yes"), (0.98, 301.0, 101.0, "**no**")])
def test_the_report_says_whether_each_target_of_issue_15_is_met_by_the_run(results, factor, rss, p99, met):
    table = report.markdown(_scaled(results, 0.40 * factor, 0.50 * factor, 0.50 * factor, rss, p99))

    assert _row(table, "| … vs raw asyncpg COPY of the same rows, unindexed")[4:] == ["≥ 0.40", met]
    assert _row(table, "| … vs reading the same rows alone")[4:] == ["≥ 0.50", met]
    assert _row(table, "| Rebuild:")[4:] == ["≥ 0.50", met]
    assert _row(table, "| Ledger peak RSS during ingest")[1:] == [f"{rss:,}", "", "", "≤ 300", met]
    assert _row(table, "| Publish → visible in the tally")[4:] == ["p99 ≤ 100", met]


def test_the_ledger_rss_row_names_the_run_of_a_largest_point_merged_from_a_scale_only_run(results):
    main_run = _row(report.markdown(results), "| Ledger peak RSS during ingest")[0]
    assert "measured by" not in main_run
    point = {**results["scale"][-1], "submissions": 10_000_000, "ledger_peak_rss_mib": 210.0}
    scale_run = {"date": "2026-12-01T10:00:00+00:00", "scale": [point]}
    merged = report.markdown(merge_scale(results, scale_run))
    cells = _row(merged, "| Ledger peak RSS during ingest")
    assert cells[0].startswith(
        "Ledger peak RSS during ingest with a backlog of 10,000,000 submissions"
        " (MiB, measured by the scale-only run of 2026-12-01T10:00:00+00:00, not this run; at each size"
    )
    assert cells[1] == "210.0"
    same_day = report.markdown(merge_scale(results, {**scale_run, "date": results["date"]}))
    assert "measured by" not in _row(same_day, "| Ledger peak RSS during ingest")[0]


def test_the_report_scale_table_gives_cpu_per_submission_where_the_run_measured_it(results):
    table = report.markdown(results)

    main = results["ingest"]["cpu_us_per_submission"]
    size = results["ingest"]["submissions"]
    cells = _row(table, f"| {size:,} |")
    expected = " / ".join(f"{main[n]:,.1f}" for n in ("ledger", "projector", "postgresql"))
    assert cells[3] == f"{expected} / {sum(main.values()):,.1f}"
    others = [
        p["submissions"] for p in results["scale"] if p["submissions"] != size and "cpu_us_per_submission" not in p
    ]
    assert all(_row(table, f"| {n:,} |")[3] == "–" for n in others)


def test_the_unsigned_ingest_of_the_same_run_is_drawn_beside_ours_against_the_same_copy(results):
    bare = results["limits"]["copy"]["unindexed_rows_per_s"]
    results["ingest_unsigned"] = {**results["ingest"], "submissions_per_s": bare // 2}

    (ingest, *_) = chart_throughput.throughput_panels(results)

    unsigned = next(b for b in ingest.bars if b.label == "ours: the same unsigned")
    assert unsigned.kind == "ours" and unsigned.note == f"{(bare // 2) / bare:.2f}× bare COPY"
    signed = ingest.bars[0]
    assert signed.target == pytest.approx(report.INGEST_COPY_TARGET * bare)


def test_the_replay_before_migration_019_and_the_whole_row_read_are_shown_beside_the_replay(results):
    fl = results["replay"]["from_log"]
    fl["read_full_rows_per_s"] = fl["read_rows_per_s"] // 2
    fl["payload_replay"] = {
        "events_per_s": fl["events_per_s"] // 2,
        "read_rows_per_s": 400_000,
        "decode_events_per_s": 140_000,
        "fold_events_per_s": 500_000,
    }

    table = report.markdown(results)
    (_, replay, *_) = chart_throughput.throughput_panels(results)

    before = _row(table, "| … vs the same replay as before migration 019")
    assert before[1:4] == [f"{fl['events_per_s']:,}", f"{fl['events_per_s'] // 2:,}", "2.00"]
    assert "400,000 / 140,000 / 500,000" in before[0]
    assert f"whole rows, every column: {fl['read_rows_per_s'] // 2:,}/s" in _row(table, "| … vs reading the same")[0]
    kinds = {b.label: b.kind for b in replay.bars}
    assert kinds["ours before 019: the JSON parsed again"] == "before"
    assert kinds["reading whole rows (every column)"] == "limit"


def test_a_latency_run_split_into_stages_draws_and_reports_where_the_time_goes(results, tmp_path):
    stages = {name: {"p50": 2.0 + i, "p99": 10.0 * (i + 1), "max": 99.0} for i, name in enumerate(report.STAGE_NAMES)}
    results["latency"]["stages_ms"] = {**stages, "measured": 1500, "worst_stage": {"projector": 12, "kafka": 3}}

    figure = chart_curves.latency(results)
    table = report.markdown(results)

    assert [label for label, _, _ in chart_curves.stage_bars(results["latency"])] == list(report.STAGE_NAMES.values())
    assert len(figure.axes) == 2
    assert "the slowest 1%: most in “projector: → its commit” (12 of 15)" in figure.axes[1].get_title(loc="left")
    row = _row(table, "| … by stage, p50 / p99")
    assert "the slowest 1% spent most in projector: → its commit (12 of 15)" in row[0]
    assert row[1].startswith("publish → the broker's append 2.0 / 10.0; ledger: fetch, decode, judge 3.0 / 20.0")


def test_a_latency_run_without_stages_draws_the_distribution_alone_and_no_stage_row(results):
    results["latency"].pop("stages_ms", None)

    assert len(chart_curves.latency(results).axes) == 1
    assert "| … by stage" not in report.markdown(results)
