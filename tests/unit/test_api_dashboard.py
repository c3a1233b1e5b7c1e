"""The dashboard's routes: the page and its own files only, with a policy that lets it load nothing else."""

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.routes.dashboard import FILES, STATIC_DIR
from services.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def client() -> TestClient:
    """The API app without its lifespan (these routes touch no database)."""
    return TestClient(create_app(Settings()))


def test_the_page_is_served_at_the_root_without_a_token_and_holds_no_data():
    response = client().get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "cbak" not in response.text.lower()


def test_every_file_the_page_references_is_served_with_its_type():
    page = client().get("/").text
    referenced = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert {"/static/app.js", "/static/style.css", "/static/vendor/uPlot.iife.min.js"} <= set(referenced)
    for path in referenced:
        response = client().get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].split(";")[0] in ("text/javascript", "text/css"), path


def test_a_path_outside_the_shipped_files_is_a_404_in_the_api_error_shape():
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/nope.js", "/static/vendor/uPlot.LICENSE"):
        response = client().get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_the_script_never_puts_api_text_in_the_page_as_html():
    script = (STATIC_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_the_wheel_ships_every_static_file_and_the_vendored_licence():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["services"]
    shipped = [p.relative_to(STATIC_DIR.parents[1]).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert "api/static/vendor/uPlot.LICENSE" in shipped
    for name in shipped:
        assert any(fnmatch(name, pattern) and name.count("/") == pattern.count("/") for pattern in patterns), name
    assert set(FILES) >= {"index.html", "app.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"}
