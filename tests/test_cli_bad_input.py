"""`doudi calc` on bad input: exit code 2, nothing on stdout, one line on stderr naming the field.

Every case starts from the worked example of docs/case-format.md
(examples/xixia-inpatient-level2.case.json) and breaks one thing.
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, run_cli, with_check_digit, worked_case

GOOD_CASE: dict[str, Any] = worked_case()

# What each layer pays in the worked example (docs/case-format.md), in fen.
WORKED_EXAMPLE_PAID = {
    "basic": 3960000,
    "critical_illness": 0,
    "supplementary_critical_illness": 280000,
    "insurance_assistance": 448000,
    "medical_assistance": 218400,
}


# -- building broken cases -----------------------------------------------------

Mutation = Callable[[dict[str, Any]], str]
"""Takes a fresh copy of GOOD_CASE and returns the text of the case file."""


def _parent(case: dict[str, Any], path: tuple[Any, ...]) -> Any:
    node: Any = case
    for key in path[:-1]:
        node = node[key]
    return node


def set_at(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(case: dict[str, Any]) -> str:
        _parent(case, path)[path[-1]] = value
        return json.dumps(case, ensure_ascii=False)

    return mutate


def drop(path: tuple[Any, ...]) -> Mutation:
    def mutate(case: dict[str, Any]) -> str:
        del _parent(case, path)[path[-1]]
        return json.dumps(case, ensure_ascii=False)

    return mutate


def set_many(*changes: tuple[tuple[Any, ...], Any]) -> Mutation:
    def mutate(case: dict[str, Any]) -> str:
        for path, value in changes:
            _parent(case, path)[path[-1]] = value
        return json.dumps(case, ensure_ascii=False)

    return mutate


def second_visit(**fields: Any) -> Mutation:
    """Append a copy of the first visit with ``fields`` changed."""

    def mutate(case: dict[str, Any]) -> str:
        visit = copy.deepcopy(case["visits"][0])
        visit.update(fields)
        case["visits"].append(visit)
        return json.dumps(case, ensure_ascii=False)

    return mutate


def truncated(case: dict[str, Any]) -> str:
    text = json.dumps(case, indent=2)
    return text[: len(text) // 2]


def raw_person_key(key: str) -> Mutation:
    """A person with an extra field whose name is ``key`` (written raw into the JSON)."""

    def mutate(case: dict[str, Any]) -> str:
        case["person"][key] = "x"
        return json.dumps(case, ensure_ascii=False)

    return mutate


def _certificate(**changes: Any) -> dict[str, Any]:
    """A chronic certificate for diabetes valid over the worked example's stay, changed."""
    certificate: dict[str, Any] = {"disease": "diabetes", "from": "2017-01-01", "to": "2019-12-31"}
    certificate.update(changes)
    return certificate


def _registration(**changes: Any) -> dict[str, Any]:
    registration: dict[str, Any] = {
        "kind": "referred",
        "region": "320100",
        "from": "2017-01-01",
        "to": None,
    }
    registration.update(changes)
    return registration


NEXT_YEAR = date.today().year + 1
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_ID = GOOD_CASE["person"]["id"]

