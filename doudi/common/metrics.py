"""Prometheus metrics of every process, and the server that exposes them.

Every metric the platform exports is defined here, by name (deploy/grafana/settlement.json
charts them; tests/test_observability.py checks that every name it uses is exported).
A process serves them at ``http://<DOUDI_HOST>:<DOUDI_METRICS_PORT>/metrics``
(:func:`serve`; no server when the port is unset). Counting costs a few microseconds a
call: the label values are bounded (methods, status codes, route templates, funds,
outboxes), never a person, a hospital, a key or a request id, and each call's series
are found once and kept (:class:`GrpcServerMetrics`).

What is asked of the database (how many rows each outbox holds, how old its oldest is)
is read at scrape time (:class:`_Outboxes`), never on a request's path, as the pools'
use (:class:`_Pools`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

import prometheus_client
import sqlalchemy
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from doudi.common.db import sqlite_writer_engine

log = logging.getLogger("doudi.metrics")

# No ``*_created`` series beside each counter and histogram: nothing charts them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds: from a cached read (a millisecond) to a timed-out call (10 s, the gateway's
upstream timeout)."""


class Requests:
    """Requests counted by their labels and outcome, and timed by their labels (a counter
    and a histogram); each series is found once and kept."""

    def __init__(
        self,
        name: str,
        description: str,
        labels: list[str],
        outcome: str,
        *,
        seconds_name: str,
        seconds_description: str,
    ) -> None:
        self.counter = prometheus_client.Counter(name, description, [*labels, outcome])
        self.seconds = prometheus_client.Histogram(
            seconds_name, seconds_description, labels, buckets=LATENCY_BUCKETS
        )
        self._series: dict[tuple[str, ...], tuple[Any, dict[str, Any]]] = {}

    def observe(self, labels: tuple[str, ...], outcome: str, seconds: float) -> None:
        found = self._series.get(labels)
        if found is None:
            found = self._series[labels] = (self.seconds.labels(*labels), {})
        latency, by_outcome = found
        latency.observe(seconds)
        counter = by_outcome.get(outcome)
        if counter is None:
            counter = by_outcome[outcome] = self.counter.labels(*labels, outcome)
        counter.inc()


GRPC_SERVER: Final = Requests(
    "doudi_grpc_server_handled",
    "Calls a service answered, by method and status code (OK, INVALID_ARGUMENT, ...).",
    ["grpc_service", "grpc_method"],
    "grpc_code",
    seconds_name="doudi_grpc_server_handling_seconds",
    seconds_description="How long a service took to answer a call, from its arrival to the answer.",
)
"""Every call a service answers (doudi.common.grpc_server.ServiceInterceptor)."""
HTTP_SERVER: Final = Requests(
    "doudi_http_requests",
    "HTTP requests the gateway answered, by route template, method and status.",
    ["route", "method"],
    "status",
    seconds_name="doudi_http_request_duration_seconds",
    seconds_description="How long the gateway took to answer an HTTP request, by route "
    "template and method.",
)
"""Every HTTP request the gateway answers (gateway.observe)."""

# --- settlements (services/settlement/server.py, after each commit) -----------------------

SETTLEMENTS: Final = prometheus_client.Counter(
    "doudi_settlements",
    "Settlements committed (kind=settled) and reversed (kind=reversed); replays not counted.",
    ["kind"],
)
SETTLEMENT_FUND_PAYMENTS: Final = prometheus_client.Counter(
    "doudi_settlement_fund_payments",
    "Settlements (reversals) on which a fund paid, by fund code.",
    ["kind", "fund"],
)
SETTLEMENT_FUND_PAID_FEN: Final = prometheus_client.Counter(
    "doudi_settlement_fund_paid_fen",
    "What the funds paid on settlements (gave back on reversals), in fen, by fund code.",
    ["kind", "fund"],
)

# --- read at scrape time ----------------------------------------------------------------

OUTBOX_BACKLOG: Final = "doudi_outbox_backlog"
OUTBOX_OLDEST_AGE_SECONDS: Final = "doudi_outbox_oldest_age_seconds"
DB_POOL_CHECKED_OUT: Final = "doudi_db_pool_checked_out"
DB_POOL_SIZE: Final = "doudi_db_pool_size"
DB_POOL_OVERFLOW: Final = "doudi_db_pool_overflow"


def count_settlement(kind: str, payments: Iterable[tuple[str, int]]) -> None:
    """A settlement (``kind`` settled) or a reversal (reversed) committed: each fund that
    paid, with its amount (``(fund, paid_fen)``)."""
    SETTLEMENTS.labels(kind).inc()
    for fund, paid_fen in payments:
        if paid_fen:
            SETTLEMENT_FUND_PAYMENTS.labels(kind, fund).inc()
            SETTLEMENT_FUND_PAID_FEN.labels(kind, fund).inc(paid_fen)


