"""The two ways a visit is read agree: the quick one for well-formed visits (a long history
has tens of thousands) accepts nothing the field-by-field one refuses and makes the same
visit, and leaves every fault to it, whose message and field path tests/test_cli_bad_input.py
checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doudi.core.cases import (
    Case,
    _read_visit,
    _well_formed_visit,
    load_json,
    parse_case,
    parse_visit,
    read_case,
)
from doudi.core.errors import InvalidInput
from doudi.core.money import MAX_BILL_FEN, MAX_ITEM_FEN
from doudi.core.packs import PackRegistry
from tests.support import worked_case

ODD: list[Any] = [None, True, False, 0, -1, 1.0, 2.5, "", " ", [], {}, "\ud800", "x"]
DATES: list[Any] = ["2018-03-01", "2018-03-05", "2018-02-30", "2018-3-1", "20180301", *ODD]
CODES: list[Any] = ["C34.1", " c34 ", "E11.900", "C341", "34", "CC34", *ODD]
TEXTS: list[Any] = ["v1", " v1 ", "住院1", "a\ud800", *ODD]
AMOUNTS: list[Any] = [
    0,
    1,
    500_000,
    MAX_ITEM_FEN,
    MAX_ITEM_FEN + 1,
    MAX_BILL_FEN,
    2**63,
    10**30,
    *ODD,
]
FIELDS: dict[str, list[Any]] = {
    "id": TEXTS,
    "type": ["inpatient", "outpatient_general", "pharmacy", "dental", *ODD],
    "date": DATES,
    "admitted": DATES,
    "discharged": DATES,
    "hospital_level": [1, 2, 3, 4, 0, *ODD],
    "out_of_area": ODD,
    "referred": ODD,
    "diagnoses": [[], ["C34.1"], [" c34 "], ["C34", "X"], [1], *ODD],
    "region": ["320100", "3201", "32010a", 320100, *ODD],
    "reformed_hospital": ODD,
    "items": [[], *ODD],
    "note": ["x", {"a": 1}],
    "unknown": ["x"],
}
ITEM_FIELDS: dict[str, list[Any]] = {
    "code": TEXTS,
    "class": ["A", "B", "C", "D", "a", *ODD],
    "amount_fen": AMOUNTS,
    "over_limit_fen": AMOUNTS,
    "note": ["x", {"a": 1}],
    "extra": [1],
}
DELETE = object()


def changes(fields: dict[str, list[Any]]) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """A few fields set to another value, good or bad, or taken away."""
    return st.lists(
        st.sampled_from(sorted(fields)).flatmap(
            lambda key: st.tuples(st.just(key), st.sampled_from([DELETE, *fields[key]]))
        ),
        max_size=2,
    )


def changed(document: dict[str, Any], edits: list[tuple[str, Any]]) -> dict[str, Any]:
    for key, value in edits:
        if value is DELETE:
            document.pop(key, None)
        else:
            document[key] = value
    return document


@st.composite
def visits(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed visit, then often one or two of its fields or its items' changed."""
    kind = draw(st.sampled_from(["inpatient", "outpatient_general", "pharmacy"]))
    document: dict[str, Any] = {"id": draw(st.sampled_from(["v1", "住院1", "v 2"])), "type": kind}
    if kind == "inpatient":
        document |= {"admitted": "2018-03-01", "discharged": draw(st.sampled_from(DATES[:2]))}
    else:
        document["date"] = "2018-03-01"
    if kind != "pharmacy" or draw(st.booleans()):
        document["hospital_level"] = draw(st.sampled_from([1, 2, 3]))
    for flag in ("out_of_area", "referred"):
        if draw(st.booleans()):
            document[flag] = draw(st.sampled_from([None, True, False]))
    if draw(st.booleans()):
        document["diagnoses"] = draw(st.sampled_from([[], ["C34.1"], [" e11.900 ", "C34"]]))
    items = []
    for _ in range(draw(st.integers(1, 3))):
        item: dict[str, Any] = {
            "code": draw(st.sampled_from(["X1", "药"])),
            "class": draw(st.sampled_from("ABC")),
            "amount_fen": draw(st.sampled_from([0, 1, 500_000, MAX_ITEM_FEN])),
        }
        if draw(st.booleans()):
            item["over_limit_fen"] = draw(st.sampled_from([None, 0, 1, 500_000]))
        items.append(changed(item, draw(changes(ITEM_FIELDS))))
    document["items"] = items
    return changed(document, draw(changes(FIELDS)))


@settings(max_examples=1500, deadline=None)
@given(visits())
def test_the_quick_reader_accepts_only_what_the_detailed_one_does(document: dict[str, Any]) -> None:
    data = document
    quick = _well_formed_visit(data)
    try:
        detailed = _read_visit(data, "visit", None)
    except InvalidInput:
        assert quick is None, data
        return
    if quick is not None:
        assert quick == detailed


