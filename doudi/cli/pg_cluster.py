"""A throwaway PostgreSQL cluster on this machine, for the benchmarks and the fault tests.

Debian's server (``/usr/lib/postgresql/<version>/bin``, the newest) in a temporary
directory, on a free port of 127.0.0.1, trusted locally; run as the ``postgres`` user
when we are root (the server refuses root). It can be restarted, or killed and started
again, in the middle of a test: its data stays until :meth:`Cluster.remove`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from doudi.cli.launcher import free_ports


class Cluster:
    def __init__(self, options: str = "-c max_connections=200 -c shared_buffers=256MB") -> None:
        bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
        if not bindirs:
            raise RuntimeError("no PostgreSQL server: install Debian's postgresql")
        self.bindir = bindirs[0]
        self.work = Path(tempfile.mkdtemp(prefix="doudi-pg-"))
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.work, "postgres")
        self.port = free_ports(1)[0]
        self.data = self.work / "data"
        self._options = f"-h 127.0.0.1 -p {self.port} -k {self.work} {options}"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust")

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        log = str(self.work / "log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "start", "-o", self._options)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (sessions ended, a clean shutdown) or ``immediate``
        (as a crash: recovery from the WAL at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def _run(self, program: str, *arguments: str, check: bool = True) -> None:
        subprocess.run(
            [*self._as_postgres, str(self.bindir / program), *arguments],
            check=check,
            stdout=subprocess.DEVNULL,
            cwd=self.work,
        )


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A started cluster, removed afterwards."""
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
