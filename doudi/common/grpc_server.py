"""The one way a Doudi gRPC service starts, authenticates callers, maps errors and stops.

Each service's ``__main__`` builds its servicer and calls :func:`serve`, which
adds the standard health service (its status follows a real readiness check,
not a constant SERVING) and reflection, runs every call of the service's own
methods through :class:`ServiceInterceptor` (bearer-token authentication,
error mapping, one masked log line per call), writes the bound port to
``DOUDI_PORT_FILE`` when asked, and on SIGTERM or SIGINT reports NOT_SERVING
and lets in-flight calls finish for ``DOUDI_SHUTDOWN_GRACE_SECONDS``. With
``DOUDI_HEALTH_PORT`` the health service alone is served on a second, plaintext port
too, for Kubernetes' gRPC probes, which speak neither TLS nor mutual TLS.

:func:`run_service` is every service's command line: ``python -m services.<name>``
serves (migrating first unless ``DOUDI_MIGRATE_ON_START=false``), ``... migrate``
migrates and exits, ``... migrate --wait`` waits for the release's migrations.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import hashlib
import logging
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import grpc
import sqlalchemy
import uvloop
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from doudi.common import metrics, observability, request_ids, tracing
from doudi.common.collector import tune_garbage_collector
from doudi.common.db import DATABASE_THREADS, create_engine_for, ping
from doudi.common.errors import (
    PermissionDenied,
    ServiceError,
    Unauthenticated,
    Unavailable,
    to_rpc_status,
)
from doudi.common.logs import configure_logging
from doudi.common.migrations import MigrationSettings, schema_status, upgrade, wait_for_head
from doudi.common.settings import ServiceSettings, read_settings
from doudi.core.errors import InvalidInput

log = logging.getLogger("doudi.grpc")
migration_log = logging.getLogger("doudi.migrations")

CallerKind = Literal["internal", "agency", "hospital"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the platform itself, an agency (by its code) or a hospital (by its id)."""

    kind: CallerKind
    id: str


Authenticator = Callable[[str], Awaitable[Caller | None]]
"""Resolves a bearer token to a caller, or None when the token is unknown."""

_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> Caller:
    """The authenticated caller of the call being served."""
    caller = _caller.get()
    if caller is None:  # the interceptor refuses anonymous calls before servicers run
        raise Unauthenticated("no caller")
    return caller


def require(*kinds: CallerKind) -> Caller:
    """The current caller, if it is of one of ``kinds``; PERMISSION_DENIED otherwise."""
    caller = current_caller()
    if caller.kind not in kinds:
        raise PermissionDenied(f"{caller.kind} callers may not call this method")
    return caller


def internal_authenticator(settings: ServiceSettings) -> Authenticator:
    """Accepts the platform's internal token as the caller ``internal/platform``: compared
    by digest with DOUDI_INTERNAL_TOKEN's and, during a rotation, with those of
    DOUDI_ACCEPTED_INTERNAL_TOKEN_DIGESTS."""
    accepted = settings.internal_token_digests

    async def authenticate(token: str) -> Caller | None:
        presented = hashlib.sha256(token.encode()).digest()
        # Every digest compared, in constant time: the time says nothing of which matched.
        if sum(secrets.compare_digest(presented, digest) for digest in accepted):
            return Caller("internal", "platform")
        return None

    return authenticate


