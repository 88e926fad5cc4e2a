"""HTTP and database metrics through the OpenTelemetry SDK, exported in Prometheus text format."""

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Final

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from cme_adapters.telemetry.webhook_metrics import WebhookMetrics

# The seed's names and every one of its buckets (0.05 to 3.2), so its queries keep working;
# finer ones below 50 ms for a service answering in milliseconds, and 0.3 for the latency SLO.
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.8,
    1.6,
    3.2,
)
# The 5xx statuses this service answers with, present at 0 for every route from start-up:
# rate() needs a series to exist before its first increase to see that increase.
SERVER_ERRORS: Final = (500, 503)
REQUESTS: Final = "http_requests"  # exported as http_requests_total
LATENCY: Final = "request_latency_seconds"
QUERY_LATENCY: Final = "db_query_duration_seconds"
QUERY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CHANGES_WRITTEN: Final = "product_changes_written"  # exported as ..._total
FEED_REQUESTS: Final = "change_feed_requests"  # exported as ..._total
FEED_LAG: Final = "change_feed_lag_events"
# Events between an answer's next_cursor and the newest event: 0 for a consumer keeping up.
FEED_LAG_BUCKETS: Final = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
CHANGE_TYPES: Final = (
    "product.created",
    "product.updated",
    "product.deleted",
    "product.stock_adjusted",
)
FEED_RESULTS: Final = ("events", "empty", "latest", "abandoned")

STOCK_ADJUSTMENTS: Final = "stock_adjustments"  # exported as stock_adjustments_total
ADJUSTMENT_OUTCOMES: Final = ("applied", "insufficient_stock", "overflow")
BATCH_PRODUCTS: Final = "batch_products"  # exported as batch_products_total
BATCH_OUTCOMES: Final = ("created", "replaced")
RESERVATIONS: Final = "reservations"  # exported as reservations_total
RESERVATION_OUTCOMES: Final = ("held", "refused", "confirmed", "released", "expired")
UNITS_HELD: Final = "reservation_units_held"
# Failed attempts to connect to the database (pool, change listener, outage probe): an outage
# is one log line when it starts and one when it ends; this counts what happened between.
CONNECTION_FAILURES: Final = "db_connection_failures"  # exported as ..._total

PoolStats = Callable[[], dict[str, int]]


