"""``doudi run`` (what ``make run`` starts): the whole platform on SQLite, with the demo data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx

from doudi.cli import demo
from doudi.cli.launcher import free_ports
from tests.services import ROOT


def test_doudi_run_serves_the_demo_hospital_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    # Two settlement processes (the second on base + 4), the gateway after them.
    base = free_ports(6)[0]
    gateway = base + 5
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOUDI_")}
    env.update(DOUDI_DATA_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "doudi",
            "run",
            "--base-port",
            str(base),
            "--port",
            str(gateway),
            "--settlement-processes",
            "2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("the gateway is at" in line for line in lines):
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)
        url = f"http://127.0.0.1:{gateway}"
        assert f"the gateway is at {url}" in "".join(lines)

        hospital = demo.HOSPITALS[0]
        answers = [
            httpx.post(
                f"{url}/v1/settlements",
                headers={
                    "Authorization": f"Bearer {hospital.api_key}",
                    "Idempotency-Key": f"run-{number}",
                },
                json={
                    "person_id": demo.REGISTERED_POOR.person_id,
                    "visit": {
                        "id": f"run-{number}",
                        "type": "inpatient",
                        "admitted": f"{date.today().year}-01-02",
                        "discharged": f"{date.today().year}-01-05",
                        "items": [{"code": "X01", "class": "A", "amount_fen": 5000000}],
                    },
                },
                timeout=30,
            )
            for number in range(4)
        ]
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
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(lines) + output
    assert "doudi: stopped" in output
    assert sorted(path.name for path in (tmp_path / "var").glob("*.db")) == [
        "assistance.db",
        "datashare.db",
        "enrollment.db",
        "settlement.db",
    ]
