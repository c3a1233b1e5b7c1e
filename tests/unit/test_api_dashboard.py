"""The dashboard's routes: the page and its own files only, with a policy that lets it load nothing else."""

import ast
import re
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import projections.outcomes
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


def page_modules() -> list[Path]:
    """The page's own scripts (the vendored library aside)."""
    return sorted(STATIC_DIR.glob("*.js"))


def test_every_module_the_page_imports_is_served_as_javascript_and_stays_small():
    served = {p.name for p in page_modules()}
    imported = set()
    for module in page_modules():
        source = module.read_text()
        for name in re.findall(r'^import .* from "\./([\w.]+)";$', source, re.M):
            imported.add(name)
            assert name in served, f"{module.name} imports {name}, not shipped"
        assert len(source.splitlines()) < 250, f"{module.name}: split it (small modules)"
    assert imported == served - {"app.js"}, "a module nobody imports, or one imported but missing"
    for name in served:
        response = client().get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript"), name


def test_the_scripts_never_put_api_text_in_the_page_as_html():
    for module in page_modules():
        script = module.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in script, f"{module.name}: {sink}"


def python_outcome_codes() -> set[str]:
    """Every outcome code projections/outcomes.py can give (string constants it returns or stores as one)."""
    tree = ast.parse(Path(projections.outcomes.__file__).read_text())

    def constants(node: ast.AST | None) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.IfExp):
            return constants(node.body) | constants(node.orelse)
        return set()

    codes: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Return):
            codes |= constants(node.value)
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Subscript) for t in node.targets):
            codes |= constants(node.value)
        elif isinstance(node, ast.DictComp):
            codes |= constants(node.value)
    return codes


def page_outcome_codes() -> set[str]:
    """The keys of outcomes.js's OUTCOMES table."""
    source = (STATIC_DIR / "outcomes.js").read_text()
    table = re.search(r"export const OUTCOMES = \{(.*?)\n\};", source, re.S)
    assert table, "outcomes.js has no OUTCOMES table"
    return set(re.findall(r"^\s*(\w+): \[", table.group(1), re.M))


def test_the_page_words_every_outcome_code_the_rules_can_give_and_no_other():
    codes = python_outcome_codes()
    # The scan finds what R14/R15 define (a guard against a scan that silently finds nothing).
    assert {"passed", "failed", "elected", "not_elected", "tie", "no_quorum", "no_votes"} <= codes
    assert page_outcome_codes() == codes


def test_the_dashboards_event_stream_parser_passes_its_node_tests():
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not on the PATH: the event-stream parser's tests (tests/unit/dashboard_sse.test.mjs) need it"
        )
    script = Path(__file__).with_name("dashboard_sse.test.mjs")
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok ") >= 8, done.stdout


def test_the_wheel_ships_every_static_file_and_the_vendored_licence():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["services"]
    shipped = [p.relative_to(STATIC_DIR.parents[1]).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert "api/static/vendor/uPlot.LICENSE" in shipped
    for name in shipped:
        assert any(fnmatch(name, pattern) and name.count("/") == pattern.count("/") for pattern in patterns), name
    assert set(FILES) >= {"index.html", "app.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"}
