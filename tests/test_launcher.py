"""``doudi run`` (what ``make run`` starts): the whole platform on SQLite, with the demo data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import grpc
import httpx
import pytest

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.cli import demo
from doudi.cli.launcher import Backoff, free_ports
from doudi.common.protos import from_date
from doudi.common.settings import LOCAL_INTERNAL_TOKEN
from doudi.core.identity import parse_resident_id
from doudi.core.money import apply_ratio
from doudi.core.packs import PackRegistry, personal_account_rules
from doudi.enrollment.v1 import enrollment_pb2
from doudi.enrollment.v1.enrollment_pb2_grpc import EnrollmentServiceStub
from doudi.settlement.v1 import settlement_pb2
from doudi.settlement.v1.settlement_pb2_grpc import SettlementServiceStub
from tests.services import INTERNAL, ROOT
from tests.support import demo_bill


class DoudiRun:
    """``doudi run`` as a subprocess, its output read line by line."""

    def __init__(
        self, data_dir: Path, settlement_processes: int, extra_env: dict[str, str] | None = None
    ) -> None:
        # The services on base onwards (settlement's further processes after assistance's),
        # the gateway after them, then each process's metrics port.
        base = free_ports(5 + settlement_processes + 4 + settlement_processes)[0]
        self.base_port = base
        self.gateway_url = f"http://127.0.0.1:{base + 4 + settlement_processes}"
        self.metrics_port = base + 5 + settlement_processes
        env = {key: value for key, value in os.environ.items() if not key.startswith("DOUDI_")}
        env.update(DOUDI_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **(extra_env or {}))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "doudi",
                "run",
                "--base-port",
                str(base),
                "--port",
                self.gateway_url.rsplit(":", 1)[1],
                "--settlement-processes",
                str(settlement_processes),
                "--metrics-port",
                str(self.metrics_port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first line from now on that matches ``pattern``."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            line = self.process.stdout.readline()
            assert line or self.process.poll() is None, self.output()
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
            assert time.monotonic() < deadline, self.output()

    def output(self) -> str:
        return "".join(self.lines)

    def pids(self) -> dict[str, int]:
        """Each process's pid, as the start-up table printed them."""
        return {
            found.group(1): int(found.group(2))
            for found in re.finditer(r"^  (\S+) +127\.0\.0\.1:\d+ +pid (\d+)", self.output(), re.M)
        }

    def interrupt(self) -> str:
        """Ctrl-C; answer the rest of the output once it has exited."""
        self.process.send_signal(signal.SIGINT)
        rest, _ = self.process.communicate(timeout=60)
        self.lines.append(rest)
        return rest


def settle_demo(url: str, key: str, timeout: float = 30) -> httpx.Response:
    """Settle a stay of the demo's registered-poor person at the demo level-2 hospital."""
    return httpx.post(
        f"{url}/v1/settlements",
        headers={"Authorization": f"Bearer {demo.HOSPITALS[0].api_key}", "Idempotency-Key": key},
        json=demo_bill(key),
        timeout=timeout,
    )


def test_doudi_run_serves_the_demo_hospital_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    # Two settlement processes (the second on base + 4), the gateway after them.
    # At DEBUG, where each settlement is logged, to see that both processes settled.
    run = DoudiRun(tmp_path / "var", settlement_processes=2, extra_env={"DOUDI_LOG_LEVEL": "DEBUG"})
    try:
        url = run.wait_for(r"the gateway is at (\S+)").group(1)
        assert url == run.gateway_url

        answers = [settle_demo(url, f"run-{number}") for number in range(4)]
        assert [answer.status_code for answer in answers] == [201] * 4, answers[0].text
        # The demo person is registered poor: all five Xixia layers run, as in docs/case-format.md.
        assert [layer["paid_fen"] for layer in answers[0].json()["layers"]] == [
            3960000,
            0,
            280000,
            448000,
            218400,
        ]
        # The gateway balanced the settlements over both processes, on the one database.
        logs = tmp_path / "var" / "log"
        for name in ("settlement.log", "settlement-2.log"):
            assert "settled " in (logs / name).read_text(), name
        # Each process serves its metrics where the start-up table says, on a port of its own.
        metrics = dict(re.findall(r"^  (\S+) .* metrics (http://\S+)$", run.output(), re.M))
        assert sorted(metrics) == sorted(run.pids())
        assert len(set(metrics.values())) == len(metrics)
        for name, address in metrics.items():
            answer = httpx.get(address, timeout=10)
            assert answer.status_code == 200, name
            counted = "doudi_http_requests_total" if name == "gateway" else "doudi_grpc_server"
            assert counted in answer.text, name
        # The console is where it says, and a demo account logs in to its dashboard.
        console = run.wait_for(r"the case workers' console is at (\S+)").group(1)
        assert console == f"{url}/console/"
        with httpx.Client(base_url=console, timeout=30) as browser:
            form = browser.get("login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            logged_in = browser.post(
                "login",
                data={
                    "username": "caseworker",
                    "password": demo.DEMO_CONSOLE_USERS["caseworker"].password,
                    "csrf_token": token.group(1),
                },
            )
            assert logged_in.status_code == 303
            home = browser.get(url + logged_in.headers["location"])
            assert home.status_code == 200
            assert "总览" in home.text
    finally:
        output = run.interrupt()
    assert run.process.returncode == 0, run.output()
    assert "doudi: stopped" in output
    assert sorted(path.name for path in (tmp_path / "var").glob("*.db")) == [
        "assistance.db",
        "datashare.db",
        "enrollment.db",
        "settlement.db",
    ]


