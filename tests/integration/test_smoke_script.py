"""scripts/smoke.sh, as the pipeline runs it, against the real service."""

import subprocess
from pathlib import Path

from tests.integration.server import running_cme

SMOKE = Path(__file__).resolve().parents[2] / "scripts" / "smoke.sh"


def smoke(base_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SMOKE), base_url],
        env={"PATH": "/usr/bin:/bin", "SMOKE_TIMEOUT": "5"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_smoke_passes_on_a_healthy_service(migrated_postgres_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": migrated_postgres_url}
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _):
        result = smoke(base_url)
    assert result.returncode == 0, result.stdout + result.stderr


def test_smoke_fails_when_the_database_is_down(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://cme:pw@127.0.0.1:1/cme"}
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _):
        result = smoke(base_url)
    assert result.returncode != 0
    assert "db-check" in result.stdout + result.stderr
