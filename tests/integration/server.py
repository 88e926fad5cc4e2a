"""Run the real `cme` command on a free loopback port, as an operator would."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

CME = str(Path(sys.executable).with_name("cme"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cme exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise RuntimeError(f"cme did not serve /health within {timeout} s")


@contextmanager
def running_cme(
    env: Mapping[str, str], cwd: Path, log: Path, *args: str, command: str = CME
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yield (base URL, process) for `cme serve`; stop it with SIGTERM afterwards."""
    port = free_port()
    # PYTHONPATH passes through, so a checkout run against a shared venv serves its own code.
    inherited = {k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ}
    full_env = {**inherited, "LOG_LEVEL": "INFO", **env}
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [command, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=cwd,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process, timeout=15)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
