"""``python -m gateway``: serve the gateway with uvicorn (uvloop, httptools) until stopped.

The process binds its socket itself, so ``DOUDI_PORT=0`` takes any free port,
and writes the port it bound to ``DOUDI_PORT_FILE`` once it serves, as the
services do. Logs, metrics and traces are set up by
:func:`doudi.common.observability.start` (identity numbers masked in the logs). SIGTERM or SIGINT stops it gracefully: no new
connections, in-flight requests get ``DOUDI_SHUTDOWN_GRACE_SECONDS`` to finish,
then the channels close and the process exits 0.
"""

from __future__ import annotations

import logging
import math
import signal
import socket
from collections.abc import Callable

import uvicorn

from doudi.common import observability
from doudi.common.collector import tune_garbage_collector
from doudi.common.settings import read_settings
from gateway.app import create_app
from gateway.settings import Settings

log = logging.getLogger("doudi.gateway")


class _Server(uvicorn.Server):
    """uvicorn's server, telling ``on_started`` once it listens and the lifespan has run."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


def bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    # Reuse a port in TIME_WAIT after a restart, but never share a live one (no SO_REUSEPORT).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def main() -> None:
    settings = read_settings(Settings, "python -m gateway")
    observability.start(settings, "gateway")
    sock = bind(settings.host, settings.listen_port)
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,  # keep doudi.common.logs's masking handler
        # The access log is the gateway's own (gateway.observe, DOUDI_ACCESS_LOG): with the
        # request id and the route's template.
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        server_header=False,
    )

    tune_garbage_collector()

    def started() -> None:
        if settings.port_file is not None:
            settings.port_file.write_text(str(port))
        log.info("gateway listening on %s:%d", settings.host, port)

    # uvicorn catches SIGTERM and SIGINT, shuts down gracefully, then raises the signal
    # again; these handlers take that second delivery so that a requested stop exits 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    _Server(config, started).run(sockets=[sock])
    log.info("gateway stopped")
