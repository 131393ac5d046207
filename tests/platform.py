"""Start the whole platform for tests: the four services and the gateway, each on a free port.

    with running_platform(tmp_path, "sqlite") as platform:
        httpx.get(f"{platform.base_url}/healthz")

Assistance starts first, then settlement, datashare and enrollment, each pointed at
those started before it (whom it sends to), then ``python -m gateway`` pointed at all
four; the
platform is ready when the gateway's ``/healthz`` answers 200. Each service
gets a database of its own (``tests.conftest.new_database``: a SQLite file, or
a PostgreSQL database dropped afterwards).
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from doudi.cli import demo
from tests.conftest import new_database
from tests.services import (
    INTERNAL,
    ROOT,
    START_TIMEOUT_SECONDS,
    RunningService,
    free_port,
    service_env,
    start_service,
    stop_service,
)
from tests.support import business_day

SERVICES = ("enrollment", "datashare", "assistance", "settlement")
DatabaseUrlFor = Callable[[str], str | None]
"""The database URL a service should use (None: its default SQLite file in the directory)."""


@dataclass
class Platform:
    directory: Path
    services: dict[str, RunningService]
    gateway: subprocess.Popen[bytes] | None = None
    gateway_port: int = 0
    metrics_urls: dict[str, str] = field(default_factory=dict)
    """Each process's metrics (``/metrics``), when the platform was started with them."""
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def gateway_log_path(self) -> Path:
        return self.directory / "gateway.log"

    def gateway_log(self) -> str:
        return self.gateway_log_path.read_text(errors="replace")

    def client(self, api_key: str | None = None) -> httpx.Client:
        """An HTTP client of the gateway, sending ``api_key`` as the bearer if given."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=30)
        self._clients.append(client)
        return client

    def stop_gateway(self) -> int | None:
        """Stop the gateway (SIGTERM: gracefully) and answer its exit code."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        process = self.gateway
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop(self) -> None:
        self.stop_gateway()
        for service in reversed(list(self.services.values())):
            stop_service(service)


_METRICS_AT = re.compile(r"metrics at (http://\S+/metrics)")


def metrics_url(log: str) -> str:
    """Where a process started with ``DOUDI_METRICS_PORT=0`` serves its metrics, as it
    logged."""
    found = _METRICS_AT.search(log)
    assert found is not None, f"no metrics server in the log:\n{log[-2000:]}"
    return found.group(1)


def start_platform(
    directory: Path,
    database_url_for: DatabaseUrlFor,
    gateway_env: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    metrics: bool = False,
) -> Platform:
    """Start every service and the gateway (``gateway_env``: its further settings; ``env``:
    every process's, such as TLS); with ``metrics``, each serves its metrics on a free port
    (:attr:`Platform.metrics_urls`). On failure, stop whatever had started."""
    directory.mkdir(parents=True, exist_ok=True)
    platform = Platform(directory, {})
    common = {**(env or {}), **({"DOUDI_METRICS_PORT": "0"} if metrics else {})}

    def start(name: str, peers: dict[str, str]) -> RunningService:
        service = start_service(
            name, directory, database_url=database_url_for(name), env={**common, **peers}
        )
        platform.services[name] = service
        if metrics:
            platform.metrics_urls[name] = metrics_url(service.log())
        return service

    try:
        # Settlement sends its events to assistance; datashare sends what it owns to
        # settlement and assistance, enrollment to all three.
        # Assistance also sends to datashare (warnings, statuses it certifies) and calls
        # settlement (screening): their ports are chosen up front.
        datashare_port = settlement_port = free_port()
        while settlement_port == datashare_port:
            settlement_port = free_port()
        datashare_address = f"127.0.0.1:{datashare_port}"
        settlement_address = f"127.0.0.1:{settlement_port}"
        assistance = start(
            "assistance",
            {
                "DOUDI_DATASHARE_ADDRESS": datashare_address,
                "DOUDI_SETTLEMENT_ADDRESS": settlement_address,
            },
        )
        peers = {"DOUDI_ASSISTANCE_ADDRESS": assistance.address}
        peers["DOUDI_SETTLEMENT_ADDRESS"] = start(
            "settlement", {**peers, "DOUDI_PORT": str(settlement_port)}
        ).address
        start("datashare", {**peers, "DOUDI_PORT": str(datashare_port)})
        peers["DOUDI_DATASHARE_ADDRESS"] = datashare_address
        start("enrollment", peers)
        start_gateway(platform, {**common, **(gateway_env or {})})
        if metrics:
            platform.metrics_urls["gateway"] = metrics_url(platform.gateway_log())
    except BaseException:
        platform.stop()
        raise
    return platform


