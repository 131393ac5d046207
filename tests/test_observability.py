"""Logs, metrics and traces of a real platform (docs/architecture.md, "Logs, metrics and
traces").

The platform's processes log JSON (``DOUDI_LOG_FORMAT=json``), serve their metrics on a
port each, and write their spans to one file (``DOUDI_TRACE_FILE``): a settlement through
the gateway moves the counters, its request id stands in the gateway's and the
settlement service's log lines, and its trace spans both. One test runs the gateway in
this process with OpenTelemetry's in-memory exporter, in front of the platform's services.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from doudi.cli import demo
from doudi.common import tracing
from doudi.common.observability import ObservabilitySettings
from gateway.app import create_app
from gateway.settings import Settings
from tests.platform import Platform, load_demo, module_platforms, running_platform
from tests.support import ROOT, demo_bill

PERSON = demo.REGISTERED_POOR.person_id
HOSPITAL_KEY = demo.HOSPITALS[0].api_key
SETTLE = "doudi.settlement.v1.SettlementService/Settle"
RECORD_EVENTS = "doudi.assistance.v1.AssistanceService/RecordSettlementEvents"
DASHBOARD = ROOT / "deploy" / "grafana" / "settlement.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@contextlib.contextmanager
def observed_platform(directory: Path, backend: str) -> Iterator[Platform]:
    """The platform with the demo data, observed: JSON logs (the gateway's access log too),
    each process's metrics, every span in ``traces.jsonl``; DEBUG lines too, where a call
    that succeeds is logged (a settlement's own line and its call's)."""
    observed = {
        "DOUDI_LOG_FORMAT": "json",
        "DOUDI_LOG_LEVEL": "DEBUG",
        "DOUDI_TRACE_FILE": str(directory / "traces.jsonl"),
    }
    gateway = {**observed, "DOUDI_ACCESS_LOG": "true"}
    with running_platform(directory, backend, gateway, observed, metrics=True) as platform:
        load_demo(platform, date.today().year)
        yield platform


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with module_platforms(tmp_path_factory, "observability", observed_platform) as on:
        yield on


def scrape(url: str) -> Samples:
    """Every sample a process's metrics answer, by name and labels."""
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """A JSON log (every line must be one object) or the trace file, parsed."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def settle(client: httpx.Client | TestClient, **headers: str) -> httpx.Response:
    key = f"obs-{uuid.uuid4().hex[:12]}"
    return client.post(
        "/v1/settlements",
        headers={"Authorization": f"Bearer {HOSPITAL_KEY}", "Idempotency-Key": key, **headers},
        json=demo_bill(key),
    )


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


def test_a_settlement_moves_the_counters_and_its_request_id_stands_in_every_log_line(
    platforms: Callable[[str], Platform], backend: str
) -> None:
    platform = platforms(backend)
    gateway_metrics = platform.metrics_urls["gateway"]
    settlement_metrics = platform.metrics_urls["settlement"]
    before = scrape(gateway_metrics) | scrape(settlement_metrics)
    request_id = f"hospital-{uuid.uuid4().hex}"

    answer = settle(platform.client(), **{"X-Request-Id": request_id})

    assert answer.status_code == 201, answer.text
    assert answer.headers["X-Request-Id"] == request_id
    paid = {layer["fund"]: layer["paid_fen"] for layer in answer.json()["layers"]}
    assert sum(1 for fen in paid.values() if fen) >= 2
    after = scrape(gateway_metrics) | scrape(settlement_metrics)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"route": "/v1/settlements", "method": "POST"}
    assert moved("doudi_http_requests_total", **route, status="201") == 1
    assert moved("doudi_http_request_duration_seconds_count", **route) == 1
    assert moved("doudi_http_request_duration_seconds_bucket", **route, le="+Inf") == 1
    call = {"grpc_service": "doudi.settlement.v1.SettlementService", "grpc_method": "Settle"}
    assert moved("doudi_grpc_server_handled_total", **call, grpc_code="OK") == 1
    assert moved("doudi_grpc_server_handling_seconds_count", **call) == 1
    assert moved("doudi_settlements_total", kind="settled") == 1
    for fund, fen in paid.items():
        if fen:
            labels = {"kind": "settled", "fund": fund}
            assert moved("doudi_settlement_fund_payments_total", **labels) == 1, fund
            assert moved("doudi_settlement_fund_paid_fen_total", **labels) == fen, fund

    # The request id in the gateway's line for the request and in settlement's for the call,
    # each with the same trace id; every line of both logs is a JSON object.
    gateway_lines = [
        line
        for line in json_lines(platform.gateway_log_path)
        if line.get("request_id") == request_id and "route" in line  # the access log's
    ]
    assert [line["route"] for line in gateway_lines] == ["/v1/settlements"]
    assert gateway_lines[0]["status"] == 201
    settled = eventually(
        lambda: [
            line
            for line in json_lines(platform.services["settlement"].log_path)
            if line.get("request_id") == request_id
        ]
    )
    assert {line["logger"] for line in settled} == {"doudi.settlement", "doudi.grpc"}
    (own,) = [line for line in settled if line["logger"] == "doudi.settlement"]
    assert "411323********0014" in own["event"]
    assert own["trace_id"] == gateway_lines[0]["trace_id"]
    for log in (platform.gateway_log_path, platform.services["settlement"].log_path):
        assert PERSON not in log.read_text(), f"{log.name} logged a full identity number"

    # That trace spans the gateway's request and settlement's call (the trace file).
    spans = [
        span
        for span in json_lines(platform.directory / "traces.jsonl")
        if span["trace_id"] == own["trace_id"]
    ]
    kinds = {(span["service"], span["kind"], span["name"]) for span in spans}
    assert ("doudi-gateway", "SERVER", "POST /v1/settlements") in kinds
    assert ("doudi-gateway", "CLIENT", SETTLE) in kinds
    assert ("doudi-settlement", "SERVER", SETTLE) in kinds

    # The reversal, counted apart: the funds give back what they paid.
    reversal = platform.client(HOSPITAL_KEY).post(
        f"/v1/settlements/{answer.json()['id']}/reversal",
        headers={"Idempotency-Key": f"reverse-{request_id}"},
    )
    assert reversal.status_code == 200, reversal.text
    assert "X-Request-Id" in reversal.headers
    again = scrape(settlement_metrics)
    assert (
        value(again, "doudi_settlements_total", kind="reversed")
        - value(before, "doudi_settlements_total", kind="reversed")
        == 1
    )
    for fund, fen in paid.items():
        if fen:
            labels = {"kind": "reversed", "fund": fund}
            assert (
                value(again, "doudi_settlement_fund_paid_fen_total", **labels)
                - value(before, "doudi_settlement_fund_paid_fen_total", **labels)
                == fen
            )


def test_a_request_id_that_is_not_sane_is_replaced_and_the_answer_names_the_new_one(
    platforms: Callable[[str], Platform],
) -> None:
    platform = platforms("sqlite")
    for given in (b"a b", b"x" * 129, b"<script>", b"id/../x", b"", "é".encode()):
        answer = platform.client(HOSPITAL_KEY).get(
            "/v1/settlements/none", headers={b"X-Request-Id": given}
        )
        assert answer.status_code == 404, answer.text
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"]), given
    answer = platform.client(HOSPITAL_KEY).get("/v1/settlements/none")
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])


def test_every_process_serves_its_metrics(
    platforms: Callable[[str], Platform], backend: str
) -> None:
    platform = platforms(backend)
    assert set(platform.metrics_urls) == {
        "enrollment",
        "datashare",
        "settlement",
        "assistance",
        "gateway",
    }
    assert settle(platform.client()).status_code == 201
    for name, url in platform.metrics_urls.items():
        samples = scrape(url)
        names = {sample_name for sample_name, _labels in samples}
        assert "process_cpu_seconds_total" in names, name
        if name == "gateway":
            assert "doudi_http_requests_total" in names
            continue
        assert "doudi_grpc_server_handled_total" in names, name
        assert value(samples, "doudi_db_pool_size", pool="main") > 0, name
        assert "doudi_db_pool_checked_out" in names, name
    # Each outbox: its rows waiting and the age of the oldest, per subscriber.
    settlement = scrape(platform.metrics_urls["settlement"])
    outbox = {"outbox": "event_outbox", "subscriber": "assistance"}
    assert ("doudi_outbox_backlog", frozenset(outbox.items())) in settlement
    assert ("doudi_outbox_oldest_age_seconds", frozenset(outbox.items())) in settlement
    for subscriber in ("settlement", "datashare", "assistance"):
        labels = {"outbox": "coverage_deliveries", "subscriber": subscriber}
        # Every change the demo made was delivered: nothing waits, for no time.
        eventually(
            lambda labels=labels: (
                (enrollment := scrape(platform.metrics_urls["enrollment"])).get(
                    ("doudi_outbox_backlog", frozenset(labels.items()))
                )
                == 0
                and value(enrollment, "doudi_outbox_oldest_age_seconds", **labels) == 0
            )
        )


def test_one_settlement_is_one_trace_from_the_gateway_in_this_process_to_settlement(
    platforms: Callable[[str], Platform],
) -> None:
    """The gateway in this process, its spans in OpenTelemetry's in-memory exporter; the
    services' spans in the trace file."""
    platform = platforms("sqlite")
    services = platform.services
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        app = create_app(
            Settings(
                settlement_address=services["settlement"].address,
                enrollment_address=services["enrollment"].address,
                datashare_address=services["datashare"].address,
                assistance_address=services["assistance"].address,
            )
        )
        with TestClient(app) as client:
            answer = settle(client)
            # A caller's own trace context is taken: its trace goes on through the gateway.
            caller_trace = uuid.uuid4().hex
            continued = settle(client, traceparent=f"00-{caller_trace}-{'ab' * 8}-01")
    finally:
        tracing.use(None)
        provider.shutdown()
    assert answer.status_code == 201, answer.text
    assert continued.status_code == 201, continued.text

    spans = exporter.get_finished_spans()
    requests = [span for span in spans if span.kind == SpanKind.SERVER]
    assert [span.name for span in requests] == ["POST /v1/settlements"] * 2
    assert requests[0].attributes is not None
    assert requests[0].attributes["http.route"] == "/v1/settlements"
    assert requests[0].attributes["http.response.status_code"] == 201
    assert requests[0].parent is None
    assert format(requests[1].context.trace_id, "032x") == caller_trace
    assert requests[1].parent is not None
    assert requests[1].parent.span_id == 0xABABABABABABABAB

    for request in requests:
        trace_id = format(request.context.trace_id, "032x")
        calls = [
            span
            for span in spans
            if span.kind == SpanKind.CLIENT
            and span.name == SETTLE
            and span.context.trace_id == request.context.trace_id
        ]
        assert len(calls) == 1
        assert calls[0].parent is not None
        assert calls[0].parent.span_id == request.context.span_id
        # Settlement's span of the call: the same trace, the gateway's call its parent.
        served = eventually(
            lambda trace_id=trace_id: [
                span
                for span in json_lines(platform.directory / "traces.jsonl")
                if span["trace_id"] == trace_id and span["name"] == SETTLE
            ]
        )
        assert [(span["service"], span["kind"]) for span in served] == [
            ("doudi-settlement", "SERVER")
        ]
        assert served[0]["parent_span_id"] == format(calls[0].context.span_id, "016x")
        assert served[0]["attributes"]["rpc.grpc.status_code"] == 0

    # Settlement sends the events to assistance in the background: a trace of its own,
    # from settlement's call to assistance's span.
    gateway_traces = {format(span.context.trace_id, "032x") for span in requests}

    def delivered() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        lines = json_lines(platform.directory / "traces.jsonl")
        sent = [
            span for span in lines if span["name"] == RECORD_EVENTS and span["kind"] == "CLIENT"
        ]
        return [
            (call, span)
            for call in sent
            for span in lines
            if span["kind"] == "SERVER" and span["parent_span_id"] == call["span_id"]
        ]

    pairs = eventually(delivered)
    for call, received in pairs:
        assert call["service"] == "doudi-settlement"
        assert received["service"] == "doudi-assistance"
        assert received["trace_id"] == call["trace_id"]
        assert call["trace_id"] not in gateway_traces
        assert call["parent_span_id"] is None


def test_the_dashboard_charts_only_metrics_the_processes_export(
    platforms: Callable[[str], Platform],
) -> None:
    platform = platforms("sqlite")
    assert settle(platform.client()).status_code == 201
    exported = {name for url in platform.metrics_urls.values() for name, _labels in scrape(url)}
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert expressions
    named = set().union(*(metric_names(expression) for expression in expressions))
    assert named - exported == set()
    # What the settlement path's dashboard must show.
    assert {
        "doudi_http_requests_total",
        "doudi_http_request_duration_seconds_bucket",
        "doudi_grpc_server_handled_total",
        "doudi_grpc_server_handling_seconds_bucket",
        "doudi_settlements_total",
        "doudi_settlement_fund_paid_fen_total",
        "doudi_outbox_backlog",
        "doudi_outbox_oldest_age_seconds",
        "doudi_db_pool_checked_out",
        "doudi_db_pool_size",
    } <= named


# PromQL's functions, aggregations and keywords that the dashboard's expressions use; any
# other name is a metric's (and so must be exported).
_PROMQL_WORDS = frozenset(
    {
        "sum",
        "rate",
        "increase",
        "histogram_quantile",
        "by",
        "without",
        "max",
        "min",
        "avg",
        "clamp_min",
        "and",
        "or",
        "unless",
        "on",
        "ignoring",
        "group_left",
        "offset",
        "bool",
        "vector",
    }
)


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)  # label lists
    # Names, and numbers whole (so that 1e-9 is no name ``e``).
    tokens = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*|[0-9.]+(?:[eE][+-]?[0-9]+)?", text)
    return {token for token in tokens if not token[0].isdigit() and token[0] != "."} - _PROMQL_WORDS


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(doudi_x_bucket{route="/v1/a",le!=""}[$__rate_interval])))'
    ) == {"doudi_x_bucket"}
    assert metric_names(
        'sum(rate(a_total{code!="OK"}[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) / 100'
    ) == {"a_total", "b_total"}


