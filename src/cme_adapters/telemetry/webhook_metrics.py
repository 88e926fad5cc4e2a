"""The webhook deliveries' metrics: attempts by outcome, and how far behind each endpoint is."""

from collections import Counter
from collections.abc import Mapping
from typing import Final

from opentelemetry.metrics import Meter, Observation

from cme_domain.webhook_delivery import WebhookSweep
from cme_domain.webhook_ports import Delivery

DELIVERIES: Final = "webhook_deliveries"  # exported as webhook_deliveries_total
OUTCOMES: Final = ("delivered", "failed", "refused")
LAG: Final = "webhook_delivery_lag_seconds"
ENDPOINTS: Final = "webhook_endpoints"


class WebhookMetrics:
    def __init__(self, meter: Meter) -> None:
        # Counted here and observed at scrape time, as the requests are.
        self._attempts: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        meter.create_observable_counter(
            DELIVERIES,
            callbacks=[
                lambda _o: [Observation(n, {"outcome": o}) for o, n in self._attempts.items()]
            ],
            description="Webhook delivery attempts by outcome: delivered (2xx), failed, refused",
        )
        self._lag: Mapping[str, float] = {}
        meter.create_observable_gauge(
            LAG,
            callbacks=[lambda _o: [Observation(s, {"webhook": w}) for w, s in self._lag.items()]],
            unit="s",
            description="Age of the oldest event each active endpoint has not acknowledged yet",
        )
        # Read off the database by the sweep, as the lag is: the same on every worker.
        self._endpoints: Mapping[str, int] = {}
        meter.create_observable_gauge(
            ENDPOINTS,
            callbacks=[
                lambda _o: [Observation(n, {"status": s}) for s, n in self._endpoints.items()]
            ],
            description="Webhook endpoints by status: active, disabled (after 24 h of failures)",
        )

    def attempted(self, delivery: Delivery) -> None:
        self._attempts[delivery.outcome] += 1

    def swept(self, sweep: WebhookSweep) -> None:
        """Every active endpoint's lag now (those not named are no longer reported), and how
        many endpoints each status has."""
        self._lag = {str(webhook_id): seconds for webhook_id, seconds in sweep.lag.items()}
        self._endpoints = {status.value: count for status, count in sweep.endpoints.items()}
