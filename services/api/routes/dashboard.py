"""The live dashboard: GET / serves the page and /static/... its files; the page holds no data.

The page asks for a bearer token and calls the /v1 routes itself, so these two routes need none.
Only the files shipped in services/api/static are served (a fixed table built at import), so no
request path ever reaches the file system.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# The page loads only its own files and talks only to this origin. uPlot styles its elements through
# the DOM (element.style), which style-src does not govern, so no 'unsafe-inline' is needed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The files change with the package, and a revalidation costs a 304: never serve a stale app.js.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def static_files(root: Path = STATIC_DIR) -> dict[str, Path]:
    """Every servable file under the static directory, by its path relative to it."""
    return {
        p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in MEDIA_TYPES
    }


FILES = static_files()


def _file(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail="no such file")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("/")
async def page() -> FileResponse:
    """The dashboard page."""
    return _file("index.html")


@router.get("/static/{name:path}")
async def static(name: str) -> FileResponse:
    """One of the page's own files (scripts, styles, the vendored chart library)."""
    return _file(name)