BAD_CASES = [
    # -- the identity number
    pytest.param(
        set_at(("person", "id"), "411323195003150015"),
        "person.id",
        "check digit",
        id="id-wrong-check-digit",
    ),
    pytest.param(
        set_at(("person", "id"), "41132319500315001"),
        "person.id",
        "18 characters",
        id="id-17-characters",
    ),
    pytest.param(
        set_at(("person", "id"), "4113231950031500145"),
        "person.id",
        "18 characters",
        id="id-19-characters",
    ),
    pytest.param(
        set_at(("person", "id"), with_check_digit("99132319500315001")),
        "person.id",
        "province prefix",
        id="id-unknown-province-prefix",
    ),
    pytest.param(
        set_at(("person", "id"), with_check_digit("41132319500230001")),
        "person.id",
        "not a real date",
        id="id-birth-date-19500230",
    ),
    pytest.param(
        set_at(("person", "id"), with_check_digit(f"411323{NEXT_YEAR}0101001")),
        "person.id",
        "in the future",
        id="id-birth-date-in-the-future",
    ),
    pytest.param(
        set_at(("person", "id"), int(_ID)),
        "person.id",
        "string",
        id="id-as-a-json-number",
    ),
    pytest.param(
        set_at(("person", "id"), _ID[:2] + _ID[2:17].translate(_ARABIC_INDIC) + _ID[17]),
        "person.id",
        "invalid identity number",
        id="id-with-non-ascii-digits",
    ),
    # -- vocabularies
    pytest.param(
        set_at(("policy",), "nowhere-2017"),
        "policy",
        "unknown policy pack",
        id="unknown-policy",
    ),
    pytest.param(
        set_at(("person", "statuses", 0, "code"), "rich"),
        "person.statuses[0].code",
        "unknown status",
        id="unknown-status-code",
    ),
    pytest.param(
        set_at(("visits", 0, "type"), "spa_stay"),
        "visits[0].type",
        "unknown visit type",
        id="unknown-visit-type",
    ),
    pytest.param(
        set_at(("visits", 0, "items", 0, "class"), "D"),
        "visits[0].items[0].class",
        "unknown item class",
        id="unknown-item-class",
    ),
    pytest.param(
        set_at(("person", "scheme"), "employee"),
        "person.employment",
        "required for employees",
        id="employee-without-employment",
    ),
    # -- amounts
    pytest.param(
        set_at(("visits", 0, "items", 0, "amount_fen"), -1),
        "visits[0].items[0].amount_fen",
        "negative",
        id="negative-amount",
    ),
    pytest.param(
        set_at(("visits", 0, "items", 0, "over_limit_fen"), -1),
        "visits[0].items[0].over_limit_fen",
        "negative",
        id="negative-over-limit",
    ),
    pytest.param(
        set_at(("visits", 0, "items", 0, "over_limit_fen"), 5000001),
        "visits[0].items[0].over_limit_fen",
        "above the item's amount",
        id="over-limit-above-amount",
    ),
    pytest.param(
        set_at(("visits", 0, "items", 0, "amount_fen"), 100.5),
        "visits[0].items[0].amount_fen",
        "whole number of fen",
        id="amount-as-float",
    ),
    pytest.param(
        set_at(("visits", 0, "items", 0, "amount_fen"), 100.0),
        "visits[0].items[0].amount_fen",
        "decimal point",
        id="amount-as-float-with-zero-fraction",
    ),
    pytest.param(
        set_at(("visits", 0, "items", 0, "amount_fen"), "5000000"),
        "visits[0].items[0].amount_fen",
        "whole number of fen",
        id="amount-as-string",
    ),
    # -- dates and order
    pytest.param(
        set_at(("visits", 0, "discharged"), "2017-07-31"),
        "visits[0].discharged",
        "before admission",
        id="discharge-before-admission",
    ),
    pytest.param(
        second_visit(id="v2", admitted="2017-07-01", discharged="2017-07-05"),
        "visits[1].discharged",
        "out of order",
        id="visits-out-of-order",
    ),
    pytest.param(
        second_visit(admitted="2017-09-01", discharged="2017-09-05"),
        "visits[1].id",
        "used twice",
        id="duplicate-visit-id",
    ),
    pytest.param(
        set_many(
            (("visits", 0, "admitted"), "2016-12-20"), (("visits", 0, "discharged"), "2016-12-31")
        ),
        "visits[0].discharged",
        "before xixia-2017 takes effect",
        id="visit-before-pack-takes-effect",
    ),
    pytest.param(
        set_at(("visits", 0, "discharged"), "2017-02-30"),
        "visits[0].discharged",
        "not a real calendar date",
        id="discharge-not-a-real-date",
    ),
    pytest.param(
        set_at(("history",), {"outpatient_cost_fen": {"2017": 80000}}),
        "history.outpatient_cost_fen.2017",
        "before the first visit",
        id="history-year-of-first-visit",
    ),
    pytest.param(
        set_at(("history",), {"outpatient_cost_fen": {"2018": 80000}}),
        "history.outpatient_cost_fen.2018",
        "before the first visit",
        id="history-year-after-first-visit",
    ),
    # -- certificates (门诊慢特病) and registrations (异地安置 / 转诊备案)
    pytest.param(
        set_at(("person", "certificates"), [_certificate(disease="gout")]),
        "person.certificates[0].disease",
        "not a certified disease of xixia-2017: 'gout' (known: hypertension, diabetes",
        id="certificate-unknown-disease",
    ),
    pytest.param(
        set_at(("person", "certificates"), [_certificate(to="2016-12-31")]),
        "person.certificates[0].to",
        "ends before it starts",
        id="certificate-ending-before-it-starts",
    ),
    pytest.param(
        set_at(("person", "certificates"), [{"disease": "diabetes", "from": "2017-01-01"}]),
        "person.certificates[0].to",
        "missing required field",
        id="certificate-without-end",
    ),
    pytest.param(
        set_at(("person", "certificates"), [_certificate(), _certificate(to="2017-02-30")]),
        "person.certificates[1].to",
        "not a real calendar date",
        id="certificate-end-not-a-real-date",
    ),
    pytest.param(
        set_at(("person", "certificates"), {"disease": "diabetes"}),
        "person.certificates",
        "expected an array",
        id="certificates-not-an-array",
    ),
    pytest.param(
        set_at(("person", "certificates"), [_certificate(kind="chronic")]),
        "person.certificates[0].kind",
        "unknown field",
        id="certificate-giving-its-kind",
    ),
    pytest.param(
        set_at(("person", "registrations"), [_registration(kind="moved")]),
        "person.registrations[0].kind",
        "unknown registration kind 'moved' (one of relocated, referred)",
        id="registration-unknown-kind",
    ),
    pytest.param(
        set_at(("person", "registrations"), [_registration(region="3201")]),
        "person.registrations[0].region",
        "a 6-digit administrative division code, got '3201'",
        id="registration-bad-region",
    ),
    pytest.param(
        set_at(("person", "registrations"), [_registration(to="2016-06-30")]),
        "person.registrations[0].to",
        "ends before it starts",
        id="registration-ending-before-it-starts",
    ),
    pytest.param(
        set_at(("person", "registrations"), [{"kind": "referred", "from": "2017-01-01"}]),
        "person.registrations[0].region",
        "missing",
        id="registration-without-region",
    ),
    pytest.param(
        set_at(("visits", 0, "region"), "南京市"),
        "visits[0].region",
        "a 6-digit administrative division code",
        id="visit-bad-region",
    ),
    pytest.param(
        set_at(("visits", 0, "region"), 320100),
        "visits[0].region",
        "expected a non-empty string, got a number",
        id="visit-region-as-a-number",
    ),
    pytest.param(
        set_at(("visits", 0, "reformed_hospital"), "yes"),
        "visits[0].reformed_hospital",
        "expected true or false",
        id="visit-reformed-hospital-not-a-boolean",
    ),
    pytest.param(
        set_many((("visits", 0, "hospital_level"), 3), (("visits", 0, "reformed_hospital"), True)),
        "visits[0].reformed_hospital",
        "only a level-2 hospital takes part in the public-hospital reform",
        id="visit-reformed-hospital-not-level-2",
    ),
    # -- shape
    pytest.param(drop(("visits", 0, "items")), "visits[0].items", "missing", id="missing-items"),
    pytest.param(drop(("person", "id")), "person.id", "missing", id="missing-person-id"),
    pytest.param(
        drop(("visits", 0, "discharged")),
        "visits[0].discharged",
        "missing",
        id="missing-discharged",
    ),
    pytest.param(
        set_at(("visits", 0, "items"), []),
        "visits[0].items",
        "non-empty",
        id="empty-items",
    ),
    pytest.param(
        set_at(("visits", 0, "hospital_levle"), 2),
        "visits[0].hospital_levle",
        "unknown field",
        id="misspelt-field",
    ),
    pytest.param(truncated, "case.json", "malformed JSON", id="truncated-json"),
    pytest.param(
        raw_person_key("nick\nname"),
        "person.",
        "unknown field",
        id="field-name-with-newline-stays-one-line",
    ),
]


