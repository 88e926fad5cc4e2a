"""The composition root: the only place, with assembly.py, that knows every concrete class."""

from datetime import timedelta
from functools import partial
from importlib.metadata import version

from dependency_injector import containers, providers

from cme_adapters.postgres.database import PostgresDatabase
from cme_adapters.postgres.probe import connection_error
from cme_adapters.sql.config import PoolSettings
from cme_adapters.sql.revisions import code_revisions
from cme_adapters.system import SystemClock, Uuid7Generator
from cme_adapters.telemetry import tracing
from cme_adapters.telemetry.database_spans import database_spans
from cme_adapters.telemetry.metrics import PrometheusMetrics
from cme_adapters.webhooks.addresses import AddressPolicy, UrlTargets
from cme_adapters.webhooks.sender import HttpWebhookSender
from cme_domain import (
    batch_use_cases,
    feed,
    reservation_use_cases,
    stock_use_cases,
    use_cases,
    webhook_delivery,
    webhook_use_cases,
)
from cme_entrypoints.assembly import (
    build_authenticator,
    build_limiter,
    connect_sqlite,
    reservation_sweep,
    webhook_sweep,
    worker_name,
)
from cme_entrypoints.http.cursor import CursorCodec
from cme_entrypoints.http.feed import FeedRoutes, event_body
from cme_entrypoints.http.long_poll import WaitSlots
from cme_entrypoints.http.operations import OperationsRoutes
from cme_entrypoints.http.products import ProductRoutes
from cme_entrypoints.http.reservations import ReservationRoutes
from cme_entrypoints.http.schema_check import SchemaCheck
from cme_entrypoints.http.stock import StockRoutes
from cme_entrypoints.http.webhooks import WebhookRoutes
from cme_entrypoints.settings import Settings


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    metrics = providers.Singleton(PrometheusMetrics)
    traces = providers.Singleton(
        tracing.traces, settings.provided.traces, settings.provided.traces_endpoint
    )
    _pool = providers.Factory(PoolSettings, size=settings.provided.pool_size)
    # PostgreSQL runs on psycopg's own pool; the embedded SQLite stays on SQLAlchemy's engine.
    database = providers.Selector(
        settings.provided.database_kind,
        postgresql=providers.Singleton(
            PostgresDatabase,
            url=settings.provided.database_url,
            pool=_pool,
            on_query=metrics.provided.query_finished,
            spans=providers.Callable(database_spans, traces, "postgresql"),
            on_connect_failure=metrics.provided.connection_failed,
        ),
        sqlite=providers.Singleton(
            connect_sqlite,
            url=settings.provided.database_url,
            pool=_pool,
            on_query=metrics.provided.query_finished,
        ),
    )
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(Uuid7Generator)
    unit_of_work = database.provided.unit_of_work
    authenticator = providers.Singleton(build_authenticator, settings)
    rate_limiter = providers.Singleton(build_limiter, settings)
    # The code's revisions are read once per process, when the app is built.
    schema_check = providers.Singleton(
        SchemaCheck,
        read_revision=database.provided.schema_revision,
        code=providers.Singleton(code_revisions),
        diagnose=providers.Selector(
            settings.provided.database_kind,
            postgresql=providers.Callable(
                partial, connection_error, settings.provided.database_url
            ),
            sqlite=providers.Object(None),
        ),
    )

    _idempotency_ttl = providers.Callable(timedelta, hours=settings.provided.idempotency_ttl_hours)
    cursors = providers.Singleton(
        CursorCodec, settings.provided.cursor_key, database.provided.cursor_secret
    )
    product_routes = providers.Singleton(
        ProductRoutes,
        authenticate=authenticator,
        cursors=cursors,
        get_product=providers.Singleton(use_cases.GetProduct, unit_of_work),
        list_products=providers.Singleton(use_cases.ListProducts, unit_of_work),
        create_product=providers.Singleton(
            use_cases.CreateProduct,
            unit_of_work,
            clock,
            ids,
            _idempotency_ttl,
        ),
        replace_product=providers.Singleton(use_cases.ReplaceProduct, unit_of_work, clock, ids),
        patch_product=providers.Singleton(use_cases.PatchProduct, unit_of_work, clock, ids),
        delete_product=providers.Singleton(use_cases.DeleteProduct, unit_of_work, clock),
        changed=metrics.provided.change_written,
    )
    change_feed = providers.Singleton(database.provided.change_feed.call())
    change_notices = database.provided.change_notices.call()
    feed_routes = providers.Singleton(
        FeedRoutes,
        read_changes=providers.Singleton(feed.ReadChanges, change_feed, change_notices),
        latest_cursor=providers.Singleton(feed.LatestCursor, change_feed),
        wait_slots=providers.Singleton(
            WaitSlots,
            per_worker=settings.provided.feed_waits_per_worker,
            per_caller=settings.provided.feed_waits_per_caller,
        ),
        answered=metrics.provided.feed_answered,
    )
    prune_changes = providers.Singleton(
        feed.PruneChanges,
        change_feed,
        clock,
        providers.Callable(timedelta, days=settings.provided.changes_retention_days),
    )
    stock_routes = providers.Singleton(
        StockRoutes,
        authenticate=authenticator,
        cursors=cursors,
        adjust_stock=providers.Singleton(
            stock_use_cases.AdjustStock, unit_of_work, clock, ids, _idempotency_ttl
        ),
        list_stock_entries=providers.Singleton(stock_use_cases.ListStockEntries, unit_of_work),
        get_stock_entry=providers.Singleton(stock_use_cases.GetStockEntry, unit_of_work),
        write_batch=providers.Singleton(
            batch_use_cases.WriteBatch, unit_of_work, clock, ids, _idempotency_ttl
        ),
        stock_adjusted=metrics.provided.stock_adjusted,
        batch_written=metrics.provided.batch_written,
        changed=metrics.provided.change_written,
    )
    reservation_routes = providers.Singleton(
        ReservationRoutes,
        authenticate=authenticator,
        now=clock.provided.now,
        reserve=providers.Singleton(
            reservation_use_cases.Reserve, unit_of_work, clock, ids, _idempotency_ttl
        ),
        get_reservation=providers.Singleton(reservation_use_cases.GetReservation, unit_of_work),
        confirm_reservation=providers.Singleton(
            reservation_use_cases.ConfirmReservation, unit_of_work, clock, ids
        ),
        release_reservation=providers.Singleton(
            reservation_use_cases.ReleaseReservation, unit_of_work, clock
        ),
        extend_reservation=providers.Singleton(
            reservation_use_cases.ExtendReservation, unit_of_work, clock
        ),
        counted=metrics.provided.reservation_ended,
        changed=metrics.provided.change_written,
    )
    sweep_reservations = providers.Singleton(
        reservation_sweep,
        providers.Singleton(reservation_use_cases.SweepReservations, unit_of_work, clock),
        metrics,
    )
    _webhook_policy = providers.Singleton(
        AddressPolicy, allow_private=settings.provided.webhook_allow_private_addresses
    )
    webhook_sender = providers.Singleton(HttpWebhookSender, _webhook_policy)
    _webhook_targets = providers.Singleton(UrlTargets, _webhook_policy)
    webhook_routes = providers.Singleton(
        WebhookRoutes,
        create_webhook=providers.Singleton(
            webhook_use_cases.CreateWebhook,
            unit_of_work,
            clock,
            ids,
            _webhook_targets,
            change_feed,
        ),
        list_webhooks=providers.Singleton(webhook_use_cases.ListWebhooks, unit_of_work),
        get_webhook=providers.Singleton(webhook_use_cases.GetWebhook, unit_of_work),
        change_webhook=providers.Singleton(
            webhook_use_cases.ChangeWebhook, unit_of_work, clock, _webhook_targets
        ),
        rotate_secret=providers.Singleton(webhook_use_cases.RotateSecret, unit_of_work, clock),
        delete_webhook=providers.Singleton(webhook_use_cases.DeleteWebhook, unit_of_work),
        list_deliveries=providers.Singleton(webhook_use_cases.ListDeliveries, unit_of_work),
    )
    due_webhooks = providers.Singleton(
        webhook_delivery.DueWebhooks, unit_of_work, change_feed, clock
    )
    deliver_webhook = providers.Singleton(
        webhook_delivery.DeliverWebhook,
        uow=unit_of_work,
        feed=change_feed,
        sender=webhook_sender,
        clock=clock,
        render=providers.Object(event_body),
        owner=providers.Callable(worker_name),
        attempted=metrics.provided.webhooks.provided.attempted,
    )
    sweep_webhooks = providers.Singleton(
        webhook_sweep,
        providers.Singleton(webhook_delivery.SweepWebhooks, unit_of_work, change_feed, clock),
        metrics,
    )
    prune_idempotency_keys = providers.Singleton(
        use_cases.PruneIdempotencyKeys, unit_of_work, clock
    )
    operations_routes = providers.Singleton(
        OperationsRoutes,
        version=providers.Callable(version, "cme"),
        ping_database=database.provided.ping,
        render_metrics=metrics.provided.render,
        check_schema=schema_check.provided.verify,
        manual=settings.provided.docs_url,
    )
