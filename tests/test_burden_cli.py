"""``doudi burden`` and ``doudi bills``: the bureau reads a person's year and enters bills
paid outside the window (issue 18, items 2 and 8).

``python -m services.assistance`` runs as a real process on each backend (one per module
and backend, each test with persons of its own); ``doudi`` runs in this process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.core.identity import mask
from tests.services import INTERNAL
from tests.support import run_cli
from tests.test_assistance_bills import Assistance, bills_of, someone, year_of
from tests.test_assistance_bills import services as services  # the module's service
from tests.test_assistance_copies import period
from tests.test_assistance_intake import figures, record, stay

_events = iter(range(50_000, 60_000))


@pytest.fixture
def assistance(backend: str, services: Callable[[str], Assistance]) -> Assistance:
    return services(backend)


def bill_file(directory: Path, person: str, request_id: str, **changes: Any) -> Path:
    """A stay in Zhengzhou as a clerk writes it: 40,000 yuan, insurance paid 18,000 there,
    the person 22,000 (of it 5,000 out of scope under Xixia's pack)."""
    bill: dict[str, Any] = {
        "request_id": request_id,
        "person_id": person,
        "region": "411323",
        "hospital": "郑州大学第一附属医院",
        "visit": {
            "id": "ZZ-2026-0042",
            "type": "inpatient",
            "hospital_level": 3,
            "admitted": "2026-04-01",
            "discharged": "2026-04-20",
            "out_of_area": True,
            "items": [
                {"code": "BED", "class": "A", "amount_fen": 2_600_000},
                {
                    "code": "DRUG-B",
                    "class": "B",
                    "amount_fen": 1_100_000,
                    "over_limit_fen": 100_000,
                },
                {"code": "SELF", "class": "C", "amount_fen": 300_000},
            ],
        },
        "insurance_paid": [
            {"fund": "310100", "paid_fen": 1_500_000},
            {"fund": "390200", "paid_fen": 300_000},
        ],
        "self_pay_fen": 2_200_000,
    }
    bill.update(changes)
    path = directory / "bill.json"
    path.write_text(json.dumps(bill, ensure_ascii=False), encoding="utf-8")
    return path


def household(stub: Any, *members: tuple[str, str]) -> None:
    stub.RecordPersons(
        pb.RecordPersonsRequest(
            persons=[
                pb.InsuredPerson(
                    person_id=number,
                    version=1,
                    name=name,
                    household_id=f"H-{members[0][0][-6:]}",
                    region="411323",
                    years=[2026],
                )
                for number, name in members
            ]
        ),
        metadata=INTERNAL,
    )


def cli(assistance: Assistance, *argv: str) -> list[str]:
    return [*argv, "--assistance", assistance.address]


def test_burden_json_has_the_persons_and_the_households_figures(
    assistance: Assistance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head, spouse = someone(), someone()
    household(assistance.stub, (head, "张三"), (spouse, "王五"))
    event = next(_events)
    record(assistance.stub, stay(event, f"s-{event}", person=spouse))
    code, _out, err = run_cli(
        cli(assistance, "bills", "add", str(bill_file(tmp_path, head, "r1"))), capsys
    )
    assert code == 0, err

    code, out, err = run_cli(cli(assistance, "burden", head, "--year", "2026", "--json"), capsys)

    assert (code, err) == (0, "")
    found = json.loads(out)
    assert {
        key: found[key]
        for key in (
            "person_id",
            "household_id",
            "year",
            "total_fen",
            "personal_burden_fen",
            "eligible_burden_fen",
            "household_burden_fen",
        )
    } == {
        "person_id": head,
        "household_id": f"H-{head[-6:]}",
        "year": 2026,
        "total_fen": 4_000_000,
        "personal_burden_fen": 2_200_000,
        "eligible_burden_fen": 1_700_000,
        "household_burden_fen": 2_200_000 + 1_200_000,  # the bill and the spouse's stay
    }
    assert found["funds"] == [
        {"fund": "310100", "paid_fen": 1_500_000},
        {"fund": "390200", "paid_fen": 300_000},
    ]
    assert found["visits"]["inpatient"] == 1
    assert [(m["person_id"], m["personal_burden_fen"]) for m in found["members"]] == sorted(
        [(head, 2_200_000), (spouse, 1_200_000)]
    )


def test_burden_table_is_in_yuan_with_only_the_asked_number_in_full(
    assistance: Assistance, capsys: pytest.CaptureFixture[str]
) -> None:
    head, spouse = someone(), someone()
    household(assistance.stub, (head, "张三"), (spouse, "王五"))
    event = next(_events)
    record(assistance.stub, stay(event, f"s-{event}", person=head))
    assistance.stub.RecordPersonStatuses(
        pb.RecordPersonStatusesRequest(
            persons=[
                pb.PersonStatuses(
                    person_id=head, version=1, periods=[period(pb.STATUS_DIBAO, "2026-03-01")]
                )
            ]
        ),
        metadata=INTERNAL,
    )

    code, out, err = run_cli(cli(assistance, "burden", head, "--year", "2026"), capsys)

    assert (code, err) == (0, "")
    assert head in out
    assert spouse not in out
    assert mask(spouse) in out
    assert "50,000.00" in out  # the stay's total
    assert "12,000.00" in out  # its self-pay: the personal burden, and the household's
    assert "7,000.00" in out  # the in-scope part
    assert "低保" in out


def test_bills_add_twice_records_once_and_lists(
    assistance: Assistance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    person = someone()
    path = bill_file(tmp_path, person, f"twice-{person}")
    code, out, err = run_cli(cli(assistance, "bills", "add", str(path)), capsys)
    assert code == 0, err
    assert "recorded" in out
    assert "already" not in out
    assert "enrollment has not sent" in err  # recorded all the same, and the clerk is told
    assert person not in err
    for yuan in ("40,000.00", "18,000.00", "22,000.00", "17,000.00"):
        assert yuan in out

    code, out, err = run_cli(cli(assistance, "bills", "add", str(path), "--json"), capsys)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["recorded"] is False
    assert (answer["bill"]["total_fen"], answer["bill"]["eligible_burden_fen"]) == (
        4_000_000,
        1_700_000,
    )
    assert figures(year_of(assistance.stub, person).burden)[0] == 4_000_000

    code, out, err = run_cli(cli(assistance, "bills", "list", "--person", person, "--json"), capsys)
    assert code == 0, err
    [listed] = json.loads(out)
    assert listed == answer["bill"]
    code, out, err = run_cli(
        cli(assistance, "bills", "list", "--region", "411323", "--year", "2026"), capsys
    )
    assert code == 0, err
    assert mask(person) in out
    assert person not in out


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"self_pay_fen": 2_199_999}, "bill.self_pay_fen"),  # the service checks the sums
        ({"self_pay_fen": -1}, "self_pay_fen"),
        ({"hospital": ""}, "bill.hospital_name"),
        ({"region": "999999"}, "bill.region"),
        ({"insurance_paid": [{"fund": "310100"}]}, "insurance_paid[0]"),
        (
            {
                "visit": {
                    "id": "v",
                    "type": "inpatient",
                    "hospital_level": 3,
                    "admitted": "2026-04-01",
                    "discharged": "2026-04-20",
                    "items": [{"code": "X", "class": "A", "amount_fen": -5}],
                }
            },
            "visit.items[0].amount_fen",
        ),
        ({"paid": 1}, "paid"),
    ],
)
def test_a_bad_bill_file_exits_2_naming_the_field_and_records_nothing(
    assistance: Assistance,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
    field: str,
) -> None:
    person = someone()
    path = bill_file(tmp_path, person, f"bad-{person}", **changes)

    code, out, err = run_cli(cli(assistance, "bills", "add", str(path)), capsys)

    assert (code, out) == (2, "")
    assert err.startswith("doudi: error: ")
    assert err.count("\n") == 1
    assert field in err
    assert person not in err
    assert bills_of(assistance.stub, person_id=person) == []
    assert figures(year_of(assistance.stub, person).burden) == (0, 0, 0, 0, 0, 0)


def test_bad_command_lines_exit_2_and_an_unreachable_service_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    person = someone()
    for argv, field in (
        (["burden", "411323", "--year", "2026"], "PERSON_ID"),
        (["burden", person, "--year", "1900"], "--year"),
        (["bills", "list"], "--person"),
        (["bills", "list", "--region", "411323"], "--year"),
    ):
        code, out, err = run_cli([*argv, "--assistance", "127.0.0.1:1"], capsys)
        assert (code, out) == (2, ""), argv
        assert field in err
    code, out, err = run_cli(
        ["burden", person, "--year", "2026", "--assistance", "127.0.0.1:1"], capsys
    )
    assert (code, out) == (1, "")
    assert "127.0.0.1:1 could not be reached" in err