def test_doudi_run_restarts_a_crashed_service_with_backoff_and_settles_again(
    tmp_path: Path,
) -> None:
    run = DoudiRun(tmp_path / "var", settlement_processes=1)
    pids: dict[str, int] = {}
    try:
        url = run.wait_for(r"the gateway is at (\S+)").group(1)
        assert settle_demo(url, "before").status_code == 201
        pids = run.pids()
        assert set(pids) == {"enrollment", "datashare", "settlement", "assistance", "gateway"}

        os.kill(pids["settlement"], signal.SIGKILL)
        run.wait_for(r"settlement exited with code -9; restarting it in 1 s")
        again = int(run.wait_for(r"settlement restarted \(pid (\d+)\)").group(1))
        assert again != pids["settlement"]
        # The gateway waits for it (within its timeout): the hospital settles as before.
        after = settle_demo(url, "after")
        assert after.status_code == 201, after.text
        assert after.json()["layers"][0]["paid_fen"] > 0

        # Crashed again soon after: twice the wait.
        os.kill(again, signal.SIGKILL)
        run.wait_for(r"settlement exited with code -9; restarting it in 2 s")
        pids["settlement"] = int(run.wait_for(r"settlement restarted \(pid (\d+)\)").group(1))
        assert settle_demo(url, "after-again").status_code == 201
        # The other processes ran on throughout.
        for name in ("enrollment", "datashare", "assistance", "gateway"):
            os.kill(pids[name], 0)
    finally:
        output = run.interrupt()
    assert run.process.returncode == 0, run.output()
    assert "doudi: stopped" in output
    for pid in pids.values():  # every process stopped, the restarted settlement too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    """Wait until ``check()`` holds (what settlement's outbox sends arrives a moment later)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never held"
        time.sleep(0.2)


