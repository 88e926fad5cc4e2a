"""The hexagon's arrows, enforced: import-linter contracts run as part of the suite."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def run_contracts(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(config), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_domain_imports_no_adapter_entrypoint_or_framework() -> None:
    result = run_contracts(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("intruder", ["sqlalchemy", "cme_adapters.memory"])
def test_the_contracts_catch_a_domain_module_that_imports_outward(
    tmp_path: Path, intruder: str
) -> None:
    domain = ROOT / "src" / "cme_domain"
    planted = domain / "_planted_violation.py"
    planted.write_text(f'"""A deliberate violation."""\n\nimport {intruder}  # noqa: F401\n')
    try:
        result = run_contracts(ROOT / "pyproject.toml")
    finally:
        planted.unlink()
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
