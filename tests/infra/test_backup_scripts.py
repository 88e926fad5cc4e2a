"""The backup and restore scripts are shellcheck-clean and executable (their round trip:
tests/integration/test_backup_restore.py)."""

from pathlib import Path

import pytest

from tests.infra.conftest import RunTool

FOLDER = Path(__file__).parents[2] / "scripts"
SCRIPTS = [FOLDER / name for name in ("backup.sh", "restore.sh")]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_the_script_is_executable_and_shellcheck_clean(run_tool: RunTool, script: Path) -> None:
    assert script.stat().st_mode & 0o111
    result = run_tool("shellcheck", script)
    assert result.returncode == 0, result.stdout


def test_what_the_two_scripts_share_is_shellcheck_clean(run_tool: RunTool) -> None:
    result = run_tool("shellcheck", FOLDER / "pg-common.sh")
    assert result.returncode == 0, result.stdout
