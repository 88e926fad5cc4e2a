"""The ASGI app for uvicorn, built from the environment in each worker process."""

from starlette.applications import Starlette

from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.settings import Settings


def create() -> Starlette:
    return create_app(Container(settings=Settings.from_env()))
