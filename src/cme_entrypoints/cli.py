"""The `cme` command: serve the API, migrate the database, print the OpenAPI document."""

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence

import uvicorn

from cme_domain.errors import StorageUnavailable
from cme_entrypoints import logs, token_command
from cme_entrypoints.http.head_limit import MAX_HEAD_BYTES
from cme_entrypoints.settings import Settings, SettingsError

DESCRIPTION = """\
cme: the product-catalogue API.

Configuration comes from environment variables (see the README): DATABASE_URL, or
DB_HOST/DB_PORT/DB_USER/DB_PASS/DB_NAME; with neither, an embedded SQLite file at var/cme.db.
Credentials: API_KEY/API_KEYS; JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE or
JWT_JWKS_URL with JWT_ISSUER, JWT_AUDIENCE, JWT_ALGORITHMS, JWT_LEEWAY_SECONDS;
REQUIRE_READ_SCOPE. Service: PORT, HOST, WEB_CONCURRENCY, LOG_LEVEL, LOG_FORMAT, DB_POOL_SIZE,
SHUTDOWN_GRACE_SECONDS, SHUTDOWN_DRAIN_SECONDS, IDEMPOTENCY_TTL_HOURS, CURSOR_SECRET,
CORS_ALLOW_ORIGINS, METRICS_TOKEN, REQUEST_TELEMETRY. Observability: GOOGLE_CLOUD_PROJECT (log
lines name their Cloud Trace), OTEL_TRACES_EXPORTER=otlp with the OpenTelemetry SDK's OTEL_*.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"cme: configuration error: {error}", file=sys.stderr)
        return 2
    result: int = args.run(settings, args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cme", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API with uvicorn",
        description="Serve the HTTP API. Apply migrations first with `cme migrate`.",
    )
    serve.add_argument("--host", help="interface to listen on (env HOST, default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="TCP port (env PORT, default 5000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (env WEB_CONCURRENCY, default 1)"
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser(
        "migrate",
        help="apply database migrations (safe to run again)",
        description="Bring the configured database's schema up to date. Safe to run twice.",
    )
    migrate.set_defaults(run=_migrate)

    prune = commands.add_parser(
        "prune",
        help="delete expired idempotency records",
        description="Delete every idempotency record older than IDEMPOTENCY_TTL_HOURS.",
    )
    prune.set_defaults(run=_prune)

    openapi = commands.add_parser(
        "openapi",
        help="print the OpenAPI 3.1 document",
        description="Print the OpenAPI 3.1 document that GET /openapi.json serves.",
    )
    openapi.set_defaults(run=_openapi)
    token_command.register(commands)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    log_config = logs.configure(
        settings.log_level, settings.log_format, settings.google_cloud_project
    )
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to end the
    # process; this handler turns that graceful stop into exit status 0 for orchestrators.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(0))
    uvicorn.run(
        "cme_entrypoints.asgi:create",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        log_config=log_config,
        # httptools has no limit on a request head of its own (431), and answers text/plain.
        http="cme_entrypoints.http.protocol:ObservedHttpToolsProtocol",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        loop="uvloop",
        timeout_keep_alive=5,
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: every uvicorn worker re-imports this module, and Alembic is a third of
    # its start-up time, needed only by this command.
    from cme_adapters.sql import migrate as migrations

    logs.configure(settings.log_level, settings.log_format, settings.google_cloud_project)
    try:
        asyncio.run(migrations.upgrade(settings.database_url))
    except StorageUnavailable as error:
        print(f"cme: cannot reach the database: {error}", file=sys.stderr)
        return 1
    print(f"cme: {settings.database_kind} schema is up to date")
    return 0


def _prune(settings: Settings, args: argparse.Namespace) -> int:
    from cme_entrypoints.container import Container

    logs.configure(settings.log_level, settings.log_format)
    container = Container(settings=settings)

    async def prune() -> int:
        database = container.database()
        await database.open()
        try:
            removed: int = await container.prune_idempotency_keys()()
        finally:
            await database.close()
        return removed

    try:
        removed = asyncio.run(prune())
    except StorageUnavailable as error:
        print(f"cme: cannot reach the database: {error}", file=sys.stderr)
        return 1
    print(f"cme: removed {removed} expired idempotency records")
    return 0


def _openapi(settings: Settings, args: argparse.Namespace) -> int:
    from cme_entrypoints.http.docs import openapi_document

    print(json.dumps(openapi_document(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
