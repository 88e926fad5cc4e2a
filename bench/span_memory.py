"""What a client's long unknown paths cost a traced worker's memory.

    PYTHONPATH=src .venv/bin/python bench/span_memory.py [--requests 4000] [--tree NAME=PATH ...]

For each tree (a checkout; default: this one) and each tracing mode, one worker of `cme serve`
on a fresh SQLite file, then its resident memory before and after --requests `GET`s of
distinct 15 KB paths no route has (404s), on one keep-alive connection. The modes:

- off: no tracing;
- dropped: tracing on, every request dropped by the sampler (always_off);
- sampled-down: every request sampled, the OTLP endpoint refusing connections (the batching
  processor's queue full, as during a collector outage);
- sampled: every request sampled, exported to a receiver on loopback that answers 200.

Giving the code before and after a change as two trees measures both in one run.
"""

import argparse
import os
import random
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from procs import free_port, http_get, rss_kib

CME = str(Path(sys.executable).with_name("cme"))
MODES = ("off", "dropped", "sampled-down", "sampled")


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # the name http.server calls
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def serve(tree: Path, database: Path, mode: str, port: int) -> tuple[subprocess.Popen[bytes], int]:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{tree / 'src'}:{tree}",
        "DATABASE_URL": f"sqlite:///{database}",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_READS": "0",
        "OTEL_TRACES_EXPORTER": "none" if mode == "off" else "otlp",
        "OTEL_TRACES_SAMPLER": "always_off" if mode == "dropped" else "always_on",
        # Port 9 (discard) has no listener here: every export is refused.
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{9 if mode == 'sampled-down' else port}",
    }
    subprocess.run([CME, "migrate"], env=env, check=True, capture_output=True)
    listen = free_port()
    process = subprocess.Popen(
        [CME, "serve", "--host", "127.0.0.1", "--port", str(listen), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if http_get(f"http://127.0.0.1:{listen}/health", timeout=1)[0] == 200:
                return process, listen
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{tree}: the server did not start")


def get(connection: socket.socket, path: str) -> None:
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += connection.recv(65536)


def grown_mib(tree: Path, mode: str, requests: int, receiver: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        process, port = serve(tree, Path(folder) / "cme.db", mode, receiver)
        try:
            with socket.create_connection(("127.0.0.1", port)) as connection:
                for _ in range(50):
                    get(connection, "/health")
                before = rss_kib(process.pid)["VmRSS"] / 1024
                for _ in range(requests):
                    get(connection, "/" + "".join(random.choices(string.ascii_letters, k=15_000)))
                time.sleep(2)  # the batching processor's export, when it has one
                return before, rss_kib(process.pid)["VmRSS"] / 1024
        finally:
            process.terminate()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout")
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    trees = [tuple(t.split("=", 1)) for t in args.tree] or [("this", str(Path.cwd()))]
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    after = f"after {args.requests} requests (MiB)"
    print(f"| tree | tracing | RSS before (MiB) | {after} | grown (MiB) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for mode in args.modes.split(","):
        for name, path in trees:
            before, after = grown_mib(Path(path), mode, args.requests, receiver.server_port)
            print(
                f"| {name} | {mode} | {before:.1f} | {after:.1f} | {after - before:+.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
