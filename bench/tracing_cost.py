"""CPU per request of tracing, measured in one process on one core (issue 16).

    PYTHONPATH=src .venv/bin/python bench/tracing_cost.py [parts|asgi|loop] [--rounds 5]

`parts`: the pieces of a sampled request, each over many iterations: the server span
(ServerSpans.start/finish), one database span, BatchSpanProcessor.on_end, encode_spans and
the exporter's POST to a local OTLP receiver that answers 200 (in a child process, so that
its CPU is not counted), and ServerSpans.start for a request the sampler drops; beside them, a
statement's span started and ended through the SDK's own Tracer, which the service no longer
uses for recording.

`asgi`: whole requests, GET /products/{id} and POST /products, driven through the ASGI app in
process (PostgreSQL at TEST_DATABASE_URL or 127.0.0.1, a throwaway database) by four apps:
tracing off, on at a ratio of 0 (every request unsampled), at 0.1, and at 1 (every request
sampled). Rounds alternate the variants. Reported: the event loop thread's CPU per request
(the median round), the export thread's over the whole run (spans batched as deployed, 512 to
an export, and the last batch flushed at the end), and each variant's median over the rounds
of its ratio to off in the same round (many short rounds, `--rounds 60 --requests 100`, suit
a machine whose speed changes from one second to the next).

`loop`: GETs and POSTs through the ASGI app for --seconds, all sampled (--ratio 1, or off:
no tracing), for py-spy:
`.venv/bin/py-spy record --format raw -o out.txt -- .venv/bin/python bench/tracing_cost.py loop`.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

PARENT = "00f067aa0ba902b7"
# Below every ratio's bound: sampled by parentbased_traceidratio at 0.1 as a root.
LOW_TRACE_ID = "4bf92f3577b34da60000000000000001"
HIGH_TRACE_ID = "4bf92f3577b34da6ffffffffffffff00"
API_KEY = "bench-tracing-cost-0123456789"
SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def span_sink() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SINK], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    return process, f"http://127.0.0.1:{process.stdout.readline().strip()}"


def cpu_us(work: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        work()
    return (time.process_time() - started) / n * 1e6


def report(name: str, samples: list[float]) -> None:
    print(
        f"  {name:<48} {statistics.median(samples):8.1f} us  (min {min(samples):.1f})",
        file=sys.__stdout__,
    )


def parts(rounds: int) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind

    from cme_adapters.telemetry import tracing
    from cme_adapters.telemetry.database_spans import DatabaseSpans
    from cme_entrypoints.http.spans import ServerSpans
    from cme_entrypoints.trace_context import RequestContext

    class Keep(SpanExporter):
        def __init__(self) -> None:
            self.spans: list[ReadableSpan] = []

        def export(self, spans: Any) -> SpanExportResult:
            self.spans.extend(spans)
            return SpanExportResult.SUCCESS

    sink, endpoint = span_sink()
    os.environ.update(
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.1",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_BSP_SCHEDULE_DELAY="3600000",  # exported only by force_flush below
        OTEL_BSP_MAX_QUEUE_SIZE="100000",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="100000",
    )
    try:
        traces = tracing.traces(enabled=True, endpoint=endpoint)
        assert traces is not None
        processor = traces._processor
        batch = processor._batch_processor  # type: ignore[attr-defined]
        keep = Keep()
        batch._exporter = keep  # keep the spans, to time their export apart
        server = ServerSpans(traces)
        database = DatabaseSpans(traces, "postgresql")
        sdk_tracer = traces._provider.get_tracer("cme.db")
        attributes = {
            "db.system": "postgresql",
            "db.system.name": "postgresql",
            "db.operation.name": "SELECT",
            "db.collection.name": "products",
        }
        scope = {"type": "http", "method": "GET", "path": "/products/1", "scheme": "http"}
        sampled = RequestContext("r", LOW_TRACE_ID, "1111111111111111", False, None)
        dropped = RequestContext("r", HIGH_TRACE_ID, "1111111111111111", False, None)

        def server_span() -> None:
            handle, _ = server.start(scope, sampled)
            server.finish(handle, "GET", "/products/{id}", 200)

        def server_and_db_span() -> None:
            handle, _ = server.start(scope, sampled)
            with database("SELECT", "products"):
                pass
            server.finish(handle, "GET", "/products/{id}", 200)

        def sdk_span() -> None:  # what a statement's span cost through the SDK's Tracer
            sdk_tracer.start_span(
                "SELECT products", kind=SpanKind.CLIENT, attributes=attributes
            ).end()

        def unsampled() -> None:
            handle, _ = server.start(scope, dropped)
            with database("SELECT", "products"):
                pass
            if handle is not None:
                server.finish(handle, "GET", "/products/{id}", 200)

        n = 5000
        exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
        results: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, work in (
                ("for comparison: the SDK Tracer's span, 4 attributes", sdk_span),
                ("unsampled request: start (+ no db span)", unsampled),
                ("sampled: server span start+finish", server_span),
                ("sampled: server span + 1 db span", server_and_db_span),
            ):
                results.setdefault(name, []).append(cpu_us(work, n))
                traces.force_flush()
            spans = keep.spans[-n:]
            keep.spans.clear()
            results.setdefault("BatchSpanProcessor.on_end, per span", []).append(
                cpu_us(lambda s=iter(spans): processor.on_end(next(s)), len(spans))  # noqa: B008
            )
            batch._queue.clear()
            chunks = [spans[i : i + 512] for i in range(0, len(spans), 512)]
            started = time.process_time()
            for chunk in chunks:
                encode_spans(chunk).SerializeToString()
            per_span = (time.process_time() - started) / len(spans) * 1e6
            results.setdefault("encode_spans+serialise (512 a batch), per span", []).append(
                per_span
            )
            started = time.process_time()
            for chunk in chunks:
                exporter.export(chunk)
            per_span = (time.process_time() - started) / len(spans) * 1e6
            results.setdefault("exporter.export (512 a batch), per span", []).append(per_span)
            small = [spans[i : i + 2] for i in range(0, 400, 2)]
            started = time.process_time()
            for chunk in small:
                exporter.export(chunk)
            per_post = (time.process_time() - started) / len(small) * 1e6
            results.setdefault("exporter.export of 2 spans, per POST", []).append(per_post)
        for name, samples in results.items():
            report(name, samples)
        traces.shutdown()
    finally:
        sink.terminate()
        sink.wait()


class Driver:
    """One app's lifespan and requests, called as uvicorn calls it, without a socket."""

    def __init__(self, env: dict[str, str]) -> None:
        from cme_entrypoints.container import Container
        from cme_entrypoints.http.app import create_app
        from cme_entrypoints.settings import Settings

        saved = dict(os.environ)
        os.environ.update(env)  # the SDK reads OTEL_* from the environment
        try:
            container = Container(settings=Settings.from_env())
            self.app = create_app(container)
            self.traces = container.traces()
            # The batching processor's own thread, where spans are encoded and sent.
            self._exporter_thread = (
                self.traces._processor._batch_processor._worker_thread  # type: ignore[attr-defined]
                if self.traces is not None
                else None
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self._lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.counter = 0

    def export_cpu(self) -> float:
        """CPU seconds the export thread has used, 0 without tracing."""
        if self._exporter_thread is None or self._exporter_thread.ident is None:
            return 0.0
        return time.clock_gettime(time.pthread_getcpuclockid(self._exporter_thread.ident))

    async def start(self) -> None:
        async def receive() -> dict[str, Any]:
            return await self._lifespan.get()

        async def send(message: dict[str, Any]) -> None:
            await self._sent.put(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(self.app(scope, receive, send))
        await self._lifespan.put({"type": "lifespan.startup"})
        message = await self._sent.get()
        assert message["type"] == "lifespan.startup.complete", message

    async def stop(self) -> None:
        await self._lifespan.put({"type": "lifespan.shutdown"})
        await self._sent.get()
        assert self._task is not None
        await self._task

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:5000"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 5000),
            "state": {},
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)

    async def post(self) -> int:
        self.counter += 1
        sku = f"tc-{uuid.uuid4().hex[:12]}"
        body = (
            f'{{"sku":"{sku}","name":"Bench product {self.counter}","description":"Written '
            f'in process","price":"{self.counter % 1000}.00","quantity":{self.counter % 5000}}}'
        ).encode()
        headers = ((b"x-api-key", API_KEY.encode()), (b"content-type", b"application/json"))
        status, _ = await self.request("POST", "/products", body, headers)
        return status


async def prepare_database() -> tuple[str, Callable[[], None]]:
    import psycopg
    from sqlalchemy.engine import make_url

    from cme_adapters.sql import migrate

    server = os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"cme_tracecost_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    await migrate.upgrade(url)

    def drop() -> None:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def app_env(url: str, endpoint: str, ratio: str | None) -> dict[str, str]:
    env = {
        "DATABASE_URL": url,
        "API_KEY": API_KEY,
        "RATE_LIMIT_READS": "0",
        "RATE_LIMIT_WRITES": "0",
        "LOG_LEVEL": "INFO",
        "OTEL_TRACES_EXPORTER": "none",
    }
    if ratio is not None:
        env.update(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=ratio,
        )
    return env


async def drive(rounds: int, requests: int, loop_seconds: float, ratio: str = "1") -> None:
    from cme_entrypoints import logs

    sink, endpoint = span_sink()
    url, drop = await prepare_database()
    try:
        variants = {"off": None, "on, unsampled": "0", "on, 10 %": "0.1", "on, sampled": "1"}
        if loop_seconds:
            variants = {"looped": None if ratio == "off" else ratio}
        drivers = {name: Driver(app_env(url, endpoint, ratio)) for name, ratio in variants.items()}
        for driver in drivers.values():
            await driver.start()
        # The access log, written as by the service but not shown: AccessLog writes to
        # sys.stdout, the results go to sys.__stdout__.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115, ASYNC230
        logs.configure("INFO", "json")
        seed = next(iter(drivers.values()))
        ids = []
        for _ in range(200):
            status, body = await seed.request(
                "POST",
                "/products",
                f'{{"sku":"seed-{uuid.uuid4().hex[:12]}","name":"Seed","price":"1.00",'
                f'"quantity":1}}'.encode(),
                ((b"x-api-key", API_KEY.encode()), (b"content-type", b"application/json")),
            )
            assert status == 201, (status, body)
            ids.append(body.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode())

        async def gets(driver: Driver, n: int) -> None:
            for i in range(n):
                status, _ = await driver.request("GET", f"/products/{ids[i % len(ids)]}")
                assert status == 200, status

        async def posts(driver: Driver, n: int) -> None:
            for _ in range(n):
                assert await driver.post() == 201

        if loop_seconds:
            driver = drivers["looped"]
            deadline = time.monotonic() + loop_seconds
            while time.monotonic() < deadline:
                await gets(driver, 500)
                await posts(driver, 100)
            await driver.stop()
            return
        results: dict[tuple[str, str], list[float]] = {}
        for driver in drivers.values():  # warm up
            await gets(driver, 200)
            await posts(driver, 50)
            if driver.traces is not None:
                driver.traces.force_flush()
        exporting = {name: driver.export_cpu() for name, driver in drivers.items()}
        names = list(drivers)
        for n in range(rounds):
            for scenario, run in (("get", gets), ("post", posts)):
                # The order turns each round: no variant always follows the same one.
                for name in names[n % len(names) :] + names[: n % len(names)]:
                    driver = drivers[name]
                    started = time.thread_time()
                    await run(driver, requests)
                    elapsed = time.thread_time() - started
                    results.setdefault((scenario, name), []).append(elapsed / requests * 1e6)
        for name, driver in drivers.items():
            started = time.thread_time()
            if driver.traces is not None:
                driver.traces.force_flush()  # the last batch, exported in this thread
            exported = driver.export_cpu() - exporting[name] + time.thread_time() - started
            exporting[name] = exported / (rounds * requests * 2) * 1e6
        print("  event loop's thread, us of CPU per request:", file=sys.__stdout__)
        for (scenario, name), samples in results.items():
            report(f"{scenario}: {name}", samples)
        print(
            "  export thread, us of CPU per request (get and post together):", file=sys.__stdout__
        )
        for name, per_request in exporting.items():
            print(f"  {name:<48} {per_request:8.1f} us", file=sys.__stdout__)
        # This machine's speed can halve for a second at a time: a round's variants ran
        # within a moment of each other, so each round's ratio to off is steadier than the
        # ratio of two medians.
        print("  event loop's thread, each round against off's:", file=sys.__stdout__)
        for (scenario, name), samples in results.items():
            off = results[(scenario, "off")]
            ratios = [on / base for on, base in zip(samples, off, strict=True)]
            quartiles = statistics.quantiles(ratios, n=4)
            print(
                f"  {scenario}: {name:<43} x{statistics.median(ratios):.3f} "
                f"(median of {len(ratios)} rounds; middle half "
                f"{quartiles[0]:.3f}-{quartiles[2]:.3f})",
                file=sys.__stdout__,
            )
        for driver in drivers.values():
            await driver.stop()
    finally:
        sink.terminate()
        sink.wait()
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("parts", "asgi", "loop"), nargs="?", default="parts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30, help="how long `loop` runs")
    parser.add_argument(
        "--ratio", default="1", help="`loop`: OTEL_TRACES_SAMPLER_ARG, or off for no tracing"
    )
    args = parser.parse_args()
    if args.what == "parts":
        parts(args.rounds)
    else:
        seconds = args.seconds if args.what == "loop" else 0
        asyncio.run(drive(args.rounds, args.requests, seconds, args.ratio))


if __name__ == "__main__":
    main()
