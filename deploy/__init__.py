"""Files vote-ledger reads at run time, shipped in the wheel: the local stack's Kafka build, the bundled meetings.

The folder stays at the top of the repository (deploy/local/demo.sh and the docs point there); as a
package its data files install with vote-ledger, so an installed `vote-ledger` finds them wherever
it runs, and `pip install -e .` reads them from the checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def bundled(*parts: str) -> Path:
    """A file or folder under deploy/, where this installation keeps it (always a plain folder on disk)."""
    # setuptools installs packages as folders (never zipped), so the Traversable is a real path:
    # Maven and the JVM are given these paths directly.
    return Path(str(files(__name__).joinpath(*parts)))


def meeting_file(meeting_id: str) -> Path:
    """The bundled spec of a meeting, e.g. cbak-2023-agm -> deploy/meetings/cbak-2023-agm.toml."""
    return bundled("meetings", f"{meeting_id}.toml")


def simulation_file(meeting_id: str) -> Path:
    """The bundled simulation of a meeting, e.g. cbak-2023-agm -> deploy/simulations/cbak-2023-agm.toml."""
    return bundled("simulations", f"{meeting_id}.toml")


def meeting_ids() -> list[str]:
    """The ids of the bundled meetings."""
    return sorted(path.stem for path in bundled("meetings").glob("*.toml"))
