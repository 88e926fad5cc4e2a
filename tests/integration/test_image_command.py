"""The container's command without a container: build the wheel as the Dockerfile does, install
it into a fresh virtualenv from the constraints, and run `cme migrate` and `cme serve` as the
image's unprivileged user against PostgreSQL, configured as Kubernetes configures it."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.integration.server import free_port, running_cme

ROOT = Path(__file__).resolve().parents[2]


def image_uid() -> int:
    match = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile no longer creates its user with a fixed --uid"
    return int(match.group(1))


def system_python() -> str:
    """The distribution's Python, as in the image: the unprivileged user cannot enter /root,
    where a developer's pyenv interpreter may live."""
    found = shutil.which("python3.11", path="/usr/local/bin:/usr/bin")
    assert found, "no system python3.11 to build the image's virtualenv with"
    return found


@pytest.fixture(scope="module")
def image_venv() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="cme-image-"))
    wheels, venv = home / "wheels", home / "opt-venv"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    subprocess.run([system_python(), "-m", "venv", str(venv)], check=True)
    constraints = str(ROOT / "requirements" / "constraints.txt")
    install = [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*install, "-c", constraints, *map(str, wheels.glob("*.whl"))], check=True)
    # The unprivileged user must be able to read and run it, and write nowhere.
    for path in [home, *home.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
    yield venv
    shutil.rmtree(home, ignore_errors=True)


def as_image_user(executable: Path) -> str:
    """A wrapper script that runs the executable as the image's UID and GID."""
    uid = image_uid()
    wrapper = executable.parent.parent / f"as-{uid}-{executable.name}"
    if not wrapper.exists():
        wrapper.write_text(
            "#!/bin/sh\n"
            f'exec setpriv --reuid={uid} --regid={uid} --clear-groups {executable} "$@"\n'
        )
        wrapper.chmod(0o755)
    return str(wrapper)


def test_the_image_command_serves_health_and_db_check_as_an_unprivileged_user(
    image_venv: Path, postgres_url: str, tmp_path: Path
) -> None:
    url = make_url(postgres_url)
    env = {
        "DB_HOST": url.host or "127.0.0.1",
        "DB_PORT": str(url.port or 5432),
        "DB_USER": url.username or "postgres",
        "DB_PASS": url.password or "",
        "DB_NAME": url.database or "",
        "API_KEY": "image-key-0123456789abcdef",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    workdir = image_venv.parent / "app"
    workdir.mkdir(exist_ok=True)
    workdir.chmod(0o555)  # like the image's read-only root filesystem
    cme = image_venv / "bin" / "cme"
    migrated = subprocess.run(
        [as_image_user(cme), "migrate"],
        env={"PATH": os.environ["PATH"], **env},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    log = tmp_path / "serve.log"
    with running_cme(env, workdir, log, command=as_image_user(cme)) as (base_url, process):
        for path in ("/health", "/db-check"):
            with urllib.request.urlopen(base_url + path, timeout=5) as response:
                assert response.status == 200
        owner = Path(f"/proc/{process.pid}").stat().st_uid
    assert free_port() > 0
    assert owner == image_uid() != 0