def chain(*authenticators: Authenticator) -> Authenticator:
    """The first authenticator that knows the token decides."""

    async def authenticate(token: str) -> Caller | None:
        for authenticator in authenticators:
            caller = await authenticator(token)
            if caller is not None:
                return caller
        return None

    return authenticate


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates, maps errors and logs every call to a method under ``package``:
    unary, client-streaming (the request is an async iterator) and server-streaming
    (the handler is an async generator) alike. Each call is also observed: its request
    id (the caller's ``x-request-id``, or a new one) bound for its log lines and the calls
    it makes, its span (a child of the caller's, when the process traces), its status
    code and time counted (doudi.common.metrics).

    Health checks and reflection stay anonymous so that probes need no token.
    """

    def __init__(self, package: str, authenticate: Authenticator) -> None:
        self._prefix = f"/{package}."
        self._authenticate = authenticate

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(self._prefix):
            return handler
        # Requests arrive as bytes and are parsed inside the guard: bytes that are not the
        # method's message are INVALID_ARGUMENT, not gRPC's UNKNOWN.
        read = _reader(handler.request_deserializer)
        serializers = {"response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def call(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                async with self._guard(method, context):
                    return await unary(read(request), context)  # type: ignore[arg-type]

            return grpc.unary_unary_rpc_method_handler(call, **serializers)
        if handler.stream_unary is not None:
            gather = handler.stream_unary

            async def take(
                requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
            ) -> Any:
                async with self._guard(method, context):
                    parsed = (read(request) async for request in requests)
                    return await gather(parsed, context)  # type: ignore[arg-type]

            return grpc.stream_unary_rpc_method_handler(take, **serializers)
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def answer(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                async with self._guard(method, context):
                    async for message in stream(read(request), context):  # type: ignore[attr-defined,arg-type]
                        yield message

            return grpc.unary_stream_rpc_method_handler(answer, **serializers)
        raise RuntimeError(f"{method}: bidirectional streaming is not supported")

    @contextlib.asynccontextmanager
    async def _guard(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        """Authenticate the caller, then run the call, mapping its errors to statuses."""
        started = time.perf_counter()
        service, _, short = method.lstrip("/").partition("/")
        outcome = "OK"
        caller: Caller | None = None
        metadata = context.invocation_metadata() or ()
        carrier = {key: value for key, value in metadata if isinstance(value, str)}
        request_ids.bind(request_ids.taken(carrier.get(request_ids.HEADER)))
        span = tracing.start_server_span(method, carrier)
        try:
            token = bearer_token(metadata)
            caller = await self._authenticate(token) if token else None
            if caller is None:
                raise Unauthenticated(
                    "a valid `authorization: Bearer <token>` is required"
                    if token is None
                    else "unknown token"
                )
            _caller.set(caller)
            yield
        except (ServiceError, InvalidInput) as error:
            status = to_rpc_status(error)
            outcome = status.code.name
            if isinstance(error, InvalidInput):
                outcome += f" {error}"
            await context.abort_with_status(status)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            outcome = "CANCELLED"
            raise
        except Exception as error:
            if database_unavailable(error):
                # The database went away (restart, failover) or cannot be reached yet: the
                # pool has discarded what broke, and a retry will open fresh connections.
                outcome = "UNAVAILABLE"
                log.warning("%s: lost the database connection", short)
                await context.abort_with_status(
                    to_rpc_status(Unavailable("the database connection was lost; retry"))
                )
            if unstorable_text(error):
                outcome = "INVALID_ARGUMENT unstorable text"
                await context.abort_with_status(
                    to_rpc_status(
                        InvalidInput(
                            "", "a text is longer than its field allows or has a NUL character"
                        )
                    )
                )
            outcome = "INTERNAL"
            log.exception("%s failed", short)
            # With its ErrorInfo, as every status a service answers: a caller tells the
            # service's own failure from a call that broke on the way.
            await context.abort_with_status(
                to_rpc_status(ServiceError("internal error; see the service log"))
            )
        finally:
            elapsed = time.perf_counter() - started
            code = outcome.partition(" ")[0]
            metrics.GRPC_SERVER.observe((service, short), code, elapsed)
            tracing.end_server_span(span, code)
            # Refusals and failures at INFO; each successful call only at DEBUG, as
            # a line per call costs more than a cheap call itself.
            level = logging.DEBUG if outcome == "OK" else logging.INFO
            if log.isEnabledFor(level):
                who = f"{caller.kind}/{caller.id}" if caller else "anonymous"
                log.log(level, "%s %s %s %.1fms", short, who, outcome, elapsed * 1e3)


def database_unavailable(error: Exception) -> bool:
    """Whether ``error`` says the database is out of reach rather than the request wrong: a
    connection lost mid-call (invalidated), or one that could not be opened (the server
    restarting or shutting down: an OperationalError), or SQLite's lock not had in time."""
    if isinstance(error, sqlalchemy.exc.OperationalError):
        return True
    return isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated


# SQLSTATEs of text the database cannot take: too long for its column (22001), not in
# the database's encoding (22021, 22P05).
_UNSTORABLE_TEXT = frozenset({"22001", "22021", "22P05"})


def unstorable_text(error: Exception) -> bool:
    """Whether the database refused a text the request carried (PostgreSQL: one longer than
    its column, or with a NUL character, which psycopg refuses before sending): bad input
    that a handler did not check, not a server error."""
    if not isinstance(error, sqlalchemy.exc.DataError):
        return False
    cause = error.orig
    state = getattr(cause, "sqlstate", None)
    return state in _UNSTORABLE_TEXT or (state is None and "NUL (0x00)" in str(cause))


def _reader(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """``parse`` (a method's request deserializer), raising InvalidInput for bytes that are
    not a valid message of its type."""

    def read(raw: bytes) -> Any:
        if parse is None:
            return raw
        try:
            return parse(raw)
        except DecodeError as error:
            raise InvalidInput("", f"the request is not a valid message: {error}") from None

    return read


READINESS_INTERVAL_SECONDS = 2.0
LIVENESS_SERVICE = "doudi.liveness"
"""A name the health service answers SERVING for as long as the process serves, whatever
its database: what a liveness probe asks (``grpc.service``), while readiness asks the
overall status, which follows the database."""


async def serve(
    *,
    settings: ServiceSettings,
    service_name: str,
    register: Callable[[grpc.aio.Server], None],
    authenticate: Authenticator,
    ready: Callable[[], Awaitable[bool]],
    default_port: int,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully.

    ``service_name`` is the full proto name (``doudi.settlement.v1.SettlementService``);
    ``ready`` is polled to set the health status (a database that stops answering
    turns the service NOT_SERVING until it answers again).
    """
    package = service_name.rsplit(".", 1)[0]
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(package, authenticate)],
        # Two servers must never share a port by accident (tests, a second `doudi run`).
        options=[("grpc.so_reuseport", 0)],
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [service_name, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    address = f"{settings.host}:{default_port if settings.port is None else settings.port}"
    credentials = settings.server_credentials()
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    await server.start()
    await health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_server = await _health_only_server(settings, health_servicer)
    if settings.port_file is not None:
        settings.port_file.write_text(str(port))
    log.info(
        "%s listening on %s:%d (%s)",
        service_name,
        settings.host,
        port,
        "plaintext"
        if credentials is None
        else f"TLS, client certificates: {settings.tls_client_auth}",
    )

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    async def set_status(status: int) -> None:
        for name in ("", service_name):
            await health_servicer.set(name, status)

    async def watch_readiness() -> None:
        serving: bool | None = None
        while True:
            try:
                now = await ready()
            except Exception:
                log.exception("readiness check failed")
                now = False
            if now != serving:
                serving = now
                await set_status(
                    health_pb2.HealthCheckResponse.SERVING
                    if now
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                log.info("health: %s", "SERVING" if now else "NOT_SERVING")
            await asyncio.sleep(READINESS_INTERVAL_SECONDS)

    watcher = asyncio.create_task(watch_readiness())
    try:
        await stopping.wait()
    finally:
        log.info("stopping: finishing in-flight calls for %.0fs", settings.shutdown_grace_seconds)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await health_servicer.enter_graceful_shutdown()
        await server.stop(settings.shutdown_grace_seconds)
        if health_server is not None:
            await health_server.stop(None)
        log.info("stopped")


async def _health_only_server(
    settings: ServiceSettings, health_servicer: health.aio.HealthServicer
) -> grpc.aio.Server | None:
    """The health service alone, in plaintext on ``DOUDI_HEALTH_PORT`` (None: unset): the
    same statuses as on the service's own port, and nothing else, no reflection either."""
    if settings.health_port is None:
        return None
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(f"{settings.host}:{settings.health_port}")
    await server.start()
    log.info("health checks alone, in plaintext, on %s:%d", settings.host, port)
    return server


Registrar = Callable[[grpc.aio.Server], None]
Setup = Callable[
    [sqlalchemy.Engine, contextlib.AsyncExitStack], Awaitable[tuple[Registrar, Authenticator]]
]
"""Builds a service's servicer on its engine, inside the running event loop; what it opens
(channels to peers) it registers on the exit stack to be closed after the server stops."""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    """Short name: the SQLite file is ``<data_dir>/<name>.db``."""
    service_name: str
    """Full proto name, for health and reflection."""
    default_port: int
    migrations: Path


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
WAIT_TIMEOUT_SECONDS = 300.0
"""How long ``migrate --wait`` waits unless told (``--timeout``)."""


def command_line(spec: ServiceSpec, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``python -m services.<name> [migrate [--wait [--timeout S]]]``; bad arguments exit 2
    with argparse's message."""
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{spec.name}",
        description=f"The {spec.name} service: serve (migrating its database first unless "
        "DOUDI_MIGRATE_ON_START=false), or migrate its database.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    migrate = commands.add_parser(
        "migrate",
        help="bring the database to this release's head and exit",
        description="Bring the database (DOUDI_DATABASE_URL) to this release's newest "
        "revision and exit; with --wait, migrate nothing and wait until it is there.",
    )
    migrate.add_argument(
        "--wait",
        action="store_true",
        help="migrate nothing: wait until the database is at this release's head (or past "
        "it) and exit 0, or exit 1 after --timeout seconds",
    )
    migrate.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help=f"with --wait, how long to wait, in seconds (default {WAIT_TIMEOUT_SECONDS:.0f})",
    )
    arguments = parser.parse_args(argv)
    if arguments.command == "migrate" and not arguments.wait and arguments.timeout is not None:
        migrate.error("--timeout goes with --wait")
    return arguments


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"a finite number of seconds, 0 or more: {text!r}")
    return seconds


def migrate(spec: ServiceSpec, arguments: argparse.Namespace) -> int:
    """``migrate``: migrate and answer 0; ``migrate --wait``: 0 once the database is at
    this release's head, 1 when the time is up."""
    settings = read_settings(MigrationSettings, f"python -m services.{spec.name}")
    configure_logging(settings.log_level, settings.log_format_in(settings.environment))
    url = settings.database_url_for(spec.name)
    if not arguments.wait:
        upgrade(url, spec.migrations)
        migration_log.info(
            "%s: the database is %s", spec.name, schema_status(url, spec.migrations).describe()
        )
        return 0
    timeout = WAIT_TIMEOUT_SECONDS if arguments.timeout is None else arguments.timeout
    status = wait_for_head(url, spec.migrations, timeout)
    if status is None:
        migration_log.error(
            "%s: the database did not reach this release's head within %.0fs: has this "
            "release's migration run (python -m services.%s migrate)?",
            spec.name,
            timeout,
            spec.name,
        )
        return 1
    migration_log.info("%s: the database is %s", spec.name, status.describe())
    return 0


def run_service(
    spec: ServiceSpec,
    settings_class: type[SettingsT],
    setup: Callable[[SettingsT], Setup],
    argv: Sequence[str] | None = None,
) -> None:
    """A service's command line (``argv``: ``sys.argv[1:]`` by default): ``migrate``
    (:func:`migrate`), or serve: migrate its database (or, with
    ``DOUDI_MIGRATE_ON_START=false``, check that a release's migration has brought it to
    this release's head), then serve until stopped."""
    arguments = command_line(spec, argv)
    if arguments.command == "migrate":
        sys.exit(migrate(spec, arguments))
    settings = read_settings(settings_class, f"python -m services.{spec.name}")
    observability.start(settings, spec.name)
    url = settings.database_url_for(spec.name)
    if settings.migrate_on_start:
        upgrade(url, spec.migrations)
    else:
        status = schema_status(url, spec.migrations)
        if status.behind:
            migration_log.error(
                "%s: the database is %s, and DOUDI_MIGRATE_ON_START=false: run this "
                "release's migration first (python -m services.%s migrate)",
                spec.name,
                status.describe(),
                spec.name,
            )
            sys.exit(1)
        if status.ahead:
            migration_log.warning("%s: the database is %s", spec.name, status.describe())
    engine = create_engine_for(url)
    metrics.watch_engine(engine)
    service_setup = setup(settings)

    async def main() -> None:
        # Database calls run in these threads (asyncio.to_thread), one pooled connection
        # each; see doudi.common.db.DATABASE_THREADS.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=DATABASE_THREADS, thread_name_prefix="database")
        )
        async with contextlib.AsyncExitStack() as stack:
            register, authenticate = await service_setup(engine, stack)
            tune_garbage_collector()
            await serve(
                settings=settings,
                service_name=spec.service_name,
                register=register,
                authenticate=authenticate,
                ready=lambda: asyncio.to_thread(ping, engine),
                default_port=spec.default_port,
            )

    try:
        # uvloop (as the gateway's uvicorn uses): grpc.aio runs on it, and a settlement
        # took about 10% less CPU across the services than on asyncio's own loop.
        uvloop.run(main())
    finally:
        engine.dispose()
