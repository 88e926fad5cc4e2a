"""The OpenAPI document and its human-readable rendering, served from local files only."""

import json
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import Any

import swagger_ui
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

_HERE = files("cme_entrypoints.http")
_SWAGGER_ASSETS = Path(swagger_ui.__file__).with_name("static")

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>cme API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/static/docs.js"></script>
</body>
</html>
"""


def openapi_document(manual: str = "") -> dict[str, Any]:
    """The contract kept in the repo, stamped with the installed version and, where the operator
    has published the manual (DOCS_URL), a link to it, which Swagger UI shows at the top."""
    document: dict[str, Any] = json.loads(_HERE.joinpath("openapi.json").read_text())
    document["info"]["version"] = version("cme")
    if manual:
        document["externalDocs"] = {"description": MANUAL, "url": manual}
    return document


MANUAL = "The manual: using the API, configuration, operations, deployment and design."


def docs_routes(manual: str = "") -> list[BaseRoute]:
    body = json.dumps(openapi_document(manual)).encode()

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(_PAGE)

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Mount("/docs/assets", StaticFiles(directory=_SWAGGER_ASSETS), name="docs-assets"),
        Mount(
            "/docs/static", StaticFiles(directory=str(_HERE.joinpath("static"))), name="docs-static"
        ),
    ]