def test_the_demo_cases_show_a_warning_a_secondary_amount_a_bill_and_an_open_application(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Valid numbers (check digit), a woman and a man as the names say.
    assert [parse_resident_id(p.person_id).sex for p in demo.CASE_PERSONS] == ["female", "male"]
    year = date.today().year
    run = DoudiRun(tmp_path / "var", settlement_processes=1)
    try:
        run.wait_for(r"the gateway is at (\S+)")
        # enrollment, datashare, settlement, assistance from the base port on.
        channels = {
            name: grpc.insecure_channel(f"127.0.0.1:{run.base_port + index}")
            for index, name in enumerate(("enrollment", "datashare", "settlement", "assistance"))
        }
        assistance = AssistanceServiceStub(channels["assistance"])

        def bills() -> list[tuple[str, bool]]:
            answer = assistance.ListBills(
                pb.ListBillsRequest(region="411323", year=year), metadata=INTERNAL
            )
            return [(bill.person_id, bill.visit.out_of_area) for bill in answer.bills]

        def applications() -> list[pb.Application]:
            answer = assistance.ListApplications(
                pb.ListApplicationsRequest(region="411323"), metadata=INTERNAL
            )
            return list(answer.applications)

        # `doudi run` loaded them before it printed the gateway's address.
        assert bills() == [(demo.RECIPIENT.person_id, True)]
        assert [a.person_id for a in applications()] == [demo.WARNED.person_id]
        # Loaded again, as at a restart the same day (every call answers the stored record)
        # and on another (the stays dated 3 January, the application accepted that day: the
        # request ids are taken, so the records are there).
        for today in (date.today(), date(year, 1, 3)):
            demo.load_cases(**channels, internal_token=LOCAL_INTERNAL_TOKEN, year=year, today=today)

        def warned() -> list[pb.Warning]:
            answer = assistance.ListWarnings(
                pb.ListWarningsRequest(region="411323", year=year), metadata=INTERNAL
            )
            return list(answer.warnings)

        eventually(lambda: bool(warned()))
        warnings = warned()
        assert [(w.household_id, w.kind) for w in warnings] == [
            (demo.WARNED.household_id, pb.WARNING_KIND_IMPOVERISHMENT)
        ]
        assert warnings[0].burden_fen > warnings[0].threshold_fen

        runs = iter(range(1000))

        def owed() -> dict[str, int]:
            """A new secondary run's amounts to pay by person (once the stay has arrived)."""
            created = assistance.CreateSecondaryRun(
                pb.CreateSecondaryRunRequest(
                    request_id=f"test-run-{next(runs)}",
                    region="411323",
                    year=year,
                    through=from_date(date.today()),
                    case_worker="王芳",
                ),
                metadata=INTERNAL,
            ).run
            entries = assistance.ListSecondaryRunEntries(
                pb.ListSecondaryRunEntriesRequest(run_id=created.run_id), metadata=INTERNAL
            ).entries
            return {entry.person_id: entry.to_pay_fen for entry in entries}

        eventually(lambda: owed().get(demo.RECIPIENT.person_id, 0) > 0)

        # Each once, the stay settled once: loading again changed nothing.
        assert bills() == [(demo.RECIPIENT.person_id, True)]
        accepted = applications()
        assert [(a.person_id, a.state) for a in accepted] == [
            (demo.WARNED.person_id, pb.APPLICATION_STATE_ACCEPTED)
        ]
        assert [d.name for d in accepted[0].missing_documents] == ["住院病历"]
        visits = {
            person.name: assistance.GetBurden(
                pb.GetBurdenRequest(person_id=person.person_id, year=year), metadata=INTERNAL
            ).burden.inpatient_visits
            for person in demo.CASE_PERSONS
        }
        assert visits == {demo.WARNED.name: 1, demo.RECIPIENT.name: 2}  # his stay and his bill

        # Assistance not answering: the loader says so and goes on (the start does not fail).
        with grpc.insecure_channel(f"127.0.0.1:{free_ports(1)[0]}") as nobody:
            demo.load_cases(
                **{**channels, "assistance": nobody},
                internal_token=LOCAL_INTERNAL_TOKEN,
                year=year,
                today=date.today(),
            )
        assert "entered at the next start" in capsys.readouterr().err
        for channel in channels.values():
            channel.close()
    finally:
        run.interrupt()
    assert run.process.returncode == 0, run.output()


def test_the_demo_accounts_and_certificate_are_made_once_whatever_the_starts(
    tmp_path: Path,
) -> None:
    """The employees' accounts credited once for the year and 李桂兰's certificate made
    once, loaded again as at a restart the same day and as on a start of a day a month
    earlier (its application's request id taken by another day's: it is there)."""
    year = date.today().year
    run = DoudiRun(tmp_path / "var", settlement_processes=1)
    try:
        run.wait_for(r"the gateway is at (\S+)")
        channels = {
            name: grpc.insecure_channel(f"127.0.0.1:{run.base_port + index}")
            for index, name in enumerate(("enrollment", "datashare", "settlement"))
        }
        settlement = SettlementServiceStub(channels["settlement"])
        enrollment = EnrollmentServiceStub(channels["enrollment"])

        def made() -> tuple[dict[str, tuple[int, int]], list[tuple[str, str, int]]]:
            """Each demo account's balance and movements; 李桂兰's certificates."""
            accounts = {}
            for person in demo.ACCOUNT_CREDITS:
                answer = settlement.GetPersonalAccount(
                    settlement_pb2.GetPersonalAccountRequest(
                        person_id=person.person_id, page_size=100
                    ),
                    metadata=INTERNAL,
                )
                accounts[person.name] = (answer.account.balance_fen, len(answer.movements))
            certificates = enrollment.ListCertificates(
                enrollment_pb2.ListCertificatesRequest(person_id=demo.NEIGHBOUR.person_id),
                metadata=INTERNAL,
            ).certificates
            return accounts, [(c.disease, c.disease_name, c.valid_from.year) for c in certificates]

        before = made()
        tianjin = demo.ACCOUNT_CREDITS[demo.TIANJIN_EMPLOYEE]
        rules = personal_account_rules(PackRegistry.load().get("tianjin-2017"))  # type: ignore[arg-type]
        assert rules is not None
        assert rules.card_share is not None
        card_later = apply_ratio(tianjin, rules.card_share)  # to the card month by month
        assert before[0] == {
            demo.TIANJIN_EMPLOYEE.name: (tianjin - card_later, 1),
            demo.LINZHI_EMPLOYEE.name: (demo.ACCOUNT_CREDITS[demo.LINZHI_EMPLOYEE], 1),
        }
        assert [disease for disease, _name, _year in before[1]] == ["hypertension"]
        for today in (date.today(), date.today() - timedelta(days=31)):
            demo.load(**channels, internal_token=LOCAL_INTERNAL_TOKEN, year=year)
            demo.load_certificate(
                enrollment=channels["enrollment"], internal_token=LOCAL_INTERNAL_TOKEN, today=today
            )
        assert made() == before
        for channel in channels.values():
            channel.close()
    finally:
        run.interrupt()
    assert run.process.returncode == 0, run.output()


@pytest.mark.parametrize(
    ("runs", "delays"),
    [
        pytest.param([0.5] * 8, [1, 2, 4, 8, 16, 30, 30, 30], id="crash-looping: doubled, capped"),
        pytest.param([0.5, 0.5, 0.5, 61, 0.5], [1, 2, 4, 1, 2], id="reset once it stayed up"),
        pytest.param([120], [1], id="first crash after a long run"),
    ],
)
def test_a_crashed_process_waits_longer_each_time_until_it_stays_up(
    runs: list[float], delays: list[float]
) -> None:
    backoff = Backoff()
    assert [backoff.delay(up_for) for up_for in runs] == delays
