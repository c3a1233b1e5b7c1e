"""Long work shows a progress bar on a terminal's stderr, keeps stdout the result, and is quiet on demand."""

import json
import os
import re
import sys

import pytest

pytestmark = pytest.mark.integration


async def run(settings, *args: str, terminal: bool) -> tuple[int, str, str]:
    """The CLI with stderr captured, seen by Rich as a terminal when asked (FORCE_COLOR)."""
    import asyncio

    from tests.conftest import settings_env

    env = {**os.environ, **settings_env(settings), "COLUMNS": "160"}
    env.pop("FORCE_COLOR", None)
    if terminal:
        env["FORCE_COLOR"] = "1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from services.cli import main; sys.exit(main())",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_export_and_online_verify_draw_a_full_bar_with_rate_and_eta_on_a_terminal(
    settings,
    exported,
    tmp_path,
):
    code, out, err = await run(settings, "export", "--meeting", "m1", "--out", str(tmp_path / "m1.zip"), terminal=True)
    assert code == 0 and json.loads(out)["meeting_id"] == "m1"  # stdout is still the manifest alone
    assert all(part in err for part in ("exporting m1", "100%", "positions/s", "ETA"))
    # A short export reaches its end in one update: its last frame still says how fast it went.
    assert re.search(r"[0-9][0-9,]* positions/s", err.rsplit("exporting m1", 1)[-1]), err
    code, out, err = await run(settings, "audit", "verify", "--meeting", "m1", "--no-heads", terminal=True)
    assert code == 0 and "VERIFIED" in out
    assert all(part in err for part in ("verifying m1", "100%", "positions/s", "ETA")), err
    code, out, err = await run(settings, "audit", "verify", "--file", str(tmp_path / "m1.zip"), terminal=True)
    assert code == 0 and all(part in err for part in ("verifying m1.zip", "9/9", "100%", "rows/s"))
    code, out, err = await run(settings, "projections", "rebuild", "--meeting", "m1", terminal=True)
    # One pass over the log (the check reads the shadow rows, not the log again).
    assert code == 0 and "rebuilding m1" in err and "2 passes" not in err and "100%" in err, err


async def test_quiet_or_a_stderr_that_is_no_terminal_gets_no_bar(settings, exported, tmp_path):
    for terminal, quiet in ((True, ["--quiet"]), (False, [])):
        code, out, err = await run(
            settings, "export", "--meeting", "m1", "--out", str(tmp_path / "m1.zip"), *quiet, terminal=terminal
        )
        assert code == 0 and json.loads(out)["meeting_id"] == "m1" and err == ""
        code, out, err = await run(
            settings, "audit", "verify", "--meeting", "m1", "--no-heads", *quiet, terminal=terminal
        )
        assert code == 0 and "VERIFIED" in out and err == ""
