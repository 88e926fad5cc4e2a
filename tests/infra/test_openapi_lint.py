"""Redocly CLI and Spectral, pinned in tools/package.json, find nothing in the OpenAPI document."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

SPEC = Path("src/cme_entrypoints/http/openapi.json")
NODE_BIN = Path("tools/node_modules/.bin")


def lint(root: Path, tool: str, spec: Path) -> subprocess.CompletedProcess[str]:
    exe = root / NODE_BIN / tool
    if not exe.exists():
        pytest.fail(f"{tool} is not installed: run `make tools` (npm ci in tools/)", pytrace=False)
    args = {
        "redocly": ["lint", "--config", "tools/redocly.yaml", "--format=json", str(spec)],
        "spectral": ["lint", "-r", "tools/.spectral.yaml", "--fail-severity=hint", str(spec)],
    }[tool]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(Path.home()),
        "REDOCLY_TELEMETRY": "off",
        "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [str(exe), *args], cwd=root, capture_output=True, text=True, timeout=120, env=env
    )


def broken_spec(root: Path, tmp_path: Path) -> Path:
    """The document with an undeclared tag, no description on an operation, and no servers."""
    document: dict[str, Any] = json.loads((root / SPEC).read_text())
    del document["servers"]
    operation = document["paths"]["/products"]["get"]
    del operation["description"]
    operation["tags"] = ["undeclared"]
    broken = tmp_path / "openapi.json"
    broken.write_text(json.dumps(document))
    return broken


def test_redocly_recommended_rules_find_no_error_and_no_warning(root: Path) -> None:
    result = lint(root, "redocly", SPEC)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, report["problems"]


def test_redocly_fails_on_a_broken_document(root: Path, tmp_path: Path) -> None:
    result = lint(root, "redocly", broken_spec(root, tmp_path))
    assert result.returncode != 0
    rules = {problem["ruleId"] for problem in json.loads(result.stdout)["problems"]}
    assert "no-empty-servers" in rules


def test_spectral_oas_rules_find_nothing_at_any_severity(root: Path) -> None:
    result = lint(root, "spectral", SPEC)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No results with a severity of 'hint' or higher found!" in result.stdout


def test_spectral_fails_on_a_broken_document(root: Path, tmp_path: Path) -> None:
    result = lint(root, "spectral", broken_spec(root, tmp_path))
    assert result.returncode != 0
    output = result.stdout
    assert "operation-tag-defined" in output
    assert "operation-description" in output
    assert "oas3-api-servers" in output
