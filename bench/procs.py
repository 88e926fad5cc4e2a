"""Process helpers for the benchmark: spawn servers, find uvicorn's workers, read RSS from /proc."""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET on loopback; an HTTP error status is returned, not raised."""
    status, _, body = http_request("GET", url, timeout=timeout)
    return status, body


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of a request on loopback; errors returned."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("the benchmark talks to loopback only")
    request = urllib.request.Request(url, body, dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            found = {k.lower(): v for k, v in response.headers.items()}
            return response.status, found, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return found


def workers(pid: int) -> list[int]:
    """uvicorn's worker processes: the supervisor's children started by multiprocessing spawn."""
    found = []
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            found.append(child)
    return sorted(found)


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB; empty if it is gone."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except OSError:
        return {}
    return values


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def postgres_pids() -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().split(" (", 1)[1].startswith("postgres)"):
                found.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return found


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / CLOCK_TICKS, sum(ticks) / CLOCK_TICKS


class CpuMeter:
    """CPU seconds used in a window by the server's workers, wrk, PostgreSQL and all the rest."""

    def __init__(self, worker_pids: list[int]) -> None:
        self.workers = worker_pids
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        busy, total = machine_busy_seconds()
        children = os.times()
        return {
            "busy": busy,
            "total": total,
            "server": sum(cpu_seconds(p) for p in self.workers),
            "wrk": children.children_user + children.children_system,
            "postgres": sum(cpu_seconds(p) for p in postgres_pids()),
        }

    def stop(self) -> dict[str, float]:
        end = self._read()
        used = {k: end[k] - self.start[k] for k in end}
        used["other"] = max(used["busy"] - used["server"] - used["wrk"] - used["postgres"], 0.0)
        return used


class Server:
    """A server process in its own session, so stopping it reaches every worker it spawned."""

    def __init__(
        self, name: str, argv: list[str], env: Mapping[str, str], log: Path, port: int
    ) -> None:
        self.name, self.argv, self.env, self.log, self.port = name, argv, env, log, port
        self.base = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Spawn the server; return the monotonic time just before the spawn."""
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=dict(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return started

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_ready(self, path: str, timeout: float, interval: float = 0.01) -> float:
        """Poll path every `interval` seconds until it answers 200; return when it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                status, _ = http_get(self.base + path, timeout=1.0)
                if status == 200:
                    return time.monotonic()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(interval)
        raise RuntimeError(f"{self.name} did not answer 200 on {path} within {timeout} s")

    def workers(self) -> list[int]:
        return workers(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
