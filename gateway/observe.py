"""Each HTTP request the gateway answers: its request id, its count and time, its log line.

:class:`Observe` wraps the whole application (every middleware and the console
included), as plain ASGI: the request id is the caller's ``X-Request-Id`` when it is
sane (doudi.common.request_ids), else a new one; it is bound for every log line of the
request and every gRPC call the request makes (doudi.common.tracing.ObservedChannel sends it
as ``x-request-id``), and answered in the response's ``X-Request-Id``, an error's
included. The request is counted by its route's template (``/v1/settlements/{settlement_id}``,
never the path itself: ``other`` where no route matched) and status
(doudi.common.metrics); with ``DOUDI_ACCESS_LOG`` it is logged, one line each.

The request's span is FastAPI's own telemetry (gateway.app), around this.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from doudi.common import metrics, request_ids

log = logging.getLogger("doudi.gateway.access")

_HEADER: Final = request_ids.HEADER.encode()
# Methods counted by name; any other (a client's invention) as _OTHER, as OpenTelemetry does.
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The template of the route that answered (a mounted application's with its prefix);
    ``other`` when none did (a 404, a static file): a bounded label, never the path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) if route is not None else None
    if template is None:
        return "other"
    root: str = scope.get("root_path", "")
    return f"{root}{template}"


class Observe:
    """The ASGI middleware of the module (see above)."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self._access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                given = value.decode("latin-1")
                break
        request_id = request_ids.taken(given)
        request_ids.bind(request_id)
        header = (_HEADER, request_id.encode())
        status = 500  # unless the application answers: an exception ServerErrorMiddleware answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_template(scope)
        method: str = scope["method"] if scope["method"] in _METHODS else "_OTHER"
        metrics.HTTP_SERVER.observe((route, method), str(status), seconds)
        if self._access_log:
            log.info(
                "%s %s %d %.1fms",
                method,
                route,
                status,
                seconds * 1e3,
                extra={"method": method, "route": route, "status": status},
            )
