"""What several test modules share: the worked example, identity numbers, the business
day, running the CLI, reading the gateway's problems."""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from stdnum.cn import ric

from doudi.cli import demo
from doudi.cli.main import main
from gateway.schemas import ProblemRead

ROOT = Path(__file__).resolve().parent.parent
PROBLEM_JSON = "application/problem+json"

_WORKED = json.loads((ROOT / "examples" / "xixia-inpatient-level2.case.json").read_text("utf-8"))


def worked_case() -> dict[str, Any]:
    """A fresh copy of docs/case-format.md's worked example (Xixia, level 2, 50,000 yuan, registered poor)."""
    return copy.deepcopy(_WORKED)


def with_check_digit(first17: str) -> str:
    """Complete 17 characters with their right check digit (calc_check_digit ignores the 18th)."""
    return first17 + ric.calc_check_digit(first17 + "X")


def business_day() -> datetime.date:
    """Today on the bureau's calendar (Asia/Shanghai): settlements are dated and cleared by
    it, and from 16:00 UTC it is already tomorrow there."""
    return datetime.datetime.now(ZoneInfo("Asia/Shanghai")).date()


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``doudi`` in this process: exit code, stdout, stderr."""
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def provenance(node: Any) -> Iterator[tuple[str, str]]:
    """Every (kind, text) of ``source`` and ``assumed`` anywhere in a pack document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("source", "assumed") and isinstance(value, str):
                yield key, value
            else:
                yield from provenance(value)
    elif isinstance(node, list):
        for value in node:
            yield from provenance(value)


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The gateway's problem+json answer, checked against its schema."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = answer.json()
    ProblemRead.model_validate(body)
    assert body["status"] == status
    return body


def fields(body: dict[str, Any]) -> list[str]:
    """The fields a problem names."""
    return [error["field"] for error in body.get("errors", [])]


def demo_bill(visit_id: str) -> dict[str, Any]:
    """A stay of the demo's registered-poor person this year (at a demo hospital, whose key
    sends it), visit ``visit_id``: every Xixia layer pays."""
    year = datetime.date.today().year
    return {
        "person_id": demo.REGISTERED_POOR.person_id,
        "visit": {
            "id": visit_id,
            "type": "inpatient",
            "admitted": f"{year}-01-02",
            "discharged": f"{year}-01-05",
            "items": [{"code": "X01", "class": "A", "amount_fen": 5000000}],
        },
    }
