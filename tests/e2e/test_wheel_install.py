"""The built wheel, installed in a fresh virtual environment, runs outside any checkout.

Measured on the 2-core dev machine with pip's cache warm: about 28 s in all, 20 s of it building the
wheel, making the venv and installing the wheel with its dependencies from PyPI (once per module),
3 s writing the export on the shared stack, and under 2 s per command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import exported  # noqa: F401 - the fixture that writes an export

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]


def run(*cmd: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a command with nothing of the checkout or the test's shell leaking in (no PYTHONPATH, no VOTE_LEDGER_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTE_LEDGER_") and k != "PYTHONPATH"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def ok(done: subprocess.CompletedProcess) -> str:
    """Its stdout, after checking it succeeded."""
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel built from this checkout installed (its dependencies from PyPI); its bin folder."""
    root = tmp_path_factory.mktemp("wheel")
    ok(run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", REPO, cwd=root))
    (wheel,) = (root / "dist").glob("vote_ledger-*.whl")
    ok(run(sys.executable, "-m", "venv", root / "venv", cwd=root))
    ok(run(root / "venv" / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=root))
    return root / "venv" / "bin"


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working directory outside the checkout, with no deploy/ folder of its own."""
    where = tmp_path / "elsewhere"
    where.mkdir()
    return where


def test_the_installed_command_prints_its_version(installed, elsewhere):
    assert ok(run(installed / "vote-ledger", "--version", cwd=elsewhere)).strip() == "vote-ledger 0.1.0"


def test_the_installed_code_is_the_wheels_not_the_checkouts(installed, elsewhere):
    probe = "import deploy, services; print(services.__file__); print(deploy.bundled('local', 'kafka', 'pom.xml'))"
    services_file, pom = ok(run(installed / "python", "-c", probe, cwd=elsewhere)).splitlines()
    assert str(REPO) not in services_file and "site-packages" in services_file
    # What `stack up` hands to Maven and the JVM is inside the installation.
    assert "site-packages" in pom and Path(pom).is_file()
    for name in ("log4j2.yaml", "server.properties.template"):
        assert (Path(pom).parent / name).is_file()


def test_stack_status_runs_outside_a_checkout(installed, elsewhere):
    done = run(installed / "vote-ledger", "stack", "status", "--json", cwd=elsewhere)
    assert done.returncode in (0, 3), done.stderr  # 3: not running here, which is the point of a fresh folder
    status = json.loads(done.stdout)
    assert status["home"] == str(elsewhere / ".vote-ledger") and status["kafka"]["running"] is False


def test_a_bundled_meeting_is_shown_by_its_id(installed, elsewhere):
    shown = ok(run(installed / "vote-ledger", "meeting", "show", "cbak-2023-agm", cwd=elsewhere))
    assert shown.startswith("cbak-2023-agm: CBAK Energy Technology, Inc., 2023 Annual Meeting of Stockholders")


def test_the_bundled_example_register_is_checked_outside_a_checkout(installed, elsewhere):
    register = ok(
        run(
            installed / "python",
            "-c",
            "import deploy; print(deploy.bundled('meetings', 'alder-2025-agm-register'))",
            cwd=elsewhere,
        )
    ).strip()
    shown = ok(
        run(installed / "vote-ledger", "meeting", "show", "alder-2025-agm", "--register", register, cwd=elsewhere)
    )
    assert "declared register: 1 chunks, 39 positions, 12,476,500 shares" in shown
    also = ok(run(installed / "vote-ledger", "meeting", "show", "contested-2024-agm", "--json", cwd=elsewhere))
    assert json.loads(also)["meeting_id"] == "contested-2024-agm"


async def test_an_export_made_by_the_checkout_verifies_with_the_installed_command(installed, elsewhere, exported):  # noqa: F811
    path, manifest, _tally, _report = exported
    done = run(
        installed / "vote-ledger",
        "audit",
        "verify",
        "--file",
        path,
        "--expect-hash",
        manifest.final_hash,
        cwd=elsewhere,
    )
    assert "\nVERIFIED" in ok(done)
