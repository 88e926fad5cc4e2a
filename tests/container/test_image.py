"""The real Dockerfile built with podman on a local stand-in base, and the image run for real."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.server import free_port

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/cme-base:bookworm-python3.11"
IMAGE = "localhost/cme:container-test"
API_KEY = "container-test-key-0123456789"
LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.99", "quantity": 4}


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "tests/container/containers.conf")}
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="session")
def image() -> str:
    """The stand-in base (built once per machine), then the Dockerfile built on it."""
    if podman("image", "exists", BASE, check=False).returncode != 0:
        built = subprocess.run(
            ["bash", str(ROOT / "scripts/container-base.sh"), BASE],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    # pip in the build trusts what this machine trusts (on CI's machines, the CA of the proxy that
    # reaches PyPI); a build-time mount leaves nothing in the image.
    trust = "/etc/ssl/certs/ca-certificates.crt"
    mounts = ["-v", f"{trust}:{trust}:ro"] if Path(trust).exists() else []
    # docker format keeps HEALTHCHECK (the OCI image format has no field for it).
    podman(
        "build", "--network", "host", "--format", "docker", "--pull=never", *mounts,
        "--build-arg", f"BASE_IMAGE={BASE}", "-t", IMAGE, str(ROOT),
        timeout=1200,
    )  # fmt: skip
    return IMAGE


def run_once(image: str, database_url: str, *command: str) -> subprocess.CompletedProcess[str]:
    return podman(
        "run", "--rm", "--network", "host", "--read-only",
        "-e", f"DATABASE_URL={database_url}", image, *command,
        check=False,
    )  # fmt: skip


@pytest.fixture
def serving(image: str, postgres_url: str) -> Iterator[str]:
    migrated = run_once(image, postgres_url, "cme", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "cme: the schema of PostgreSQL at " in migrated.stdout
    assert migrated.stdout.rstrip().endswith("is up to date")
    port = free_port()
    name = f"cme-test-{port}"
    podman(
        "run", "--detach", "--name", name, "--network", "host", "--read-only",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-e", f"DATABASE_URL={postgres_url}", "-e", f"PORT={port}", "-e", f"API_KEY={API_KEY}",
        image,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        yield name
    finally:
        podman("logs", name, check=False)
        podman("rm", "--force", "--time", "10", name, check=False)


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def port_of(name: str) -> str:
    env = json.loads(podman("inspect", name).stdout)[0]["Config"]["Env"]
    return next(e.split("=", 1)[1] for e in env if e.startswith("PORT="))


def test_the_image_runs_as_uid_10001_not_root(image: str) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    assert inspected["Config"]["User"] == "10001:10001"
    assert "urllib.request.urlopen" in " ".join(inspected["Healthcheck"]["Test"])
    who = podman("run", "--rm", image, "python", "-c", "import os; print(os.getuid(), os.getgid())")
    assert who.stdout.split() == ["10001", "10001"]


def test_the_root_file_system_is_read_only_when_run_read_only(image: str) -> None:
    probe = "open('/opt/venv/probe', 'w')"
    written = podman(
        "run", "--rm", "--read-only", "--user", "0", image, "python", "-c", probe, check=False
    )
    assert written.returncode != 0
    assert "Read-only file system" in written.stderr


def test_migrate_serve_healthcheck_create_and_read_on_postgresql(serving: str) -> None:
    health = podman("healthcheck", "run", serving, check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    base = f"http://127.0.0.1:{port_of(serving)}"
    with urllib.request.urlopen(f"{base}/db-check", timeout=5) as ready:
        assert ready.status == 200
    create = urllib.request.Request(
        f"{base}/products",
        data=json.dumps(LAMP).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
        method="POST",
    )
    with urllib.request.urlopen(create, timeout=5) as created:
        assert created.status == 201
        product = json.loads(created.read())
    with urllib.request.urlopen(f"{base}/products/{product['id']}", timeout=5) as read:
        assert json.loads(read.read()) == product


def test_the_healthcheck_fails_when_nothing_answers(image: str) -> None:
    # The same HEALTHCHECK, in a container whose command serves nothing: it must fail.
    port = free_port()
    name = f"cme-idle-{port}"
    podman(
        "run", "--detach", "--name", name, "--network", "host", "-e", f"PORT={port}",
        image, "sleep", "60",
    )  # fmt: skip
    try:
        health = podman("healthcheck", "run", name, check=False)
        assert health.returncode != 0
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
