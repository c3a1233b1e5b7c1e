"""The demo's dashboard: wait until the API (part of `services run`) answers, then print the page's address.

`python -m services.devtools.demo.dashboard [SECONDS]` exits 1 with one line on stderr if it does not answer.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request

from services.settings import Settings, settings


def address(cfg: Settings) -> str:
    """The dashboard's address: the API's root."""
    return f"http://{cfg.api_host}:{cfg.api_port}/"


def wait_ready(cfg: Settings, timeout: float = 60.0) -> bool:
    """Whether the API's /healthz answered 200 within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(address(cfg) + "healthz", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def main(argv: list[str]) -> int:
    """Print the dashboard's address once the API answers; 1 if it does not within the seconds given (60)."""
    cfg = settings()
    timeout = float(argv[0]) if argv else 60.0
    if not wait_ready(cfg, timeout):
        print(f"the API did not answer on {address(cfg)}healthz within {timeout:.0f} s", file=sys.stderr)
        return 1
    print(address(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
