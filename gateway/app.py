"""The gateway application: ``create_app(settings)``; ``python -m gateway`` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi

from doudi import __version__
from gateway import problems
from gateway.deps import BEARER_SCHEME, BEARER_SCHEME_NAME
from gateway.problems import PROBLEM_JSON
from gateway.routes import bill_router, health_router, router
from gateway.schemas import ProblemRead, SettlementCreate
from gateway.settings import Settings
from gateway.upstream import Upstream

DESCRIPTION = """\
One-window settlement (一站式结算) for hospital systems: send a discharged
patient's bill once, get every insurance and assistance layer's payment and
the patient's remainder. Authenticate with the hospital's API key
(`Authorization: Bearer <key>`). Money is integer fen; the `summary` carries
the national settlement message's amounts in yuan as two-decimal strings.
Errors are `application/problem+json` (RFC 9457).
"""


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # grpc.aio channels belong to the event loop that made them: make them here.
        upstream = Upstream(settings)
        app.state.upstream = upstream
        try:
            yield
        finally:
            await upstream.close()

    app = FastAPI(
        title="Doudi gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # The platform configures no OpenTelemetry; left on, FastAPI asks the global
        # providers whether one appeared on every request (about 2% of a settlement).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
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

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus what it cannot see: the request body the views read
    themselves, the API key every ``/v1`` operation needs, and errors as problem+json."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER_SCHEME_NAME] = BEARER_SCHEME
    schemas = components.setdefault("schemas", {})
    body = SettlementCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas[SettlementCreate.__name__] = body
    problem_ref = f"#/components/schemas/{ProblemRead.__name__}"
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if path.startswith("/v1/"):
                operation["security"] = [{BEARER_SCHEME_NAME: []}]
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                json_content = content.get("application/json", {})
                if json_content.get("schema", {}).get("$ref") == problem_ref:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return document
