"""Shared fixtures for the offline checks of infrastructure, container and workflow files."""

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".venv-tools" / "bin"

RunTool = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def run_tool() -> RunTool:
    """Run a checker from .venv-tools (or a system binary), never skipping."""

    def run(name: str, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        candidate = TOOLS_BIN / name
        exe = str(candidate) if candidate.exists() else shutil.which(name)
        if exe is None:
            pytest.fail(f"{name} is not installed: run `make tools`")
        env_path = f"{TOOLS_BIN}:{Path('/usr/bin')}:{Path('/bin')}"
        return subprocess.run(
            [exe, *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            env={"PATH": env_path, "HOME": str(Path.home())},
        )

    return run
