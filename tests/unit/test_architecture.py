"""The hexagon's arrows, enforced by import-linter; and the rules the test suite keeps itself to."""

import ast
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


def async_tests_drawing_inside_their_coroutine(source: str) -> list[str]:
    """Async @given tests that take st.data(): their draws can raise StopTest inside a task."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if "given(" in ast.unparse(decorator) and "st.data()" in ast.unparse(decorator):
                    found.append(node.name)
    return found


def test_no_async_property_test_draws_inside_its_coroutine() -> None:
    tests = Path(__file__).resolve().parents[1]
    offenders = [
        f"{path.name}::{name}"
        for path in tests.rglob("test_*.py")
        for name in async_tests_drawing_inside_their_coroutine(path.read_text())
    ]
    assert offenders == []


def test_the_draw_check_flags_an_async_test_given_st_data() -> None:
    planted = (
        "@given(st.integers(), st.data())\nasync def test_x(n, data):\n    data.draw(st.none())\n"
    )
    assert async_tests_drawing_inside_their_coroutine(planted) == ["test_x"]