# --- outboxes and pools, at scrape time ---------------------------------------------------

Backlog = Callable[[], tuple[int, datetime | None]]
"""Reads how many rows an outbox holds for a subscriber, and when the oldest was queued."""


class _Outboxes(Collector):
    """Each outbox's rows waiting and the age of its oldest, read when scraped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[tuple[str, str], Backlog] = {}

    def add(self, outbox: str, subscriber: str, backlog: Backlog) -> None:
        with self._lock:
            self._sources[outbox, subscriber] = backlog

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            sources = list(self._sources.items())
        if not sources:
            return
        rows = GaugeMetricFamily(
            OUTBOX_BACKLOG,
            "Rows an outbox holds for a subscriber: changes (or events) not yet delivered.",
            labels=["outbox", "subscriber"],
        )
        age = GaugeMetricFamily(
            OUTBOX_OLDEST_AGE_SECONDS,
            "How long the oldest row an outbox holds for a subscriber has waited (0 when "
            "none waits).",
            labels=["outbox", "subscriber"],
        )
        now = datetime.now(UTC)
        for (outbox, subscriber), backlog in sources:
            try:
                count, oldest = backlog()
            except sqlalchemy.exc.SQLAlchemyError as error:
                log.warning("metrics: cannot read the outbox %s: %s", outbox, error)
                continue
            rows.add_metric([outbox, subscriber], count)
            if oldest is not None and oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)  # SQLite gives back naive UTC
            waited = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
            age.add_metric([outbox, subscriber], waited)
        yield rows
        yield age


def table_backlog(
    engine: sqlalchemy.Engine, table: sqlalchemy.Table, subscriber: str | None
) -> Backlog:
    """The backlog of an outbox ``table`` (its rows for ``subscriber``, or all of them)."""
    statement = sqlalchemy.select(sqlalchemy.func.count(), sqlalchemy.func.min(table.c.queued_at))
    if subscriber is not None:
        statement = statement.where(table.c.subscriber == subscriber)

    def read() -> tuple[int, datetime | None]:
        with engine.connect() as connection:
            count, oldest = connection.execute(statement).one()
        return int(count), oldest

    return read


class _Pools(Collector):
    """Each database pool's connections: checked out, the pool's size, the overflow."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, sqlalchemy.pool.Pool] = {}

    def add(self, name: str, pool: sqlalchemy.pool.Pool) -> None:
        with self._lock:
            self._pools[name] = pool

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            pools = list(self._pools.items())
        if not pools:
            return
        families = {
            DB_POOL_CHECKED_OUT: GaugeMetricFamily(
                DB_POOL_CHECKED_OUT,
                "Database connections in use (checked out of the pool).",
                labels=["pool"],
            ),
            DB_POOL_SIZE: GaugeMetricFamily(
                DB_POOL_SIZE, "Connections the pool keeps open.", labels=["pool"]
            ),
            DB_POOL_OVERFLOW: GaugeMetricFamily(
                DB_POOL_OVERFLOW,
                "Connections open beyond the pool's size (negative: fewer open than its size).",
                labels=["pool"],
            ),
        }
        for name, pool in pools:
            if not isinstance(pool, sqlalchemy.pool.QueuePool):
                continue  # a database in memory: one connection, nothing to watch
            families[DB_POOL_CHECKED_OUT].add_metric([name], pool.checkedout())
            families[DB_POOL_SIZE].add_metric([name], pool.size())
            families[DB_POOL_OVERFLOW].add_metric([name], pool.overflow())
        yield from families.values()


OUTBOXES: Final = _Outboxes()
POOLS: Final = _Pools()
prometheus_client.REGISTRY.register(OUTBOXES)
prometheus_client.REGISTRY.register(POOLS)


def watch_outbox(outbox: str, subscriber: str, backlog: Backlog) -> None:
    """Report the outbox's backlog for ``subscriber`` at each scrape."""
    OUTBOXES.add(outbox, subscriber, backlog)


def watch_engine(engine: sqlalchemy.Engine) -> None:
    """Report the use of the engine's pools at each scrape: ``main``, and on SQLite the
    writers' own (``writer``, doudi.common.db)."""
    POOLS.add("main", engine.pool)
    writer = sqlite_writer_engine(engine)
    if writer is not None:
        POOLS.add("writer", writer.pool)


def serve(host: str, port: int | None) -> int | None:
    """Serve ``/metrics`` on ``host:port`` in a thread of its own (None: no server); answer
    the port bound (0 takes any free one)."""
    if port is None:
        return None
    server, _thread = prometheus_client.start_http_server(port, addr=host)
    bound = int(server.server_address[1])
    log.info("metrics at http://%s:%d/metrics", host, bound)
    return bound