run_in_process = run_cli


def assert_bad_input(code: int, out: str, err: str, field: str, phrase: str) -> None:
    assert code == 2
    assert out == ""
    assert err.endswith("\n")
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    line = lines[0]
    assert line.startswith("doudi: error: ")
    assert field in line
    assert phrase in line


def write_case(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "case.json"
    path.write_text(text, encoding="utf-8")
    return path


# -- the good case -------------------------------------------------------------


def test_good_case_exits_0_and_prints_the_settled_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_case(tmp_path, json.dumps(GOOD_CASE))

    code, out, err = run_in_process(["calc", str(path)], capsys)

    assert code == 0
    assert err == ""
    result = json.loads(out)
    assert result["policy"] == "xixia-2017"
    (visit,) = result["visits"]
    assert visit["id"] == "v1"
    assert visit["total_fen"] == 5000000
    assert {layer["layer"]: layer["paid_fen"] for layer in visit["layers"]} == WORKED_EXAMPLE_PAID
    assert visit["self_pay_fen"] == 93600


def test_good_case_is_the_worked_case_the_case_tests_settle() -> None:
    """``examples/``'s worked example (GOOD_CASE) and its copy among the hand-worked cases,
    which ``tests/test_cases.py`` holds to its result, are the same case."""
    copy_ = json.loads((ROOT / "tests" / "cases" / "xixia-inpatient-level2.case.json").read_text())
    copy_.pop("note")
    assert copy_ == GOOD_CASE


# -- bad input, in process -----------------------------------------------------


@pytest.mark.parametrize(("mutate", "field", "phrase"), BAD_CASES)
def test_bad_case_exits_2_naming_the_field(
    mutate: Mutation,
    field: str,
    phrase: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_case(tmp_path, mutate(copy.deepcopy(GOOD_CASE)))

    code, out, err = run_in_process(["calc", str(path)], capsys)

    assert_bad_input(code, out, err, field, phrase)
    assert str(path) in err  # the message says which file


def test_missing_file_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-case.json"

    code, out, err = run_in_process(["calc", str(missing)], capsys)

    assert_bad_input(code, out, err, str(missing), "cannot read")


def test_file_that_is_not_utf8_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "case.json"
    path.write_bytes(json.dumps(GOOD_CASE).encode("utf-16"))

    code, out, err = run_in_process(["calc", str(path)], capsys)

    assert_bad_input(code, out, err, str(path), "UTF-8")


def test_bad_case_on_standard_input_names_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = copy.deepcopy(GOOD_CASE)
    case["visits"][0]["items"][0]["class"] = "Z"
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(case)))

    code, out, err = run_in_process(["calc", "-"], capsys)

    assert_bad_input(code, out, err, "visits[0].items[0].class", "unknown item class")
    assert "standard input" in err


