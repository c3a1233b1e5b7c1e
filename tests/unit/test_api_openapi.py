"""The API's OpenAPI document under docs/ is what the handlers generate, and `vote-ledger api openapi` prints it."""

from __future__ import annotations

import json
from pathlib import Path

from services.api.app import openapi_document
from services.cli import main
from services.devtools import contract

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_committed_openapi_document_is_what_the_handlers_generate():
    committed = (DOCS / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_document(), "docs/openapi.json differs from the code: run `make contract`"
    assert "openapi.json" in contract.render((DOCS / "wire-contract.md").read_text(encoding="utf-8"))


def test_the_cli_prints_the_same_document(capsys):
    assert main(["api", "openapi"]) == 0
    assert capsys.readouterr().out == openapi_document()


def test_a_stale_openapi_document_is_named_as_drifted(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("wire-contract.md", "asyncapi.yaml"):
        (docs / name).write_text((DOCS / name).read_text(encoding="utf-8"), encoding="utf-8")
    (docs / "schemas").mkdir()
    for schema in (DOCS / "schemas").glob("*.json"):
        (docs / "schemas" / schema.name).write_text(schema.read_text(encoding="utf-8"), encoding="utf-8")
    document = json.loads(openapi_document())
    del document["paths"]["/v1/status"]
    (docs / "openapi.json").write_text(json.dumps(document), encoding="utf-8")
    assert contract.drifted(docs) == ["openapi.json"]


def test_every_route_of_the_document_answers_json_errors_and_takes_no_422():
    document = json.loads(openapi_document())
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert "422" not in operation["responses"], path
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})
