"""Fault injection: cme under steady writes through a database outage and a killed worker.

    .venv/bin/python scripts/resilience.py [--down-seconds 10] [--stop-mode fast|immediate]
                                           [--writers 8] [--summary bench/out/faults-summary.txt]

It never touches the machine's shared PostgreSQL: it initdb's a throwaway cluster of its own
in a temporary directory (owned by the `postgres` OS user, since pg_ctl refuses root), on a free
loopback port, and removes it at the end, even on failure. Against `cme serve --workers 2` on
that cluster it injects, each under a steady load of creates (POST /products) plus a reader and
a /db-check poller:

  (a) outage:  pg_ctl stop, wait --down-seconds, pg_ctl start. While the database is down every
      request must get a fast 503 problem+json with Retry-After (none slower than --hang-limit),
      /db-check must be 503 and no worker may crash; within --recover-limit seconds of the
      database's return every request must succeed again, without a restart.
  (b) kill -9 of one uvicorn worker: the supervisor must start a replacement, and the service
      must serve normally again.

After each fault it queries the cluster directly: every create acknowledged with 201 must be
there, and no create refused with a plain 503 may be. A create whose request failed at the socket
(no response), or whose 503 says its connection broke after the write was sent, is "unknown":
it may or may not exist; those are counted and reported.

Exit status 0 when every check passed, 1 otherwise. The test tests/integration/test_faults.py
runs the same code through `run_faults`. Every loop is bounded in count and time; all traffic
goes to 127.0.0.1.
"""

import argparse
import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
CME = str(Path(sys.executable).with_name("cme"))
API_KEY = "fault-key-" + uuid.uuid4().hex
WRITE_HEADERS = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
PROBLEM_JSON = "application/problem+json"


@dataclass
class Config:
    down_seconds: float = 10.0
    stop_mode: str = "fast"  # pg_ctl stop -m: fast (an operator's stop) or immediate (a crash)
    writers: int = 8
    pace_seconds: float = 0.02  # each writer's pause between requests: a steady, not maximal, load
    request_timeout: float = 10.0  # the client's limit; a response slower than hang_limit fails
    hang_limit: float = 3.0  # the service's pool and connect timeouts are 2 s; 1 s of slack
    recover_limit: float = 5.0
    warm_seconds: float = 3.0
    settle_seconds: float = 8.0
    replace_limit: float = 15.0
    workers: int = 2


# ------------------------------------------------------------------ a throwaway cluster


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def postgres_bin() -> Path:
    """The newest installed server's binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return found[-1].parent


class Cluster:
    """initdb + pg_ctl on a free port, as the postgres OS user when we are root."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cme-faults-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        # Our own fixed argv, no shell.
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} {argv[1:]} failed: {done.stdout}{done.stderr}")

    def create(self) -> None:
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.dir, postgres.pw_uid, postgres.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            " -c max_connections=50"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.remove()


# ------------------------------------------------------------------ the service


