"""``doudi run``: the whole platform on one machine, on the embedded default (SQLite).

Starts the four gRPC services and the gateway as child processes, each with
its own SQLite file and log under the data directory (``var/`` or
``DOUDI_DATA_DIR``), loads the demo data, prints the gateway's URL, and on
Ctrl-C (or SIGTERM) stops every process gracefully. A process that dies while
the platform runs is restarted on its port, as Kubernetes restarts a crashed
container: after 1 s, then 2 s, 4 s ... up to 30 s while it keeps crashing,
1 s again once it has stayed up a minute (:class:`Backoff`); each exit and
restart is printed. The others run on meanwhile: the gateway and the services'
senders wait for it and retry. A process that dies while the platform starts
fails the command, naming its log.

Each process serves its Prometheus metrics on a port of its own, from
``--metrics-port`` (9464) on, in the order of the start-up table, which says where
(``--metrics-port 0``: none).

``--settlement-processes N`` runs N settlement processes on its one database,
as replicas run on Kubernetes: each on its own port, and the gateway balancing
calls over them round-robin. One per core lets a settlement use every core;
on SQLite the processes take turns at the database's write lock.

In production each process runs on its own (a Kubernetes Deployment per
service, PostgreSQL for the databases): see deploy/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import grpc

from doudi.cli import demo
from doudi.common.grpc_client import serving_status, sync_channel
from doudi.common.settings import ProcessSettings
from doudi.core.monitoring import bureau_day

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass
class Backoff:
    """How long to wait before restarting a process that exited, as Kubernetes does for a
    crashed container: ``first``, doubled at each exit up to ``cap``, and ``first`` again
    when the process had stayed up ``reset_after`` seconds."""

    first: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0
    _next: float = 0.0

    def delay(self, up_for: float) -> float:
        """The wait before restarting a process that exited after running ``up_for`` s."""
        if not self._next or up_for >= self.reset_after:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


@dataclass(frozen=True)
class Part:
    """A service (or the gateway) and the ports of its processes. A service's processes
    share its database; its callers balance calls over all of them."""

    name: str
    module: str
    ports: tuple[int, ...]
    peers: tuple[str, ...] = ()

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def address(self) -> str:
        """The gRPC target of every process of the part (round-robin over them)."""
        if len(self.ports) == 1:
            return f"127.0.0.1:{self.port}"
        return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def processes(self) -> list[tuple[str, int]]:
        """(process name, port) of each process: ``settlement``, ``settlement-2``..."""
        return [
            (self.name if index == 0 else f"{self.name}-{index + 1}", port)
            for index, port in enumerate(self.ports)
        ]


def parts(base_port: int, gateway_port: int, settlement_processes: int = 1) -> tuple[Part, ...]:
    """The platform's parts. Services take ``base_port`` onwards in the order below;
    settlement's further processes take the ports after assistance's."""
    services = ("enrollment", "datashare", "settlement", "assistance")
    ports: dict[str, tuple[int, ...]] = {
        name: (base_port + index,) for index, name in enumerate(services)
    }
    extra = base_port + len(services)
    ports["settlement"] += tuple(range(extra, extra + settlement_processes - 1))
    return (
        Part(
            "enrollment",
            "services.enrollment",
            ports["enrollment"],
            ("settlement", "datashare", "assistance"),
        ),
        Part("datashare", "services.datashare", ports["datashare"], ("settlement", "assistance")),
        Part("settlement", "services.settlement", ports["settlement"], ("assistance",)),
        Part("assistance", "services.assistance", ports["assistance"], ("datashare", "settlement")),
        Part("gateway", "gateway", (gateway_port,), services),
    )


def free_ports(count: int) -> list[int]:
    """``count`` consecutive ports free on 127.0.0.1 now (for benchmarks and tests)."""
    while True:
        base = random.randrange(20000, 60000 - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                candidate = socket.socket()
                sockets.append(candidate)
                candidate.bind(("127.0.0.1", port))
            return list(range(base, base + count))
        except OSError:
            continue
        finally:
            for candidate in sockets:
                candidate.close()


class Platform:
    """The processes of the platform on this machine. ``database_urls`` gives a service a
    database other than its SQLite file (the benchmarks run it on PostgreSQL);
    ``settlement_processes`` runs that many settlement processes on its one database;
    ``env`` is every process's further environment, and ``backoff`` how a process that
    exited is restarted (the fault tests restart faster than ``doudi run``);
    ``metrics_port`` gives each process a metrics port, from it on (:attr:`metrics_ports`)."""

    def __init__(
        self,
        data_dir: Path,
        base_port: int,
        gateway_port: int,
        database_urls: Mapping[str, str] | None = None,
        settlement_processes: int = 1,
        *,
        env: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
        metrics_port: int | None = None,
    ) -> None:
        if settlement_processes < 1:
            raise ValueError("settlement_processes must be at least 1")
        self.data_dir = data_dir.resolve()
        self.database_urls = dict(database_urls or {})
        self.parts = parts(base_port, gateway_port, settlement_processes)
        self.ports = {part.name: part.port for part in self.parts}
        names = [name for part in self.parts for name, _port in part.processes()]
        self.metrics_ports: dict[str, int] = (
            {} if metrics_port is None else {name: metrics_port + i for i, name in enumerate(names)}
        )
        self.addresses = {part.name: part.address for part in self.parts}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._started_at: dict[str, float] = {}
        self._backoffs: dict[str, Backoff] = {}
        self._backoff = backoff or Backoff()
        self.env = dict(env or {})
        self._restart_at: dict[str, float] = {}
        (self.data_dir / "log").mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.data_dir / "log" / f"{name}.log"

    def start(self) -> None:
        """Start the first process of each part; :meth:`wait_ready` starts the others once
        the first has migrated the database."""
        for part in self.parts:
            self._start(part, *part.processes()[0])

    def _start(self, part: Part, name: str, port: int) -> None:
        env = dict(os.environ)
        env.update(
            DOUDI_DATA_DIR=str(self.data_dir),
            DOUDI_PORT=str(port),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        env.pop("DOUDI_PORT_FILE", None)
        env.pop("DOUDI_METRICS_PORT", None)
        if name in self.metrics_ports:
            env["DOUDI_METRICS_PORT"] = str(self.metrics_ports[name])
        env.pop("DOUDI_DATABASE_URL", None)  # by default each service its own SQLite file
        if part.name in self.database_urls:
            env["DOUDI_DATABASE_URL"] = self.database_urls[part.name]
        for peer in part.peers:
            env[f"DOUDI_{peer.upper()}_ADDRESS"] = self.addresses[peer]
        if part.name == "datashare":
            env.setdefault("DOUDI_AGENCY_KEYS", json.dumps(demo.DEMO_AGENCY_KEYS))
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", part.module],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only us; we stop them in order
            )
        self._started_at[name] = time.monotonic()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for part in self.parts:
            for index, (name, port) in enumerate(part.processes()):
                if index > 0 and name not in self.processes:
                    self._start(part, name, port)
                while not self._ready(part, port):
                    self.check_alive()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not start; see {self.log_path(name)}")
                    time.sleep(0.1)

    def _ready(self, part: Part, port: int) -> bool:
        if part.name == "gateway":
            try:
                with urllib.request.urlopen(f"{self.gateway_url}/healthz", timeout=1) as answer:
                    return bool(answer.status == 200)
            except (urllib.error.URLError, OSError):
                return False
        with sync_channel(f"127.0.0.1:{port}") as channel:
            return serving_status(channel, timeout=1) == "SERVING"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode}; see {self.log_path(name)}"
                )

    def supervise(self) -> list[str]:
        """Restart the processes that have exited, each after its :class:`Backoff`; answer
        what happened, one sentence per exit or restart."""
        events = []
        now = time.monotonic()
        for part in self.parts:
            for name, port in part.processes():
                process = self.processes.get(name)
                if name in self._restart_at:
                    if now >= self._restart_at[name]:
                        del self._restart_at[name]
                        self._start(part, name, port)
                        events.append(f"{name} restarted (pid {self.processes[name].pid})")
                elif process is not None and process.poll() is not None:
                    backoff = self._backoffs.setdefault(name, dataclasses.replace(self._backoff))
                    delay = backoff.delay(now - self._started_at[name])
                    self._restart_at[name] = now + delay
                    events.append(
                        f"{name} exited with code {process.returncode}; restarting it in "
                        f"{delay:g} s (see {self.log_path(name)})"
                    )
        return events

    def load_demo(self, internal_token: str, *, cases: bool = True) -> None:
        """The demo hospitals, persons, keys and console accounts; with ``cases``, also the
        settlements, bill and application that show job 4 (benchmarks leave them out: their
        own events and figures must be the only ones)."""

        def channel(name: str) -> grpc.Channel:
            return sync_channel(f"127.0.0.1:{self.ports[name]}")

        with (
            channel("enrollment") as enrollment,
            channel("datashare") as datashare,
            channel("settlement") as settlement,
            channel("assistance") as assistance,
        ):
            today = bureau_day(datetime.now(UTC))  # the services date by Asia/Shanghai
            demo.load(
                enrollment=enrollment,
                datashare=datashare,
                settlement=settlement,
                internal_token=internal_token,
                year=today.year,
            )
            demo.load_certificate(enrollment=enrollment, internal_token=internal_token, today=today)
            demo.load_console_users(datashare=datashare, internal_token=internal_token)
            if not cases:
                return
            demo.load_cases(
                enrollment=enrollment,
                datashare=datashare,
                settlement=settlement,
                assistance=assistance,
                internal_token=internal_token,
                year=today.year,
                today=today,
            )

    def stop(self) -> None:
        """SIGTERM to each process, gateway first, then wait; SIGKILL what is left."""
        for part in reversed(self.parts):
            for name, _port in part.processes():
                process = self.processes.get(name)
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            if process.poll() is None:
                process.kill()
                process.wait()


class _Stop(Exception):
    pass


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def run(
    *, base_port: int, gateway_port: int, settlement_processes: int = 1, metrics_port: int = 0
) -> int:
    """Run until Ctrl-C (``metrics_port`` 0: no metrics); answer the exit code."""
    settings = ProcessSettings()
    platform = Platform(
        settings.data_dir,
        base_port,
        gateway_port,
        None,
        settlement_processes,
        metrics_port=metrics_port or None,
    )
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    print(f"doudi: starting the platform; data and logs in {platform.data_dir}", flush=True)
    try:
        platform.start()
        platform.wait_ready()
        platform.load_demo(settings.internal_token.get_secret_value())
        for part in platform.parts:
            for name, port in part.processes():
                pid = platform.processes[name].pid
                metrics = platform.metrics_ports.get(name)
                print(
                    f"  {name:<12} 127.0.0.1:{port:<6} pid {pid:<8} log {platform.log_path(name)}"
                    + ("" if metrics is None else f"  metrics http://127.0.0.1:{metrics}/metrics")
                )
        print(
            f"\ndoudi: the gateway is at {platform.gateway_url}  (API docs: {platform.gateway_url}/docs)"
        )
        print(
            f"doudi: the case workers' console is at {platform.gateway_url}/console/ (demo "
            f"accounts: {', '.join(demo.DEMO_CONSOLE_USERS)}, each with the password "
            "demo-<username>-pass; README.md lists what each role opens)"
        )
        print(
            "doudi: demo hospital key: demo-xixia-2 (see README.md); Ctrl-C stops everything",
            flush=True,
        )
        while True:
            for event in platform.supervise():
                print(f"doudi: {event}", flush=True)
            time.sleep(0.2)
    except _Stop:
        print("\ndoudi: stopping", flush=True)
        return 0
    except (RuntimeError, grpc.RpcError) as error:
        print(f"doudi: error: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        platform.stop()
        print("doudi: stopped", flush=True)
