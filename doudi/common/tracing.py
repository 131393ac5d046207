"""OpenTelemetry traces across the gateway and the services, and the request id beside them.

A process traces when it is given somewhere to send its spans (:func:`configure`):
``DOUDI_OTLP_ENDPOINT`` (an OTLP/gRPC collector; the SDK reads the standard
``OTEL_*`` variables besides: ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._CERTIFICATE``,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``...), or
``DOUDI_TRACE_FILE`` (each finished span as a JSON line: tests). Without either no span
is made at all: the channels (:class:`ObservedChannel`) and the services' interceptor
only pass the request id on, and the gateway leaves FastAPI's telemetry off.

* The gateway's HTTP server span is FastAPI's own (gateway.app).
* Every gRPC call a process makes through :func:`doudi.common.grpc_client.channel` goes
  through :class:`ObservedChannel`: a CLIENT span, and the metadata ``x-request-id`` (the
  current request id, doudi.common.request_ids) and ``traceparent`` (W3C trace context,
  through the propagators ``OTEL_PROPAGATORS`` names; by default trace context and
  baggage).
* Every call a service serves gets a SERVER span in its interceptor
  (:func:`start_server_span`, doudi.common.grpc_server), a child of the caller's.

So a settlement is one trace: the gateway's request, its call, settlement's call. A call
that an outbox's background loop makes (doudi.common.outbox: settlement's events to
assistance) has no request around it: its CLIENT span starts a trace of its own, and
the round its own request id.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from doudi.common import request_ids

INSTRUMENTATION: Final = "doudi"
# Status codes that are the server's failure rather than the caller's (OpenTelemetry's
# semantic conventions for gRPC server spans); a client span fails at any code but OK.
_SERVER_ERRORS: Final = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def configure(
    *, service: str, otlp_endpoint: str = "", trace_file: Path | None = None
) -> TracerProvider | None:
    """Trace this process (``service``: ``gateway``, ``settlement``...) when an exporter is
    set; None when none is."""
    processors: list[Any] = []
    if otlp_endpoint:
        # Imported only when used: the exporter pulls in the OTLP protos.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    if trace_file is not None:
        processors.append(SimpleSpanProcessor(JsonLinesExporter(trace_file)))
    if not processors:
        return None
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, if set, go over these.
    provider = TracerProvider(resource=Resource.create({"service.name": f"doudi-{service}"}))
    for processor in processors:
        provider.add_span_processor(processor)
    use(provider)
    return provider


def use(provider: TracerProvider | None) -> None:
    """Make spans with ``provider`` from now on (None: make none). The process's tracer is
    this module's, not OpenTelemetry's global one: a test may set and reset it."""
    global _provider, _tracer
    _provider = provider
    _tracer = None if provider is None else provider.get_tracer(INSTRUMENTATION)


def provider() -> TracerProvider | None:
    """The provider spans are made with, if the process traces."""
    return _provider


class JsonLinesExporter(SpanExporter):
    """Writes each finished span to a file as one JSON object a line (``DOUDI_TRACE_FILE``):
    its name, kind, trace and span ids, parent, links, status and attributes. Several
    processes may share the file: each export is appended in one write."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_document(span)) + "\n" for span in spans).encode()
        with self._lock:
            # One write of the whole export to a file opened for appending: lines of several
            # processes never interleave.
            file = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(file, lines)
            finally:
                os.close(file)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def span_document(span: ReadableSpan) -> dict[str, Any]:
    """A span as :class:`JsonLinesExporter` writes it."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "trace_id": format(context.trace_id, "032x") if context else None,
        "span_id": format(context.span_id, "016x") if context else None,
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "links": [format(link.context.trace_id, "032x") for link in span.links],
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


# --- serving a call ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerSpan:
    """A call's SERVER span, current while the call is served."""

    span: Span
    token: object


def start_server_span(method: str, carrier: dict[str, str]) -> ServerSpan | None:
    """A SERVER span for a call to ``method`` (``/package.Service/Method``), a child of the
    caller's (``carrier``: the call's metadata), made current; None (and nothing done)
    when the process does not trace. End it with :func:`end_server_span`."""
    tracer = _tracer
    if tracer is None:
        return None
    service, _, short = method.lstrip("/").partition("/")
    span = tracer.start_span(
        method.lstrip("/"),
        context=propagate.extract(carrier),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": short},
    )
    return ServerSpan(span, otel_context.attach(trace.set_span_in_context(span)))