def workers_of(pid: int) -> list[int]:
    """uvicorn's workers: the supervisor's children started by multiprocessing's spawn."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in task.read_text().split():
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                    if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                        found.append(int(child))
    return sorted(found)


@dataclass
class Service:
    base: str
    process: subprocess.Popen[bytes]

    def workers(self) -> list[int]:
        return workers_of(self.process.pid)


def _get(url: str, timeout: float = 1.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@contextlib.contextmanager
def running_service(database_url: str, log: Path, workers: int) -> Iterator[Service]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DATABASE_URL": database_url,
        "API_KEY": API_KEY,
        "LOG_LEVEL": "INFO",
        "SHUTDOWN_GRACE_SECONDS": "3",
        # The load comes from one address and one key, far above any caller's quota: this
        # harness is about faults, so the rate limits are off.
        "RATE_LIMIT_READS": "0",
        "RATE_LIMIT_WRITES": "0",
    }
    if os.environ.get("PYTHONPATH"):  # a checkout's sources ahead of the installed package
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    subprocess.run([CME, "migrate"], env=env, check=True, capture_output=True, timeout=120)  # noqa: S603
    port = free_port()
    with log.open("ab") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own command line, no shell
            [CME, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"cme exited with {process.returncode}; see {log}")
            with contextlib.suppress(OSError):
                if _get(service.base + "/db-check") == 200 and len(service.workers()) == workers:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"cme was not ready within 30 s; see {log}")
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


# ------------------------------------------------------------------ load


@dataclass
class Call:
    kind: str  # create | read | db-check
    started: float
    ended: float
    status: int | None  # None: no response (socket error or client timeout)
    error: str = ""
    problem: bool = False  # a problem+json body, with Retry-After when the status is 503
    sku: str = ""
    product_id: str = ""
    # A 503 saying the write may or may not have been applied (its connection broke after
    # it was sent): like a lost response, its outcome is unknown.
    outcome_unknown: bool = False

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Load:
    base: str
    config: Config
    tag: str
    calls: list[Call] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    read_id: str = ""

    async def _call(self, kind: str, send: Callable[[], Any], sku: str = "") -> Call:
        started = time.monotonic()
        try:
            response = await send()
        except (httpx.TransportError, OSError) as error:
            call = Call(kind, started, time.monotonic(), None, type(error).__name__, sku=sku)
        else:
            content_type = response.headers.get("content-type", "")
            problem = content_type.startswith(PROBLEM_JSON) and (
                response.status_code != 503 or "retry-after" in response.headers
            )
            body = response.json() if content_type.endswith("json") else {}
            product_id = body.get("id", "") if response.status_code == 201 else ""
            unknown = "may or may not have been applied" in str(body.get("detail", ""))
            call = Call(
                kind,
                started,
                time.monotonic(),
                response.status_code,
                "",
                problem,
                sku,
                product_id,
                unknown,
            )
        self.calls.append(call)
        return call

    async def writer(self, number: int) -> None:
        async with httpx.AsyncClient(
            base_url=self.base, timeout=self.config.request_timeout, trust_env=False
        ) as http:
            for n in range(1_000_000):  # bounded; the stop event ends it long before
                if self.stop.is_set():
                    return
                sku = f"FAULT-{self.tag}-{number}-{n}"
                body = {"sku": sku, "name": "Fault test", "price": "1.00", "quantity": 1}
                call = await self._call(
                    "create",
                    lambda b=body: http.post("/products", json=b, headers=WRITE_HEADERS),
                    sku,
                )
                if call.product_id and not self.read_id:
                    self.read_id = call.product_id
                await asyncio.sleep(self.config.pace_seconds)

    async def reader(self) -> None:
        async with httpx.AsyncClient(
            base_url=self.base, timeout=self.config.request_timeout, trust_env=False
        ) as http:
            for _ in range(1_000_000):
                if self.stop.is_set():
                    return
                if self.read_id:
                    await self._call("read", lambda: http.get(f"/products/{self.read_id}"))
                await asyncio.sleep(0.05)

    async def db_checker(self) -> None:
        async with httpx.AsyncClient(
            base_url=self.base, timeout=self.config.request_timeout, trust_env=False
        ) as http:
            for _ in range(1_000_000):
                if self.stop.is_set():
                    return
                await self._call("db-check", lambda: http.get("/db-check"))
                await asyncio.sleep(0.1)

    def tasks(self) -> list[asyncio.Task[None]]:
        coroutines = [self.writer(n) for n in range(self.config.writers)]
        return [asyncio.create_task(c) for c in (*coroutines, self.reader(), self.db_checker())]


# ------------------------------------------------------------------ checks


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def check(self, ok: bool, what: str) -> None:
        self.lines.append(("  ok    " if ok else "  FAIL  ") + what)
        if not ok:
            self.failures.append(what)


def verify_writes(report: Report, calls: list[Call], database_url: str, tag: str) -> None:
    """Acknowledged creates are all there; refused ones are not; unknown ones are counted."""
    creates = [c for c in calls if c.kind == "create"]
    acked = {c.product_id: c.sku for c in creates if c.status == 201}
    refused = {c.sku for c in creates if c.status == 503 and not c.outcome_unknown}
    unknown = {c.sku for c in creates if c.status is None or c.outcome_unknown}
    unexpected = [c for c in creates if c.status not in (201, 503, None)]
    with psycopg.connect(database_url, connect_timeout=10) as db:
        rows = db.execute(
            "SELECT id::text, sku FROM products WHERE sku LIKE %s", (f"FAULT-{tag}-%",)
        ).fetchall()
    stored = dict(rows)
    stored_skus = set(stored.values())
    missing = [i for i, sku in acked.items() if stored.get(i) != sku]
    written_after_refusal = refused & stored_skus
    unknown_present = unknown & stored_skus
    report.say(
        f"  creates: {len(creates)} sent, {len(acked)} acknowledged 201, {len(refused)} refused "
        f"503, {len(unknown)} unknown (no response, or a 503 saying so: "
        f"{len(unknown_present)} present, {len(unknown) - len(unknown_present)} absent), "
        f"{len(unexpected)} other statuses; "
        f"{len(stored)} rows in the database"
    )
    report.check(not missing, f"every 201 is in the database ({len(missing)} missing)")
    report.check(
        not written_after_refusal,
        f"no create answered 503 exists ({len(written_after_refusal)} do)",
    )
    statuses = sorted({str(c.status) for c in unexpected})
    report.check(not unexpected, f"no status but 201/503 on creates (others: {statuses})")


def describe(calls: list[Call]) -> str:
    if not calls:
        return "none"
    by_status: dict[str, int] = {}
    for c in calls:
        status = str(c.status) if c.status is not None else f"no response ({c.error})"
        key = f"{c.kind} {status}"
        by_status[key] = by_status.get(key, 0) + 1
    slowest = max(c.seconds for c in calls)
    times = sorted(c.seconds for c in calls)
    median = times[len(times) // 2]
    return f"{by_status}, median {median * 1000:.0f} ms, slowest {slowest * 1000:.0f} ms"


def odd_calls(calls: list[Call], since: float) -> str:
    """Each call's kind, status and timing relative to `since`: which call it was, and when."""
    return ", ".join(
        f"{c.kind} {c.status} (problem+json: {c.problem}) sent {c.started - since:+.2f} s, "
        f"answered in {c.seconds:.2f} s"
        for c in calls[:5]
    )


