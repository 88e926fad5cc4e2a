"""Schemathesis fuzzes the running service against its own OpenAPI document, every check on."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.server import running_cme

ROOT = Path(__file__).resolve().parents[2]
ST = str(Path(sys.executable).with_name("st"))
API_KEY = "fuzz-key-0123456789abcdef"


def fuzz(base_url: str, *headers: str) -> subprocess.CompletedProcess[str]:
    # Bounded by example count, not time, so a run is the same on a slow or a fast machine.
    command = [ST, "run", f"{base_url}/openapi.json", "--checks", "all", "--workers", "1"]
    command += ["--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "40"]
    command += ["--request-timeout", "5", "--seed", "1"]
    for header in headers:
        command += ["-H", header]
    # Run from the repository root so schemathesis.toml applies; fuzz_hooks keeps numeric
    # prices to cents, which the document cannot express (see that module).
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.fuzz_hooks"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("credentials", ["valid", "none"])
def test_schemathesis_finds_no_failure(
    empty_postgres_url: str, tmp_path: Path, credentials: str
) -> None:
    # Quotas high enough never to answer 429: the fuzzer is here to look for 5xx, and a 429
    # would stop every later request of the run from reaching the routes.
    env = {
        "DATABASE_URL": empty_postgres_url,
        "API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_READS": "1000000/60",
        "RATE_LIMIT_WRITES": "1000000/60",
        "RATE_LIMIT_BATCH": "1000000/60",
    }
    headers = [f"X-API-Key: {API_KEY}"] if credentials == "valid" else []
    log = tmp_path / "cme.log"
    with running_cme(env, tmp_path, log) as (base_url, _):
        result = fuzz(base_url, *headers)
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert "generated" in summary
    assert "Traceback" not in log.read_text()
