"""Webhook deliveries to a receiver on loopback: how many per second, and how soon after a write.

    PYTHONPATH=src:bench .venv/bin/python bench/webhooks.py [--events 2000] [--seconds 10]

On a fresh PostgreSQL database, `cme serve` with two workers and a receiver in a process of
its own that answers every POST with 204 at once:
  backlog  --events product creates (batches of 500) written at once: their deliveries,
           first arrival to last, per second, to 1 endpoint and to --endpoints endpoints
           (each gets every event)
  mixed    --clients threads writing as a shop does (creates, PATCHes, stock adjustments) for
           --seconds, in alternating rounds with and without one endpoint: the writes per
           second each way, and the lag from each write's occurred_at to its arrival, p50/p99
"""

import argparse
import asyncio
import multiprocessing
import random
import statistics
import threading
import time
import uuid
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import orjson
import psycopg
from procs import free_port
from reservations import ADMIN_URL, HEADERS, Client, expect, serve
from sqlalchemy.engine import make_url


def receive(port: int, stop: Any, count: Any, out: Connection) -> None:
    """The receiver's process: every POST is answered 204; (arrival, event) kept for each."""
    arrivals: list[tuple[float, bytes]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                arrivals.append((time.time(), body))
                count.value += 1  # only this process writes it
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            # The stop flag is another process's: it can only be looked at, not awaited.
            while not stop.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    asyncio.run(main())
    out.send(arrivals)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._stop = multiprocessing.Event()
        self.count = multiprocessing.Value("i", 0, lock=False)
        self._theirs, self._ours = multiprocessing.Pipe(duplex=False)
        self._process = multiprocessing.Process(
            target=receive, args=(self.port, self._stop, self.count, self._ours)
        )
        self._process.start()
        time.sleep(0.3)

    def stop(self) -> list[tuple[float, dict[str, Any]]]:
        self._stop.set()
        arrivals = self._theirs.recv()
        self._process.join()
        return [(at, orjson.loads(body)) for at, body in arrivals]


def subscribe(client: Client, url: str) -> str:
    return str(expect(201, *client.post("/webhooks", {"url": url}))["id"])


def unsubscribe(port: int, webhook_id: str) -> None:
    client = Client(port)  # a fresh connection: the last one may have idled out
    client.http.request("DELETE", f"/webhooks/{webhook_id}", headers=HEADERS)
    client.http.getresponse().read()


def backlog(port: int, events: int, endpoints: int) -> float:
    """Deliveries per second of a backlog of `events` to each of `endpoints` endpoints."""
    client = Client(port)
    receiver = Receiver()
    hooks = [subscribe(client, receiver.url) for _ in range(endpoints)]
    tag = uuid.uuid4().hex[:6]
    for start in range(0, events, 500):
        batch = [
            {"sku": f"W{tag}-{n}", "name": "Lamp", "price": "1.00", "quantity": 5}
            for n in range(start, min(start + 500, events))
        ]
        expect(200, *client.post("/products/batch", {"mode": "create", "products": batch}))
    wanted = events * endpoints
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and receiver.count.value < wanted:
        time.sleep(0.1)
    arrivals = receiver.stop()
    for hook in hooks:
        unsubscribe(port, hook)
    if len(arrivals) < wanted:
        raise RuntimeError(f"{len(arrivals)} of {wanted} deliveries arrived")
    times = sorted(at for at, _ in arrivals)
    return (len(times) - 1) / (times[-1] - times[0])


def mixed_round(port: int, products: list[str], seconds: float, clients: int, rate: float) -> int:
    """Writes done by `clients` threads in `seconds`: creates, PATCHes and adjustments, at
    most `rate` a second over all of them (0: as fast as they go)."""
    done = [0]
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + seconds
    interval = clients / rate if rate else 0.0

    def work(seed: int) -> None:
        pick = random.Random(seed)
        client = Client(port)
        mine = 0
        while time.monotonic() < deadline:
            if interval:
                time.sleep(max(start + (mine + seed / clients) * interval - time.monotonic(), 0))
            roll = pick.random()
            if roll < 0.4:
                body = {"sku": f"M{uuid.uuid4().hex[:12]}", "name": "Lamp", "price": "2.00"}
                expect(201, *client.post("/products", {**body, "quantity": 3}))
            elif roll < 0.7:
                sale = {"delta": 1, "reason": "restock"}
                product = pick.choice(products)
                expect(201, *client.post(f"/products/{product}/stock-adjustments", sale))
            else:
                product = pick.choice(products)
                client.http.request(
                    "PATCH",
                    f"/products/{product}",
                    orjson.dumps({"description": f"round {mine}"}),
                    HEADERS,
                )
                response = client.http.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"PATCH answered {response.status}")
            mine += 1
        with lock:
            done[0] += mine

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0]


def mixed(port: int, products: list[str], rate: float, args: argparse.Namespace) -> None:
    """Alternating rounds without and with one endpoint, at `rate` writes/s (0: flat out)."""
    label = f"{rate:.0f} writes/s" if rate else "flat out"
    writes: dict[str, list[float]] = {"without": [], "with": []}
    lags: list[float] = []
    behind = 0
    for number in range(args.rounds):
        for kind in ("without", "with") if number % 2 == 0 else ("with", "without"):
            receiver = Receiver() if kind == "with" else None
            hook = subscribe(Client(port), receiver.url) if receiver else None
            count = mixed_round(port, products, args.seconds, args.clients, rate)
            writes[kind].append(count / args.seconds)
            if receiver is None or hook is None:
                print(f"{label} round {number + 1} without: {count / args.seconds:6.0f} writes/s")
                continue
            time.sleep(1)  # the last writes' deliveries, when it keeps up
            unsubscribe(port, hook)
            arrivals = receiver.stop()
            lags.extend(lag_of(arrivals))
            behind += count - len(arrivals)
            print(
                f"{label} round {number + 1} with: {count / args.seconds:6.0f} writes/s, "
                f"{len(arrivals)} of {count} delivered within 1 s of the round's end",
                flush=True,
            )
    lags.sort()
    with_, without = statistics.median(writes["with"]), statistics.median(writes["without"])
    print(
        f"{label}: writes/s with one endpoint / without: {with_:.0f} / {without:.0f} = "
        f"{with_ / without:.2f}x"
    )
    p50, p99 = lags[len(lags) // 2] * 1000, lags[int(len(lags) * 0.99)] * 1000
    print(
        f"{label}: lag from occurred_at to arrival, {len(lags)} deliveries: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; {behind} not yet delivered"
    )


def lag_of(arrivals: list[tuple[float, dict[str, Any]]]) -> list[float]:
    return sorted(
        at - datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).timestamp()
        for at, event in arrivals
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rates", default="200,0", help="writes/s of the mixed rounds; 0: flat out"
    )
    args = parser.parse_args()
    name = f"cme_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    process = None
    try:
        process, port = serve(url, args.workers, WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true")
        for endpoints in (1, args.endpoints):
            rate = backlog(port, args.events, endpoints)
            print(f"backlog of {args.events} events to {endpoints} endpoint(s): {rate:7.0f}/s")
        client = Client(port)
        products = []
        for n in range(50):
            body = {"sku": f"P{n}", "name": "Lamp", "price": "1.00", "quantity": 10}
            products.append(str(expect(201, *client.post("/products", body))["id"]))
        for rate in (float(r) for r in args.rates.split(",")):
            mixed(port, products, rate, args)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
