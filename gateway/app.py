"""The gateway application: ``create_app(settings)``; ``python -m gateway`` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.types import ASGIApp

from doudi import __version__
from doudi.common import tracing
from gateway import docs, problems
from gateway.console.app import create_console
from gateway.console.clients import Clients
from gateway.observe import Observe
from gateway.routes import TAGS, bill_router, health_router, router
from gateway.settings import Settings
from gateway.upstream import Upstream

DESCRIPTION = """\
One-window settlement (一站式结算) for hospital systems: send a discharged
patient's bill once, get every insurance and assistance layer's payment and
the patient's remainder.

- **Authentication.** Every `/v1` operation takes the hospital's API key as
  `Authorization: Bearer <key>` (the bureau issues it when it registers the
  hospital). With `make run`, the demo hospital's key is `demo-xixia-2`
  (Authorize, above); every operation's example succeeds against the demo
  data, dated the day the gateway started.
- **Money** is integer fen (分), never a float: `total_fen = Σ layers.paid_fen +
  self_pay_fen` exactly. Only `summary` carries the national settlement
  message's amounts, in yuan as two-decimal strings.
- **Retries.** The settlement and the reversal take an `Idempotency-Key`:
  the same request sent again with the same key answers the first answer and
  never pays twice.
- **Errors** are `application/problem+json` (RFC 9457): `type`
  (`urn:doudi:problem:<reason>`), `title`, `status`, `detail`, and `errors`
  naming each field at fault.
"""


class _Gateway(FastAPI):
    """The application, every request of which :class:`gateway.observe.Observe` sees first:
    outside every middleware, so that an error's answer too carries the request id."""

    access_log = False

    def build_middleware_stack(self) -> ASGIApp:
        return Observe(super().build_middleware_stack(), access_log=self.access_log)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # grpc.aio channels belong to the event loop that made them: make them here.
        upstream = Upstream(settings)
        app.state.upstream = upstream
        console.state.clients = Clients(upstream, settings)
        try:
            yield
        finally:
            await upstream.close()

    app = _Gateway(
        title="Doudi gateway",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        # Served by gateway.docs from the gateway itself, not from a CDN.
        docs_url=None,
        redoc_url=None,
        # Each request's span is FastAPI's own, when the process traces (doudi.common.tracing:
        # its provider, not OpenTelemetry's global one); otherwise off, as FastAPI would
        # ask the global providers whether one appeared on every request (about 2% of a
        # settlement). Metrics are Prometheus's (gateway.observe).
        telemetry={
            "tracing": tracing.provider() is not None,
            "tracer_provider": tracing.provider(),
            "operation_spans": False,
            "metrics": False,
            "logs": False,
        },
    )
    app.access_log = settings.access_log
    app.state.settings = settings
    # The routes go into the application's own router rather than being included: an
    # included router matches every request twice (about 4% of a settlement). The
    # routers add nothing that including would keep: their prefix and error responses
    # are in each route already, and they have no dependencies or tags. They go first,
    # before the documentation's routes, and settle first of all: the router tries each
    # route in turn.
    app.router.routes[:0] = [*bill_router.routes, *router.routes, *health_router.routes]

    def forget_key(request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and key:
            app.state.upstream.hospitals.forget(key.strip())

    problems.install(app, on_unauthenticated=forget_key)

    docs.install(app)
    # The case workers' console: an application of its own (pages, sessions, its own
    # errors), after every route of the hospitals' API.
    console = create_console(settings)
    app.mount("/console", console)
    return app
