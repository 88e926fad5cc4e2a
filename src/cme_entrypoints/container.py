"""The composition root: the only place that knows every concrete class."""

from datetime import timedelta
from importlib.metadata import version

from dependency_injector import containers, providers

from cme_adapters.auth.api_keys import ApiKeyAuthenticator
from cme_adapters.auth.jwt import JwtAuthenticator
from cme_adapters.metrics import PrometheusMetrics
from cme_adapters.sql.database import SqlDatabase
from cme_adapters.sql.engine import PoolSettings
from cme_adapters.system import SystemClock, Uuid7Generator
from cme_adapters.tracing import tracer_provider
from cme_domain import use_cases
from cme_entrypoints.http.auth import RequestAuthenticator
from cme_entrypoints.http.cursor import CursorCodec
from cme_entrypoints.http.operations import OperationsRoutes
from cme_entrypoints.http.products import ProductRoutes
from cme_entrypoints.settings import Settings


def build_authenticator(settings: Settings) -> RequestAuthenticator:
    """API keys, JWT, or both, as configured; with neither, every protected request is a 401."""
    return RequestAuthenticator(
        api_keys=ApiKeyAuthenticator(settings.api_keys),
        tokens=JwtAuthenticator(settings.jwt) if settings.jwt is not None else None,
        require_read_scope=settings.require_read_scope,
    )


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    metrics = providers.Singleton(PrometheusMetrics)
    tracer_provider = providers.Singleton(
        tracer_provider, settings.provided.traces, settings.provided.traces_endpoint
    )
    database = providers.Singleton(
        SqlDatabase.connect,
        url=settings.provided.database_url,
        pool=providers.Factory(PoolSettings, size=settings.provided.pool_size),
        on_query=metrics.provided.query_finished,
    )
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(Uuid7Generator)
    unit_of_work = database.provided.unit_of_work
    authenticator = providers.Singleton(build_authenticator, settings)

    product_routes = providers.Singleton(
        ProductRoutes,
        authenticate=authenticator,
        cursors=providers.Singleton(CursorCodec, settings.provided.cursor_key),
        get_product=providers.Singleton(use_cases.GetProduct, unit_of_work),
        list_products=providers.Singleton(use_cases.ListProducts, unit_of_work),
        create_product=providers.Singleton(
            use_cases.CreateProduct,
            unit_of_work,
            clock,
            ids,
            providers.Callable(timedelta, hours=settings.provided.idempotency_ttl_hours),
        ),
        replace_product=providers.Singleton(use_cases.ReplaceProduct, unit_of_work, clock),
        patch_product=providers.Singleton(use_cases.PatchProduct, unit_of_work, clock),
        delete_product=providers.Singleton(use_cases.DeleteProduct, unit_of_work),
    )
    operations_routes = providers.Singleton(
        OperationsRoutes,
        version=providers.Callable(version, "cme"),
        ping_database=database.provided.ping,
        render_metrics=metrics.provided.render,
    )