def end_server_span(started: ServerSpan | None, code: str) -> None:
    """End a call's span (:func:`start_server_span`) with the status code it answered."""
    if started is None:
        return
    span = started.span
    span.set_attribute("rpc.grpc.status_code", _code_number(code))
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code))
    otel_context.detach(started.token)  # type: ignore[arg-type]
    span.end()


def _code_number(name: str) -> int:
    code = getattr(grpc.StatusCode, name, grpc.StatusCode.UNKNOWN)
    number: int = code.value[0]
    return number


# --- calling a peer ---------------------------------------------------------------------------

Metadata = grpc.aio.Metadata | Sequence[tuple[str, str | bytes]] | None


def outgoing_metadata(metadata: Metadata, span: Span | None) -> tuple[tuple[str, str | bytes], ...]:
    """A call's metadata with ``x-request-id`` (the current request id) and, under ``span``,
    its trace context (``traceparent``)."""
    extra: list[tuple[str, str | bytes]] = []
    request_id = request_ids.current()
    if request_id is not None:
        extra.append((request_ids.HEADER, request_id))
    if span is not None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        extra.extend(carrier.items())
    return (*(metadata or ()), *extra)


def _client_span(method: str) -> Span | None:
    """A CLIENT span for a call to ``method`` (``/package.Service/Method``), a child of the
    current span; None when the process does not trace."""
    tracer = _tracer
    if tracer is None:
        return None
    path = method.lstrip("/")
    service, _, short = path.partition("/")
    return tracer.start_span(
        path,
        kind=SpanKind.CLIENT,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": short},
    )


def _end_client_span(span: Span, code: str) -> None:
    span.set_attribute("rpc.grpc.status_code", _code_number(code))
    if code != "OK":
        span.set_status(Status(StatusCode.ERROR, code))
    span.end()


class _SpannedCall:
    """A unary call under its CLIENT span, which ends with the call's status: awaited as the
    call is (the platform's code only awaits its calls), anything else asked of the call."""

    def __init__(self, call: Any, span: Span) -> None:
        self._call = call
        self._span = span

    def __await__(self) -> Any:
        return self._answer().__await__()

    async def _answer(self) -> Any:
        try:
            response = await self._call
        except grpc.aio.AioRpcError as error:
            _end_client_span(self._span, error.code().name)
            raise
        except BaseException:
            _end_client_span(self._span, "CANCELLED")
            raise
        _end_client_span(self._span, "OK")
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _Observed:
    """One method of an :class:`ObservedChannel`: each call with the request id and, when
    tracing, under a CLIENT span whose context goes with it."""

    __slots__ = ("_method", "_multicallable", "_unary")

    def __init__(self, multicallable: Any, method: str, *, unary: bool) -> None:
        self._multicallable = multicallable
        self._method = method
        self._unary = unary

    def __call__(self, request: Any, *args: Any, metadata: Metadata = None, **options: Any) -> Any:
        span = _client_span(self._method)
        call = self._multicallable(
            request, *args, metadata=outgoing_metadata(metadata, span), **options
        )
        if span is None:
            return call
        if self._unary:
            return _SpannedCall(call, span)
        call.add_done_callback(lambda _call: span.end())
        return call


class ObservedChannel(grpc.aio.Channel):
    """A channel whose every call carries the current request id and, when the process
    traces, its CLIENT span's context (doudi.common.grpc_client.channel makes every channel
    so). A wrapper of the channel's methods rather than a client interceptor: gRPC runs
    each intercepted call in a task of its own, about 30 µs of a call's CPU."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Observed(self._channel.unary_unary(method, *args, **kwargs), method, unary=True)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Observed(self._channel.stream_unary(method, *args, **kwargs), method, unary=True)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Observed(self._channel.unary_stream(method, *args, **kwargs), method, unary=False)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Observed(self._channel.stream_stream(method, *args, **kwargs), method, unary=False)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def __aenter__(self) -> ObservedChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