def test_well_formed_visits_are_read_quickly() -> None:
    stay = {
        "id": "s1",
        "type": "inpatient",
        "admitted": "2018-03-01",
        "discharged": "2018-03-05",
        "hospital_level": 2,
        "out_of_area": False,
        "referred": True,
        "diagnoses": [" c34.1 "],
        "items": [
            {"code": "X", "class": "B", "amount_fen": 100, "over_limit_fen": 10},
            {"code": "Y", "class": "A", "amount_fen": 5, "note": "a note"},
        ],
        "note": "a note",
    }
    pharmacy = {"id": "p1", "type": "pharmacy", "date": "2018-03-01", "items": [stay["items"][1]]}
    for data in (stay, pharmacy):
        quick = _well_formed_visit(data)
        assert quick is not None
        assert quick == _read_visit(data, "visit", None) == parse_visit(data)


def _outcome(read: Callable[[], Case]) -> Case | str:
    try:
        return read()
    except InvalidInput as error:
        return str(error)


def _texts() -> list[str]:
    good = worked_case()
    text = json.dumps(good, ensure_ascii=False)
    visit = json.dumps(good["visits"][0], ensure_ascii=False)
    item = json.dumps(good["visits"][0]["items"][0])
    deep = "[" * 990 + "]" * 990
    certificate = '{"disease": "diabetes", "from": "2017-01-01", "to": "2019-12-31"}'
    registration = '{"kind": "relocated", "region": "320100", "from": "2017-01-01", "to": null}'

    def with_visit(replacement: str) -> str:
        return text.replace(visit, replacement, 1)

    return [
        text,
        with_visit(visit[:-1] + ', "note": "a note: with a colon"}'),
        with_visit(visit[:-1] + ', "type": "inpatient"}'),  # a key twice
        with_visit(visit[:-1] + ', "note": {"a": 1, "a": 2}}'),
        with_visit(visit[:-1] + f', "note": {deep}}}'),
        with_visit(visit.replace(item, item[:-1] + f', "note": {deep}}}')),
        with_visit(visit.replace(item, item[:-1] + ', "note": {"x": 1, "x": 1}}')),
        with_visit(visit.replace(item, item[:-1] + ', "class": "A"}')),
        text[:-1] + f', "note": {deep}}}',
        text[:-1] + ', "note": {"a\\u003a": 1, "a:": 2}}',
        text[:-1] + ', "history": {"outpatient_cost_fen": {"2016": 100000000000000000000}}}',
        text.replace('"person": {', f'"person": {{"note": {deep}, ', 1),
        with_visit(visit.replace('"amount_fen": ', '"amount_fen": 100000000000000000000', 1)),
        with_visit(visit.replace('"amount_fen": ', '"amount_fen": -100000000000000000000', 1)),
        with_visit(visit.replace('"amount_fen": ', '"amount_fen": NaN, "x": ', 1)),
        with_visit(visit.replace('"hospital_level": 2', '"hospital_level": 2.0', 1)),
        with_visit(visit.replace('"id": "v1"', '"id": "v\\ud800"', 1)),
        text.replace('"visits": [', '"visits": [' + visit + ", ", 1),  # an id twice
        text[: len(text) // 2],
        with_visit(visit[:-1] + ', "region": "320100", "reformed_hospital": true}'),
        with_visit(visit[:-1] + ', "region": "3201"}'),
        text.replace('"person": {', f'"person": {{"certificates": [{certificate}], ', 1),
        text.replace('"person": {', f'"person": {{"certificates": [{certificate}, 1], ', 1),
        text.replace('"person": {', f'"person": {{"registrations": [{registration}], ', 1),
        text.replace('"person": {', '"person": {"registrations": [{"kind": "moved"}], ', 1),
    ]


@pytest.mark.parametrize("text", _texts())
def test_read_case_reads_as_parse_case_does(text: str) -> None:
    """The quick way of reading a whole case (orjson, every visit by the quick reader) gives
    the same case, or the same error, as the standard library and the detailed readers:
    keys given twice, numbers beyond 64 bits, nesting the standard library refuses."""
    registry = PackRegistry.load()
    expected = _outcome(lambda: parse_case(load_json(text), registry))
    assert _outcome(lambda: read_case(text, registry)) == expected


def test_a_case_without_a_fault_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    text = json.dumps(worked_case(), ensure_ascii=False)
    registry = PackRegistry.load()
    expected = parse_case(load_json(text), registry)

    def not_again(_text: str) -> None:
        raise AssertionError("read again by the standard library")

    monkeypatch.setattr("doudi.core.cases.load_json", not_again)
    assert read_case(text, registry) == expected