# ------------------------------------------------------------------ the faults


async def outage(service: Service, cluster: Cluster, config: Config, report: Report) -> None:
    load = Load(service.base, config, "A")
    report.say(
        f"(a) database outage: pg_ctl stop -m {config.stop_mode}, "
        f"{config.down_seconds:g} s down, pg_ctl start; {config.writers} writers"
    )
    workers_before = service.workers()
    tasks = load.tasks()
    try:
        await asyncio.sleep(config.warm_seconds)
        stop_sent = time.monotonic()
        await asyncio.to_thread(cluster.stop, config.stop_mode)
        stopped = time.monotonic()
        await asyncio.sleep(config.down_seconds)
        start_sent = time.monotonic()
        await asyncio.to_thread(cluster.start)
        up = time.monotonic()
        await asyncio.sleep(config.settle_seconds)
    finally:
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), config.request_timeout + 5)
    workers_after = service.workers()
    calls = load.calls
    report.say(
        f"  injected: stop took {stopped - stop_sent:.2f} s, database down "
        f"{start_sent - stopped:.2f} s, start took {up - start_sent:.2f} s"
    )
    before = [c for c in calls if c.ended < stop_sent]
    down = [c for c in calls if c.started >= stopped and c.ended <= start_sent]
    after = [c for c in calls if c.started >= up]
    report.say(f"  before the stop: {describe(before)}")
    report.say(f"  while down (requests and db-checks): {describe(down)}")
    report.say(f"  after the start: {describe(after)}")
    report.check(
        bool(before) and all(c.status in (200, 201) for c in before),
        "all requests succeed before the fault",
    )
    report.check(
        len(down) > config.writers, f"requests were made while the database was down ({len(down)})"
    )
    report.check(
        all(c.status == 503 and c.problem for c in down),
        "every request while down is 503 problem+json with Retry-After",
    )
    slow = [c for c in calls if c.status is None or c.seconds > config.hang_limit]
    report.check(
        not slow,
        f"no request hangs past {config.hang_limit:g} s or loses its connection ({len(slow)})",
    )
    report.check(any(c.kind == "db-check" for c in down), "/db-check polled while down")
    report.check(
        workers_before == workers_after,
        f"no worker crashed (pids {workers_before} -> {workers_after})",
    )
    failed_after = [c for c in after if c.status not in (200, 201)]
    recovery = max((c.ended - up for c in failed_after), default=0.0)
    first_ready = min(
        (c.ended - up for c in after if c.kind == "db-check" and c.status == 200),
        default=float("inf"),
    )
    report.say(
        f"  recovery: /db-check 200 {first_ready:.2f} s after the database was back; "
        f"last failed request ended {recovery:.2f} s after ({len(failed_after)} failed)"
    )
    report.check(
        recovery <= config.recover_limit and first_ready <= config.recover_limit,
        f"normal again within {config.recover_limit:g} s, without a restart",
    )
    report.check(any(c.status == 201 for c in after), "creates succeed after recovery")
    verify_writes(report, calls, cluster.url, "A")