def test_good_case_on_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(GOOD_CASE)))

    code, out, err = run_in_process(["calc", "-"], capsys)

    assert code == 0
    assert err == ""
    assert json.loads(out)["visits"][0]["self_pay_fen"] == 93600


# -- bad input, as a real process ----------------------------------------------


def run_doudi(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "doudi", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def test_process_reads_a_bad_case_from_standard_input() -> None:
    case = copy.deepcopy(GOOD_CASE)
    case["visits"][0]["items"][0]["amount_fen"] = -100

    done = run_doudi("calc", "-", stdin=json.dumps(case))

    assert_bad_input(
        done.returncode, done.stdout, done.stderr, "visits[0].items[0].amount_fen", "negative"
    )
    assert "standard input" in done.stderr


def test_process_rejects_a_bad_identity_number_in_a_file(tmp_path: Path) -> None:
    case = copy.deepcopy(GOOD_CASE)
    case["person"]["id"] = "411323195003150015"
    path = write_case(tmp_path, json.dumps(case))

    done = run_doudi("calc", str(path))

    assert_bad_input(done.returncode, done.stdout, done.stderr, "person.id", "check digit")


def test_process_rejects_truncated_json_on_standard_input() -> None:
    done = run_doudi("calc", "-", stdin=truncated(copy.deepcopy(GOOD_CASE)))

    assert_bad_input(done.returncode, done.stdout, done.stderr, "standard input", "malformed JSON")


def test_process_settles_the_good_case_from_standard_input() -> None:
    done = run_doudi("calc", "-", stdin=json.dumps(GOOD_CASE))

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    paid = {layer["layer"]: layer["paid_fen"] for layer in result["visits"][0]["layers"]}
    assert paid == WORKED_EXAMPLE_PAID
