"""Which modules of a tree's src/ run during one POST /products/{id}/stock-adjustments.

    PYTHONPATH=<src> .venv/bin/python bench/module_walk.py <src>

The request goes through the app in process (Starlette's TestClient, so the socket and
uvicorn's protocol are not in the walk) on PostgreSQL at 127.0.0.1 (a database of its own,
dropped after), after one adjustment has warmed every path; every module whose code runs
while the second one is served is listed.
"""

import asyncio
import os
import sys
import threading
import uuid
from types import FrameType
from typing import Any

import psycopg
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from cme_adapters.sql import migrate
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.settings import Settings

ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
KEY = "walk-key-0123456789abcdef"
ADJUSTMENT = {"delta": -1, "reason": "sale"}
BACKGROUND = "cme-"


def _in_background() -> bool:
    """Whether the code runs in one of the service's own tasks (the webhook deliveries, woken
    by the adjustment's change notice), not in the request's."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        return False
    return task is not None and task.get_name().startswith(BACKGROUND)


def walk(src: str, url: str) -> set[str]:
    seen: set[str] = set()
    active = False

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        filename = frame.f_code.co_filename
        if active and event == "call" and filename.startswith(src) and not _in_background():
            seen.add(os.path.relpath(filename, src))

    container = Container(settings=Settings(database_url=url, api_keys=(f"default:{KEY}",)))
    # The app runs on TestClient's own thread, started when the client opens.
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        with TestClient(create_app(container)) as client:
            client.headers["X-API-Key"] = KEY
            body = {"sku": "W-1", "name": "Lamp", "price": "1.00", "quantity": 5}
            product = client.post("/products", json=body).json()["id"]
            client.post(f"/products/{product}/stock-adjustments", json=ADJUSTMENT)
            active = True
            answer = client.post(f"/products/{product}/stock-adjustments", json=ADJUSTMENT)
            active = False
            assert answer.status_code == 201, answer.text
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]  # None turns it off
        sys.setprofile(None)
    return seen


def main() -> None:
    src = os.path.abspath(sys.argv[1])
    name = f"cme_walk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(migrate.upgrade(url))
        seen = walk(src, url)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(f"{len(seen)} modules")
    print("\n".join(sorted(seen)))


if __name__ == "__main__":
    main()
