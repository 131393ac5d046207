"""Start real Doudi services for tests: subprocesses on port 0, each with its own database.

    with running_service("enrollment", tmp_path, database_url=url) as svc:
        stub = EnrollmentServiceStub(svc.channel())

Each service runs as ``python -m services.<name>`` with ``DOUDI_PORT=0``; it
writes the port it bound to a file and the harness waits for the port and for
the health check to say SERVING. Its log (stderr) goes to ``<name>.log`` in the
test's directory, so tests can read what it logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from doudi.cli.demo import DEMO_AGENCY_KEYS
from doudi.common.grpc_client import serving_status, sync_channel
from doudi.common.settings import LOCAL_INTERNAL_TOKEN
from doudi.common.tls import TlsSettings

ROOT = Path(__file__).resolve().parent.parent
INTERNAL = (("authorization", f"Bearer {LOCAL_INTERNAL_TOKEN}"),)
"""Metadata for calls as the platform itself."""
START_TIMEOUT_SECONDS = 30.0


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class RunningService:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str]
    _channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        """A channel to the service as the platform's processes open one: over TLS, with
        the service's own certificate as the client's, when it serves TLS."""
        channel = sync_channel(self.address, client_tls(self.env))
        self._channels.append(channel)
        return channel

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close_channels(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()


def service_env(
    directory: Path, database_url: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DOUDI_") or key == "DOUDI_TEST_POSTGRES_URL"
    }
    env.update(
        DOUDI_ENVIRONMENT="local",
        DOUDI_DATA_DIR=str(directory),
        DOUDI_PORT="0",
        DOUDI_SHUTDOWN_GRACE_SECONDS="2",
        # The agencies' demo keys, as `doudi run` gives them to the hub.
        DOUDI_AGENCY_KEYS=json.dumps(DEMO_AGENCY_KEYS),
        PYTHONUNBUFFERED="1",
    )
    if database_url:
        env["DOUDI_DATABASE_URL"] = database_url
    # A service started alone reaches no peer unless the test says which: never the
    # platform a developer may be running on the default ports (`make run`).
    env.update(no_peers())
    env.update(extra or {})
    return env


FIXED_PORTS = range(20_000, 32_768)
"""Where :func:`free_port` looks: below the ports Linux (from 32768) and other systems
hand out to outgoing connections, so that no client connection (to PostgreSQL, say)
holds a chosen port by the time a service binds it (seen once in CI)."""


def free_port() -> int:
    """A port nothing listens on now (a service may be told to take it, and to take it
    again after a restart)."""
    for port in random.SystemRandom().sample(FIXED_PORTS, 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {FIXED_PORTS}")


def no_peers() -> dict[str, str]:
    """The environment of a service started alone (every service's, unless the test names
    its peers): the services it sends to cannot be reached, so each send fails, is logged
    and is retried, and they answer all the same (tests/test_settlement_flow.py checks the
    sending)."""
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    peers = ("ENROLLMENT", "SETTLEMENT", "DATASHARE", "ASSISTANCE")
    return {f"DOUDI_{peer}_ADDRESS": nowhere for peer in peers}


def start_service(
    name: str,
    directory: Path,
    *,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> RunningService:
    """Start ``services.<name>`` and wait until it serves; ``directory`` holds its files."""
    directory.mkdir(parents=True, exist_ok=True)
    port_file = directory / f"{name}.port"
    port_file.unlink(missing_ok=True)
    log_path = directory / f"{name}.log"
    full_env = service_env(directory, database_url, env)
    full_env["DOUDI_PORT_FILE"] = str(port_file)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = RunningService(name, process, 0, log_path, full_env)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not port_file.exists() or not port_file.read_text().strip():
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{service.log()}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{name} did not start:\n{service.log()}")
        time.sleep(0.02)
    service.port = int(port_file.read_text())
    wait_serving(service, deadline)
    return service


def client_tls(env: Mapping[str, str]) -> TlsSettings:
    """The TLS a client of a process started with ``env`` uses: that of the process's own
    settings (its certificate, key and authority), none when it serves plaintext."""

    def path(name: str) -> Path | None:
        value = env.get(f"DOUDI_TLS_{name}_FILE")
        return Path(value) if value else None

    return TlsSettings(tls_cert_file=path("CERT"), tls_key_file=path("KEY"), tls_ca_file=path("CA"))


def wait_serving(service: RunningService, deadline: float) -> None:
    with sync_channel(service.address, client_tls(service.env)) as channel:
        while serving_status(channel, timeout=1) != "SERVING":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service.name} never became SERVING:\n{service.log()}")
            time.sleep(0.05)


def stop_service(service: RunningService, signum: int = signal.SIGTERM) -> int:
    """Stop the process (SIGTERM: gracefully; SIGKILL: as a crash) and answer its exit code."""
    service.close_channels()
    if service.process.poll() is None:
        service.process.send_signal(signum)
        try:
            service.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
    return service.process.returncode


@contextlib.contextmanager
def running_service(
    name: str,
    directory: Path,
    *,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningService]:
    service = start_service(name, directory, database_url=database_url, env=env)
    try:
        yield service
    finally:
        stop_service(service)


@contextlib.contextmanager
def alone_per_backend(
    name: str,
    tmp_path_factory: pytest.TempPathFactory,
    prepare: Callable[[RunningService], object] | None = None,
) -> Iterator[Callable[[str], RunningService]]:
    """``services.<name>`` alone (no peers) on a backend, each with a new database of its
    own, started when a test first asks for it (and then given to ``prepare``), stopped
    when the context ends: a module fixture's servers, one per backend."""
    from tests.conftest import new_database

    started: dict[str, RunningService] = {}
    with contextlib.ExitStack() as stack:

        def on(backend: str) -> RunningService:
            if backend not in started:
                directory = tmp_path_factory.mktemp(f"{name}-{backend}")
                url = stack.enter_context(new_database(backend, directory))
                server = start_service(name, directory, database_url=url, env=no_peers())
                stack.callback(stop_service, server)
                started[backend] = server
                if prepare is not None:
                    prepare(server)
            return started[backend]

        yield on
