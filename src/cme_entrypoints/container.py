"""The composition root: the only place that knows every concrete class."""

from importlib.metadata import version

from dependency_injector import containers, providers

from cme_adapters.auth.api_keys import ApiKeyAuthenticator
from cme_adapters.metrics import PrometheusMetrics
from cme_adapters.sql.database import SqlDatabase
from cme_adapters.sql.engine import PoolSettings
from cme_adapters.system import SystemClock, Uuid7Generator
from cme_domain import use_cases
from cme_entrypoints.http.auth import RequestAuthenticator
from cme_entrypoints.http.cursor import CursorCodec
from cme_entrypoints.http.operations import OperationsRoutes
from cme_entrypoints.http.products import ProductRoutes
from cme_entrypoints.settings import Settings


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    database = providers.Singleton(
        SqlDatabase.connect,
        url=settings.provided.database_url,
        pool=providers.Factory(PoolSettings, size=settings.provided.pool_size),
    )
    metrics = providers.Singleton(PrometheusMetrics, pool_stats=database.provided.pool_stats)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(Uuid7Generator)
    unit_of_work = database.provided.unit_of_work

    product_routes = providers.Singleton(
        ProductRoutes,
        authenticate=providers.Singleton(
            RequestAuthenticator,
            providers.Singleton(ApiKeyAuthenticator, settings.provided.api_keys),
        ),
        cursors=providers.Singleton(CursorCodec, settings.provided.cursor_key),
        get_product=providers.Singleton(use_cases.GetProduct, unit_of_work),
        list_products=providers.Singleton(use_cases.ListProducts, unit_of_work),
        create_product=providers.Singleton(use_cases.CreateProduct, unit_of_work, clock, ids),
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
