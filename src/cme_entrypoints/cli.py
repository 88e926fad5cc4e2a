"""The `cme` command: its parser, `cme serve` and `cme openapi`; the others register themselves."""

import argparse
import errno
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import uvicorn
from dotenv import dotenv_values

from cme_entrypoints import database_commands, import_command, logs, token_command
from cme_entrypoints.http.head_limit import MAX_HEAD_BYTES
from cme_entrypoints.settings import WORKERS_MAX, Settings
from cme_entrypoints.settings_parsing import SettingsError

DESCRIPTION = """\
cme: the product-catalogue API.

Configuration comes from environment variables (docs/configuration), and from ./.env for those
the shell has not set, as docker compose reads it: DATABASE_URL, or
DB_HOST/DB_PORT/DB_USER/DB_PASS/DB_NAME; with neither, an embedded SQLite file at var/cme.db.
Credentials: API_KEY/API_KEYS; JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE or
JWT_JWKS_URL with JWT_ISSUER, JWT_AUDIENCE, JWT_ALGORITHMS, JWT_LEEWAY_SECONDS;
REQUIRE_READ_SCOPE. Service: PORT, HOST, WEB_CONCURRENCY, LOG_LEVEL, LOG_FORMAT, DB_POOL_SIZE,
SHUTDOWN_GRACE_SECONDS, SHUTDOWN_DRAIN_SECONDS, KEEP_ALIVE_SECONDS, IDEMPOTENCY_TTL_HOURS,
CHANGES_RETENTION_DAYS,
CURSOR_SECRET, CORS_ALLOW_ORIGINS, METRICS_TOKEN, REQUEST_TELEMETRY, DOCS_URL. Hardening:
HEADER_TIMEOUT_SECONDS, BODY_TIMEOUT_SECONDS, MAX_CONNECTIONS, FEED_WAITS_PER_WORKER,
FEED_WAITS_PER_CALLER; rate limits: RATE_LIMIT_READS,
RATE_LIMIT_WRITES, RATE_LIMIT_BATCH (N/SECONDS, or 0 for none), REDIS_URL, RATE_LIMIT_PREFIX.
Webhooks: WEBHOOK_ALLOW_PRIVATE_ADDRESSES (development only). Observability:
GOOGLE_CLOUD_PROJECT (log lines name their Cloud Trace), OTEL_TRACES_EXPORTER=otlp with the
OpenTelemetry SDK's OTEL_*.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from_dotenv = _read_dotenv(Path(".env"))
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"cme: configuration error: {error}", file=sys.stderr)
        return 2
    args.from_dotenv = from_dotenv
    try:
        result: int = args.run(settings, args)
    except BrokenPipeError:
        # The reader left (cme openapi | head). Python's own advice: point stdout at devnull,
        # so that the interpreter's last flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


def _read_dotenv(path: Path) -> str | None:
    """Set the variables of ./.env that the shell has not set, as docker compose reads it.

    Returns a line saying which were read (names only), or None without a .env file."""
    if not path.is_file():
        return None
    values = dotenv_values(path, interpolate=True)
    read = [name for name, value in values.items() if value is not None and name not in os.environ]
    os.environ.update({name: str(values[name]) for name in read})
    names = ", ".join(read) if read else "nothing the shell had not set"
    return f"read {names} from {path.resolve()} (the shell's own values win)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cme", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"cme {version('cme')}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API with uvicorn",
        description="Serve the HTTP API. Apply migrations first with `cme migrate`.",
    )
    serve.add_argument("--host", help="interface to listen on (env HOST, default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="TCP port (env PORT, default 5000)")
    serve.add_argument(
        "--workers",
        type=_workers,
        help=f"worker processes, 1 to {WORKERS_MAX} (env WEB_CONCURRENCY, default 1)",
    )
    serve.set_defaults(run=_serve)

    database_commands.register(commands)

    openapi = commands.add_parser(
        "openapi",
        help="print the OpenAPI 3.1 document",
        description="Print the OpenAPI 3.1 document that GET /openapi.json serves.",
    )
    openapi.set_defaults(run=_openapi)
    token_command.register(commands)
    import_command.register(commands)
    return parser


def _workers(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 1 <= value <= WORKERS_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {WORKERS_MAX}")
    return value


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    host, port = args.host or settings.host, args.port or settings.port
    # uvicorn would report these after "Application startup complete" and exit 3: say it in one.
    refusal = _cannot_listen(host, port, "--host" if args.host else "HOST")
    if refusal:
        print(f"cme: {refusal}", file=sys.stderr)
        return 1
    log_config = logs.configure(
        settings.log_level, settings.log_format, settings.google_cloud_project
    )
    if args.from_dotenv:
        logging.getLogger("cme").info(args.from_dotenv)
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to end the
    # process; this handler turns that graceful stop into exit status 0 for orchestrators.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(0))
    uvicorn.run(
        "cme_entrypoints.asgi:create",
        factory=True,
        host=host,
        port=port,
        workers=args.workers or settings.workers,
        log_config=log_config,
        # httptools has no limit on a request head, nor any deadline for a head or a body,
        # and answers what it refuses in text/plain; this protocol answers 431, 408 and 400
        # as problem+json, counts and logs them, and 503 beyond MAX_CONNECTIONS.
        http="cme_entrypoints.http.protocol:ServerProtocol",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        loop="uvloop",
        timeout_keep_alive=settings.keep_alive_seconds,
        # A backstop on running requests; the protocol refuses connections past the cap.
        limit_concurrency=settings.max_connections + 1,
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    return 0


def _cannot_listen(host: str, port: int, host_from: str) -> str | None:
    """Why uvicorn could not listen there, bound as it binds (so TIME_WAIT is no reason)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as error:
            return f"{host_from} {host!r} is not a name this machine can resolve: {error.strerror}"
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use; "
                    "serve on another with PORT=N or --port N"
                )
            if error.errno == errno.EADDRNOTAVAIL:
                return f"{host_from} {host!r} is no address of this machine (0.0.0.0 is every one)"
            return f"cannot listen on {host}:{port}: {error.strerror}"
    return None


def _openapi(settings: Settings, args: argparse.Namespace) -> int:
    from cme_entrypoints.http.docs import openapi_document

    print(json.dumps(openapi_document(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
