"""``doudi run``: the whole platform on one machine, on the embedded default (SQLite).

Starts the four gRPC services and the gateway as child processes, each with
its own SQLite file and log under the data directory (``var/`` or
``DOUDI_DATA_DIR``), loads the demo data, prints the gateway's URL, and on
Ctrl-C (or SIGTERM) stops every process gracefully. If any process dies, the
others are stopped too and the command fails, naming its log.

In production each process runs on its own (a Kubernetes Deployment per
service, PostgreSQL for the databases): see deploy/.
"""

from __future__ import annotations

import contextlib
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
from datetime import date
from pathlib import Path
from types import FrameType

import grpc

from doudi import demo
from doudi.common.grpc_client import serving_status
from doudi.common.settings import ProcessSettings

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Part:
    name: str
    module: str
    port: int
    peers: tuple[str, ...] = ()


def parts(base_port: int, gateway_port: int) -> tuple[Part, ...]:
    services = ("enrollment", "datashare", "settlement", "assistance")
    ports = {name: base_port + index for index, name in enumerate(services)}
    return (
        Part("enrollment", "services.enrollment", ports["enrollment"], ("settlement",)),
        Part("datashare", "services.datashare", ports["datashare"], ("settlement",)),
        Part("settlement", "services.settlement", ports["settlement"]),
        Part("assistance", "services.assistance", ports["assistance"]),
        Part("gateway", "gateway", gateway_port, services),
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
    database other than its SQLite file (the benchmarks run it on PostgreSQL)."""

    def __init__(
        self,
        data_dir: Path,
        base_port: int,
        gateway_port: int,
        database_urls: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.database_urls = dict(database_urls or {})
        self.parts = parts(base_port, gateway_port)
        self.ports = {part.name: part.port for part in self.parts}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        (self.data_dir / "log").mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.data_dir / "log" / f"{name}.log"

    def start(self) -> None:
        for part in self.parts:
            env = dict(os.environ)
            env.update(
                DOUDI_DATA_DIR=str(self.data_dir),
                DOUDI_PORT=str(part.port),
                PYTHONUNBUFFERED="1",
            )
            env.pop("DOUDI_PORT_FILE", None)
            env.pop("DOUDI_DATABASE_URL", None)  # by default each service its own SQLite file
            if part.name in self.database_urls:
                env["DOUDI_DATABASE_URL"] = self.database_urls[part.name]
            for peer in part.peers:
                env[f"DOUDI_{peer.upper()}_ADDRESS"] = f"127.0.0.1:{self.ports[peer]}"
            with self.log_path(part.name).open("ab") as log:
                self.processes[part.name] = subprocess.Popen(
                    [sys.executable, "-m", part.module],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches only us; we stop them in order
                )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for part in self.parts:
            while not self._ready(part):
                self.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{part.name} did not start; see {self.log_path(part.name)}")
                time.sleep(0.1)

    def _ready(self, part: Part) -> bool:
        if part.name == "gateway":
            try:
                with urllib.request.urlopen(f"{self.gateway_url}/healthz", timeout=1) as answer:
                    return bool(answer.status == 200)
            except (urllib.error.URLError, OSError):
                return False
        with grpc.insecure_channel(f"127.0.0.1:{part.port}") as channel:
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

    def load_demo(self, internal_token: str) -> None:
        def channel(name: str) -> grpc.Channel:
            return grpc.insecure_channel(f"127.0.0.1:{self.ports[name]}")

        with (
            channel("enrollment") as enrollment,
            channel("datashare") as datashare,
            channel("settlement") as settlement,
        ):
            demo.load(
                enrollment=enrollment,
                datashare=datashare,
                settlement=settlement,
                internal_token=internal_token,
                year=date.today().year,
            )

    def stop(self) -> None:
        """SIGTERM to each process, gateway first, then wait; SIGKILL what is left."""
        for part in reversed(self.parts):
            process = self.processes.get(part.name)
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


def run(*, base_port: int, gateway_port: int) -> int:
    """Run until Ctrl-C; answer the exit code."""
    settings = ProcessSettings()
    platform = Platform(settings.data_dir, base_port, gateway_port)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    print(f"doudi: starting the platform; data and logs in {platform.data_dir}", flush=True)
    try:
        platform.start()
        platform.wait_ready()
        platform.load_demo(settings.internal_token.get_secret_value())
        for part in platform.parts:
            print(f"  {part.name:<11} 127.0.0.1:{part.port:<6} log {platform.log_path(part.name)}")
        print(
            f"\ndoudi: the gateway is at {platform.gateway_url}  (API docs: {platform.gateway_url}/docs)"
        )
        print(
            "doudi: demo hospital key: demo-xixia-2 (see README.md); Ctrl-C stops everything",
            flush=True,
        )
        while True:
            platform.check_alive()
            time.sleep(0.5)
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