class PrometheusMetrics:
    def __init__(self) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        # The process's CPU seconds, resident memory and open files, read from /proc.
        ProcessCollector(registry=self._registry)
        self._reader = PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=self._registry
        )
        self._provider = MeterProvider(
            metric_readers=[self._reader],
            resource=Resource.create({"service.name": "cme"}),
            # The Prometheus text format carries no exemplars: sampling them is wasted work.
            exemplar_filter=AlwaysOffExemplarFilter(),
            views=[
                View(
                    instrument_name=LATENCY,
                    aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS),
                ),
                View(
                    instrument_name=QUERY_LATENCY,
                    aggregation=ExplicitBucketHistogramAggregation(QUERY_BUCKETS),
                ),
                View(
                    instrument_name=FEED_LAG,
                    aggregation=ExplicitBucketHistogramAggregation(FEED_LAG_BUCKETS),
                ),
            ],
        )
        meter = self._meter = self._provider.get_meter("cme")
        # Counted in a plain Counter and observed at scrape time, like the in-flight gauge:
        # a synchronous SDK add() per request cleans and hashes its attributes every time.
        self._requests: Counter[tuple[str, str, int]] = Counter()
        meter.create_observable_counter(
            REQUESTS, callbacks=[self._observe_requests], description="HTTP requests served"
        )
        self._latency = meter.create_histogram(
            LATENCY, description="Time from request start to response end, in seconds"
        )
        # A plain int, read at scrape time: two SDK calls per request saved.
        self._in_flight = 0
        meter.create_observable_gauge(
            "http_requests_in_flight",
            callbacks=[lambda _options: [Observation(self._in_flight)]],
            description="HTTP requests being served now",
        )
        self._query_latency = meter.create_histogram(
            QUERY_LATENCY,
            description="Time one repository call (one or two SQL statements) took, in seconds",
        )
        # Stock outcomes, counted like the requests and observed at scrape time.
        self._stock: Counter[tuple[str, str]] = Counter(
            {("adjustment", o): 0 for o in ADJUSTMENT_OUTCOMES}
            | {("batch", o): 0 for o in BATCH_OUTCOMES}
            | {("reservation", o): 0 for o in RESERVATION_OUTCOMES}
        )
        meter.create_observable_counter(
            STOCK_ADJUSTMENTS,
            callbacks=[lambda _options: self._observe_stock("adjustment")],
            description="Stock adjustments by outcome: applied, insufficient_stock, overflow",
        )
        meter.create_observable_counter(
            BATCH_PRODUCTS,
            callbacks=[lambda _options: self._observe_stock("batch")],
            description="Products of batch writes by outcome: created, replaced",
        )
        meter.create_observable_counter(
            RESERVATIONS,
            callbacks=[lambda _options: self._observe_stock("reservation")],
            description="Reservations by outcome: held, refused, confirmed, released, expired",
        )
        # Read off the database by the reservation sweeper, every sweep: the same on every worker.
        self._units_held = 0
        meter.create_observable_gauge(
            UNITS_HELD,
            callbacks=[lambda _options: [Observation(self._units_held)]],
            description="Units that live reservations hold, over all products, at the last sweep",
        )

        # Counted by the routes once the write (and so its event) has committed. Every series
        # starts at 0, so rate() sees the first increase.
        self._changes: Counter[str] = Counter(dict.fromkeys(CHANGE_TYPES, 0))
        meter.create_observable_counter(
            CHANGES_WRITTEN,
            callbacks=[lambda _o: [Observation(n, {"type": t}) for t, n in self._changes.items()]],
            description="Change events committed with the product writes this worker served",
        )
        self._feed: Counter[str] = Counter(dict.fromkeys(FEED_RESULTS, 0))
        meter.create_observable_counter(
            FEED_REQUESTS,
            callbacks=[lambda _o: [Observation(n, {"result": r}) for r, n in self._feed.items()]],
            description="Change feed answers by what they held: events, empty, latest",
        )
        self._connection_failures = 0
        meter.create_observable_counter(
            CONNECTION_FAILURES,
            callbacks=[lambda _o: [Observation(self._connection_failures)]],
            description="Failed attempts to connect to the database",
        )
        self.webhooks = WebhookMetrics(meter)
        self._feed_lag = meter.create_histogram(
            FEED_LAG,
            description="Events the feed already had past each answer's next_cursor",
        )

    def connection_failed(self) -> None:
        self._connection_failures += 1

    def change_written(self, kind: str, count: int = 1) -> None:
        self._changes[kind] += count

    def feed_answered(self, result: str, lag: int) -> None:
        self._feed[result] += 1
        if result != "abandoned":  # its client left: nobody was told where the feed stood
            self._feed_lag.record(lag)

    def declare_routes(self, routes: Iterable[tuple[str, str]]) -> None:
        """Start each (method, route template)'s 5xx series at 0."""
        for method, path in routes:
            for status in SERVER_ERRORS:
                self._requests[method, path, status] += 0

    def watch_pool(self, stats: PoolStats) -> None:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            # A count of connections is never negative, whatever a pool's internals report
            # (SQLAlchemy's overflow() is negative until the pool has filled once).
            return [Observation(max(v, 0), {"state": k}) for k, v in stats().items()]

        self._meter.create_observable_gauge(
            "db_pool_connections",
            callbacks=[observe],
            description="Database pool connections by state (in_use, idle, waiting)",
        )

    def query_finished(self, seconds: float) -> None:
        self._query_latency.record(seconds)

    def request_started(self) -> None:
        self._in_flight += 1

    def request_finished(
        self, method: str, path: str, status: int, seconds: float, long_poll: bool
    ) -> None:
        self._in_flight -= 1
        self._requests[method, path, status] += 1
        # A long poll lasts as long as it was asked to wait: its own series, out of the SLO.
        poll = "true" if long_poll else "false"
        attributes = {"method": method, "path": path, "status": str(status), "long_poll": poll}
        self._latency.record(seconds, attributes)

    def stock_adjusted(self, outcome: str) -> None:
        self._stock["adjustment", outcome] += 1

    def batch_written(self, created: int, replaced: int) -> None:
        self._stock["batch", "created"] += created
        self._stock["batch", "replaced"] += replaced

    def reservation_ended(self, outcome: str, count: int = 1) -> None:
        self._stock["reservation", outcome] += count

    def units_held(self, units: int) -> None:
        self._units_held = units

    def _observe_stock(self, kind: str) -> Iterable[Observation]:
        return [
            Observation(count, {"outcome": outcome})
            for (of, outcome), count in list(self._stock.items())
            if of == kind
        ]

    def _observe_requests(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {"method": method, "path": path, "status": str(status)})
            for (method, path, status), count in list(self._requests.items())
        ]

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self._registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        self._provider.shutdown()