async def killed_worker(service: Service, cluster: Cluster, config: Config, report: Report) -> None:
    load = Load(service.base, config, "B")
    workers_before = service.workers()
    victim = workers_before[0]
    report.say(
        f"(b) kill -9 of worker {victim} (workers {workers_before}); {config.writers} writers"
    )
    tasks = load.tasks()
    replaced_at = None
    try:
        await asyncio.sleep(config.warm_seconds)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        for _ in range(int(config.replace_limit / 0.05)):
            now = service.workers()
            if len(now) == config.workers and victim not in now:
                replaced_at = time.monotonic()
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(config.settle_seconds)
    finally:
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), config.request_timeout + 5)
    workers_after = service.workers()
    replaced = replaced_at is not None
    report.say(
        f"  injected: SIGKILL to {victim}; workers now {workers_after}"
        + (f", replacement seen {replaced_at - killed:.2f} s later" if replaced_at else "")
    )
    report.check(
        replaced, f"the supervisor replaced the killed worker within {config.replace_limit:g} s"
    )
    calls = load.calls
    settled = (replaced_at or killed) + 2.0
    around = [c for c in calls if c.started < settled]
    later = [c for c in calls if c.started >= settled]
    report.say(f"  until 2 s after the replacement: {describe(around)}")
    report.say(f"  afterwards: {describe(later)}")
    odd = [c for c in around if c.status not in (200, 201, None)]
    report.check(
        not odd,
        "around the kill: only successes or lost connections "
        f"({len(odd)} other{': ' if odd else ''}{odd_calls(odd, killed)})",
    )
    report.check(
        bool(later) and all(c.status in (200, 201) for c in later),
        "every request succeeds once the replacement is up",
    )
    verify_writes(report, calls, cluster.url, "B")


def run_faults(config: Config, service_log: Path) -> Report:
    """Both faults on one throwaway cluster and one service; the report says what was seen."""
    report = Report()
    with (
        throwaway_cluster() as cluster,
        running_service(cluster.url, service_log, config.workers) as service,
    ):
        report.say(
            f"cluster: PostgreSQL from {cluster.bin} on 127.0.0.1:{cluster.port}; "
            f"cme serve --workers {config.workers} at {service.base}"
        )
        started = time.monotonic()
        asyncio.run(outage(service, cluster, config, report))
        asyncio.run(killed_worker(service, cluster, config, report))
        report.say(
            f"faults done in {time.monotonic() - started:.1f} s; "
            f"{len(report.failures)} check(s) failed"
        )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down-seconds", type=float, default=10.0)
    parser.add_argument("--stop-mode", choices=("fast", "immediate"), default="fast")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--summary", type=Path, default=ROOT / "bench" / "out" / "faults.txt")
    args = parser.parse_args()
    config = Config(down_seconds=args.down_seconds, stop_mode=args.stop_mode, writers=args.writers)
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    report = run_faults(config, args.summary.with_name("faults-cme.log"))
    text = "\n".join(report.lines) + "\n"
    args.summary.write_text(text)
    print(text, end="")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