def test_logs_are_json_in_production_and_text_elsewhere_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DOUDI_LOG_FORMAT", raising=False)
    settings = ObservabilitySettings()
    assert settings.log_format_in("production") == "json"
    assert settings.log_format_in("local") == "text"
    monkeypatch.setenv("DOUDI_LOG_FORMAT", "text")
    assert ObservabilitySettings().log_format_in("production") == "text"
    monkeypatch.setenv("DOUDI_LOG_FORMAT", "xml")
    with pytest.raises(pydantic.ValidationError):
        ObservabilitySettings()


@pytest.mark.parametrize(
    ("given", "port"), [("", None), ("9090", 9090), ("0", 0)], ids=["empty", "set", "any"]
)
def test_an_empty_metrics_port_serves_no_metrics(
    monkeypatch: pytest.MonkeyPatch, given: str, port: int | None
) -> None:
    monkeypatch.setenv("DOUDI_METRICS_PORT", given)
    assert ObservabilitySettings().metrics_port == port


@pytest.mark.parametrize("given", ["-1", "65536", "ninety"])
def test_a_metrics_port_out_of_range_is_refused(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("DOUDI_METRICS_PORT", given)
    with pytest.raises(pydantic.ValidationError, match="metrics_port"):
        ObservabilitySettings()
