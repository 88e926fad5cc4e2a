"""Checks run before measuring: the FastAPI reference and the floor do the service's work."""

import json
import re
import secrets
from typing import Any

from procs import Server, http_get, http_request

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")
UUID_TEXT = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
# What the servers may word or mint differently; everything else must be equal, keys in order.
MASKED = ("sku", "detail")


def same_bytes(service: Server, other: Server, paths: list[str]) -> None:
    """Same status and body, byte for byte, for each GET."""
    for path in paths:
        ours, theirs = http_get(service.base + path), http_get(other.base + path)
        if ours != theirs:
            raise RuntimeError(f"service and {other.name} differ on {path}:\n{ours}\n{theirs}")


def same_writes(service: Server, other: Server, api_key: str) -> None:
    """POST, PUT with the current If-Match, PUT with the stale one (412), GET: the same statuses,
    ETags, content types and bodies from both, but for the server-minted id and times, whose
    form must still be the same (a UUID, RFC 3339 UTC with "Z")."""
    seen = {server.name: _write_trail(server, api_key) for server in (service, other)}
    if seen[service.name] != seen[other.name]:
        raise RuntimeError(
            f"writes differ:\n{service.name} {seen[service.name]}\n{other.name} {seen[other.name]}"
        )
    statuses = [step[0] for step in seen[service.name]]
    if statuses != [201, 200, 412, 200]:
        raise RuntimeError(f"POST, PUT, stale PUT, GET answered {statuses}, not 201 200 412 200")


def _write_trail(server: Server, api_key: str) -> list[list[Any]]:
    sku = f"CHECK-{server.name}-{secrets.token_hex(4)}"
    fields = {"sku": sku, "name": "Checked", "description": None, "price": 19.9}
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    status, got, body = http_request(
        "POST", server.base + "/products", json.dumps({**fields, "quantity": 4}).encode(), headers
    )
    created = json.loads(body)
    path = f"/products/{created.get('id')}"
    trail = [[status, got.get("etag"), got.get("location") == path, created]]
    for quantity in (5, 6):  # both say If-Match "v1": the second finds version 2, so 412
        status, got, body = http_request(
            "PUT",
            server.base + path,
            json.dumps({**fields, "quantity": quantity}).encode(),
            {**headers, "If-Match": '"v1"'},
        )
        trail.append([status, got.get("etag"), got.get("content-type"), json.loads(body)])
    status, got, body = http_request("GET", server.base + path)
    trail.append([status, got.get("etag"), got.get("content-type"), json.loads(body)])
    return [[*step[:3], _comparable(step[3], sku, path)] for step in trail]


def _comparable(body: dict[str, Any], sku: str, path: str) -> list[list[Any]]:
    shown: list[list[Any]] = []
    for key, value in body.items():
        if key in MASKED:
            value = "masked" if value in (sku, path) or key == "detail" else value
        elif key == "id":
            value = "a UUID" if UUID_TEXT.fullmatch(str(value)) else value
        elif key in ("created_at", "updated_at"):
            value = "RFC 3339 UTC" if RFC3339_UTC.fullmatch(str(value)) else value
        elif key == "instance":
            value = "the path" if value == path else value
        shown.append([key, value])
    return shown