def start_gateway(platform: Platform, extra_env: Mapping[str, str] | None = None) -> None:
    """Start the gateway in front of the platform's services (again, after
    :meth:`Platform.stop_gateway`)."""
    port_file = platform.directory / "gateway.port"
    port_file.unlink(missing_ok=True)
    services = platform.services
    env = service_env(
        platform.directory,
        None,
        {
            "DOUDI_PORT_FILE": str(port_file),
            "DOUDI_SETTLEMENT_ADDRESS": services["settlement"].address,
            "DOUDI_ENROLLMENT_ADDRESS": services["enrollment"].address,
            "DOUDI_DATASHARE_ADDRESS": services["datashare"].address,
            "DOUDI_ASSISTANCE_ADDRESS": services["assistance"].address,
            **(extra_env or {}),
        },
    )
    with platform.gateway_log_path.open("ab") as log:
        platform.gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if platform.gateway.poll() is not None:
            raise RuntimeError(f"the gateway exited:\n{platform.gateway_log()}")
        if port_file.exists() and port_file.read_text().strip():
            platform.gateway_port = int(port_file.read_text())
            try:
                if httpx.get(f"{platform.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway never became healthy:\n{platform.gateway_log()}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_platform(
    directory: Path,
    backend: str = "sqlite",
    gateway_env: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    metrics: bool = False,
) -> Iterator[Platform]:
    """The platform on ``backend`` (``sqlite`` or ``postgresql``), stopped afterwards (the
    other arguments: :func:`start_platform`)."""
    with contextlib.ExitStack() as stack:
        urls = {
            name: stack.enter_context(new_database(backend, directory, name)) for name in SERVICES
        }
        platform = start_platform(directory, urls.get, gateway_env, env, metrics=metrics)
        stack.callback(platform.stop)  # before the databases are dropped
        yield platform


def load_demo(platform: Platform, year: int, *, console_users: bool = True) -> None:
    """The demo data for ``year`` (its certificate applied the month before the bureau's
    day) and (unless told) the demo console accounts."""
    token = INTERNAL[0][1].removeprefix("Bearer ")
    demo.load(
        enrollment=platform.services["enrollment"].channel(),
        datashare=platform.services["datashare"].channel(),
        settlement=platform.services["settlement"].channel(),
        internal_token=token,
        year=year,
    )
    demo.load_certificate(
        enrollment=platform.services["enrollment"].channel(),
        internal_token=token,
        today=business_day(),
    )
    if console_users:
        demo.load_console_users(
            datashare=platform.services["datashare"].channel(), internal_token=token
        )


@contextlib.contextmanager
def module_platforms(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    start: Callable[[Path, str], contextlib.AbstractContextManager[Platform]],
) -> Iterator[Callable[[str], Platform]]:
    """A module's platforms: on a backend, started by ``start(directory, backend)`` when a
    test first asks for it, stopped when the module is done."""
    started: dict[str, Platform] = {}
    with contextlib.ExitStack() as stack:

        def on(backend: str) -> Platform:
            if backend not in started:
                directory = tmp_path_factory.mktemp(f"{name}-{backend}")
                started[backend] = stack.enter_context(start(directory, backend))
            return started[backend]

        yield on


@contextlib.contextmanager
def demo_platforms(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    year: int,
    gateway_env: Mapping[str, str] | None = None,
) -> Iterator[Callable[[str], Platform]]:
    """A module's platforms (:func:`module_platforms`), with the demo data (for ``year``)
    and the demo console accounts."""

    @contextlib.contextmanager
    def start(directory: Path, backend: str) -> Iterator[Platform]:
        with running_platform(directory, backend, gateway_env) as platform:
            load_demo(platform, year)
            yield platform

    with module_platforms(tmp_path_factory, name, start) as on:
        yield on
