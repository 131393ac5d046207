"""Calculation cases (docs/case-format.md): read a case, settle its visits in order, write the result.

The same readers (``parse_person``, ``parse_visit``) check visits wherever they
arrive as JSON: ``doudi calc``, the gateway's pre-calculation and settlement.
Every problem is an ``InvalidInput`` naming the field (``visits[0].items[1].class``).
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from doudi.core.codes import HOSPITAL_LEVELS, INPATIENT, ITEM_CLASSES, PHARMACY, VISIT_TYPES
from doudi.core.dates import parse_date
from doudi.core.engine import PersonLedger, VisitSettlement
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.core.model import (
    ICD10_CODE,
    Certificate,
    Item,
    Person,
    Registration,
    StatusPeriod,
    Visit,
    new_visit,
)
from doudi.core.money import MAX_BILL_FEN, MAX_ITEM_FEN, Fen, round_half_up
from doudi.core.packs import PackRegistry
from doudi.core.policy import Pack


@dataclass(frozen=True, slots=True)
class Case:
    pack: Pack
    person: Person
    history_outpatient_costs: Mapping[int, Fen]
    visits: tuple[Visit, ...]


def load_json(text: str) -> Any:
    """Strict JSON: duplicate keys, NaN and Infinity are errors, and so are arrays or objects
    nested deeper than Python's recursion limit and integers of more than 4300 digits."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) < len(pairs):  # a key twice: the first one seen again
            seen: set[str] = set()
            for key, _value in pairs:
                if key in seen:
                    raise InvalidInput(key, "appears twice in the same object")
                seen.add(key)
        return result

    def no_constants(name: str) -> Any:
        raise InvalidInput("", f"malformed JSON: {name} is not a number")

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            "", f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    except InvalidInput:
        raise
    except RecursionError:
        raise InvalidInput("", "malformed JSON: arrays or objects nested too deep") from None
    except ValueError:  # the only other: an integer of more digits than Python converts
        raise InvalidInput(
            "", f"malformed JSON: a number of more than {sys.get_int_max_str_digits()} digits"
        ) from None


def _object(
    data: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInput(path, f"expected an object, got {_json_kind(data)}")
    for key in data:
        if key not in required and key not in optional and key != "note":
            allowed = {*required, *optional, "note"}
            raise InvalidInput(
                _join(path, key), f"unknown field (expected {', '.join(sorted(allowed))})"
            )
    for key in required:
        if key not in data or data[key] is None:
            raise InvalidInput(_join(path, key), "missing required field")
    return data


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_kind(data: Any) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "true/false"
    if isinstance(data, dict):
        return "an object"
    if isinstance(data, list):
        return "an array"
    if isinstance(data, str):
        return "a string"
    return "a number"


# The readers below take a field's parent path and key apart and join them only to name a
# field at fault: a long history has hundreds of thousands of fields.


def _string(data: Any, path: str, key: str) -> str:
    if not isinstance(data, str) or not data.strip():
        raise InvalidInput(_join(path, key), f"expected a non-empty string, got {_json_kind(data)}")
    if not data.isascii() and _SURROGATE.search(data):
        # JSON's \ud800 escape: half of a UTF-16 pair, no character, cannot be written out
        raise InvalidInput(
            _join(path, key), "holds a lone UTF-16 surrogate (\\ud800-\\udfff), not text"
        )
    return data


_SURROGATE = re.compile("[\ud800-\udfff]")


def _fen(data: Any, path: str, key: str) -> Fen:
    if isinstance(data, bool) or not isinstance(data, int | float):
        raise InvalidInput(
            _join(path, key), f"expected a whole number of fen, got {_json_kind(data)}"
        )
    if isinstance(data, float):
        if not math.isfinite(data) or data != int(data):
            raise InvalidInput(_join(path, key), f"expected a whole number of fen, got {data}")
        raise InvalidInput(
            _join(path, key), f"expected a whole number of fen without a decimal point, got {data}"
        )
    if data < 0:
        raise InvalidInput(_join(path, key), f"must not be negative, got {data}")
    return data


def _date_field(data: Any, path: str, key: str) -> date:
    try:
        return _day(data) if type(data) is str else parse_date(data)
    except ValueError as error:
        raise InvalidInput(_join(path, key), str(error)) from None


_day = functools.lru_cache(maxsize=8192)(parse_date)
"""parse_date remembered: a long history has a visit on most days, often two dates each."""


def _flag(data: Any, path: str, key: str) -> bool:
    if data is None:
        return False
    if not isinstance(data, bool):
        raise InvalidInput(_join(path, key), f"expected true or false, got {_json_kind(data)}")
    return data


def _check(path: str, thing: Person | Visit) -> None:
    try:
        thing.check()
    except InvalidInput as error:
        raise error.under(path) from None


def parse_person(
    data: Any, path: str = "person", *, today: date | None = None, pack: Pack | None = None
) -> Person:
    """A case's person. Certificates name the diseases of ``pack``'s list (a case's own
    pack); registrations need no pack. Either left out: not known, so not checked."""
    spec = _object(
        data,
        path,
        ("id", "scheme"),
        ("employment", "tier", "statuses", "certificates", "registrations"),
    )
    resident_id = read_resident_id(spec["id"], _join(path, "id"), today=today)
    statuses = []
    raw_statuses = spec.get("statuses") or []
    if not isinstance(raw_statuses, list):
        raise InvalidInput(
            _join(path, "statuses"), f"expected an array, got {_json_kind(raw_statuses)}"
        )
    for index, entry in enumerate(raw_statuses):
        where = f"{path}.statuses[{index}]"
        status = _object(entry, where, ("code", "from"), ("to",))
        statuses.append(
            StatusPeriod(
                code=_string(status["code"], where, "code"),
                start=_date_field(status["from"], where, "from"),
                end=None if status.get("to") is None else _date_field(status["to"], where, "to"),
            )
        )
    person = Person(
        resident_id=resident_id,
        scheme=_string(spec["scheme"], path, "scheme"),
        employment=None
        if spec.get("employment") is None
        else _string(spec["employment"], path, "employment"),
        tier=None if spec.get("tier") is None else _string(spec["tier"], path, "tier"),
        statuses=tuple(statuses),
        certificates=None
        if spec.get("certificates") is None
        else _certificates(spec["certificates"], _join(path, "certificates"), pack),
        registrations=None
        if spec.get("registrations") is None
        else _registrations(spec["registrations"], _join(path, "registrations")),
    )
    _check(path, person)
    return person


def _array(data: Any, path: str) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidInput(path, f"expected an array, got {_json_kind(data)}")
    return data


def _certificates(data: Any, path: str, pack: Pack | None) -> tuple[Certificate, ...]:
    """``[{"disease", "from", "to"}]``: each disease one of the pack's certified diseases,
    whose kind it takes."""
    rules = None if pack is None else pack.certificates
    certificates = []
    for index, entry in enumerate(_array(data, path)):
        where = f"{path}[{index}]"
        spec = _object(entry, where, ("disease", "from", "to"), ())
        disease_id = _string(spec["disease"], where, "disease")
        disease = None if rules is None else rules.diseases.get(disease_id)
        if disease is None:
            known = "none" if rules is None else ", ".join(rules.diseases)
            raise InvalidInput(
                _join(where, "disease"),
                f"not a certified disease of {'the pack' if pack is None else pack.id}: "
                f"{disease_id!r} (known: {known})",
            )
        certificates.append(
            Certificate(
                disease.id,
                disease.kind,
                _date_field(spec["from"], where, "from"),
                _date_field(spec["to"], where, "to"),
            )
        )
    return tuple(certificates)


def _registrations(data: Any, path: str) -> tuple[Registration, ...]:
    """``[{"kind", "region", "from", "to"}]``, ``to`` null while it lasts."""
    registrations = []
    for index, entry in enumerate(_array(data, path)):
        where = f"{path}[{index}]"
        spec = _object(entry, where, ("kind", "region", "from"), ("to",))
        registrations.append(
            Registration(
                _string(spec["kind"], where, "kind"),
                _string(spec["region"], where, "region"),
                _date_field(spec["from"], where, "from"),
                None if spec.get("to") is None else _date_field(spec["to"], where, "to"),
            )
        )
    return tuple(registrations)


def parse_visit(data: Any, path: str = "visit", *, hospital_level: int | None = None) -> Visit:
    """A visit as docs/case-format.md writes it. ``hospital_level``, when given, is the registered
    level of the hospital sending it (the gateway), and the visit must not contradict it."""
    if hospital_level is None:
        visit = _well_formed_visit(data)
        if visit is not None:
            return visit
    return _read_visit(data, path, hospital_level)


def _read_visit(data: Any, path: str, hospital_level: int | None) -> Visit:
    """:func:`parse_visit` field by field, naming the first fault."""
    if not isinstance(data, dict):
        raise InvalidInput(path, f"expected an object, got {_json_kind(data)}")
    visit_type = data.get("type")
    if visit_type is None:
        raise InvalidInput(_join(path, "type"), "missing required field")
    if not isinstance(visit_type, str) or visit_type not in VISIT_TYPES:
        raise InvalidInput(
            _join(path, "type"),
            f"unknown visit type {visit_type!r} (one of {', '.join(VISIT_TYPES)})",
        )
    common = ("hospital_level", "out_of_area", "referred", "diagnoses", *_PLACE_FIELDS)
    if visit_type == INPATIENT and "date" in data:
        raise InvalidInput(
            _join(path, "date"), "inpatient visits give admitted and discharged, not date"
        )
    if visit_type != INPATIENT and ("admitted" in data or "discharged" in data):
        field = "admitted" if "admitted" in data else "discharged"
        raise InvalidInput(
            _join(path, field), f"{visit_type} visits give date, not admitted and discharged"
        )
    if visit_type == INPATIENT:
        spec = _object(data, path, ("id", "type", "admitted", "discharged", "items"), common)
        admitted: date | None = _date_field(spec["admitted"], path, "admitted")
        settles_on = _date_field(spec["discharged"], path, "discharged")
    else:
        spec = _object(data, path, ("id", "type", "date", "items"), common)
        admitted = None
        settles_on = _date_field(spec["date"], path, "date")
    level = spec.get("hospital_level", hospital_level)
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        raise InvalidInput(
            _join(path, "hospital_level"), f"must be 1, 2 or 3, got {_json_kind(level)}"
        )
    if hospital_level is not None and level != hospital_level:
        raise InvalidInput(
            _join(path, "hospital_level"), f"the hospital is registered at level {hospital_level}"
        )
    items_data = spec["items"]
    if not isinstance(items_data, list) or not items_data:
        raise InvalidInput(_join(path, "items"), "expected a non-empty array of line items")
    items = []
    for index, entry in enumerate(items_data):
        try:
            items.append(_item(entry))
        except InvalidInput as error:
            raise error.under(f"{path}.items[{index}]") from None
    diagnoses = spec.get("diagnoses") or []
    if not isinstance(diagnoses, list):
        raise InvalidInput(
            _join(path, "diagnoses"), f"expected an array, got {_json_kind(diagnoses)}"
        )
    for index, code in enumerate(diagnoses):
        if not isinstance(code, str):
            raise InvalidInput(f"{path}.diagnoses[{index}]", f"not an ICD-10 code: {code!r}")
    visit = Visit(
        id=_string(spec["id"], path, "id"),
        visit_type=visit_type,
        settles_on=settles_on,
        items=tuple(items),
        hospital_level=level,
        admitted=admitted,
        out_of_area=_flag(spec.get("out_of_area"), path, "out_of_area"),
        referred=_flag(spec.get("referred"), path, "referred"),
        diagnoses=tuple(code.strip().upper() for code in diagnoses),
        region=None if spec.get("region") is None else _string(spec["region"], path, "region"),
        reformed_hospital=_flag(spec.get("reformed_hospital"), path, "reformed_hospital"),
    )
    _check(path, visit)
    return visit


_PLACE_FIELDS = ("region", "reformed_hospital")
"""Where the visit was made: the hospital's region and whether it is a reformed one (read by
the field-by-field reader alone: few visits give them)."""
_COMMON_FIELDS = ("hospital_level", "out_of_area", "referred", "diagnoses", "note", *_PLACE_FIELDS)
_VISIT_FIELDS = {
    visit_type: frozenset(
        ("id", "type", "items", *_COMMON_FIELDS)
        + (("admitted", "discharged") if visit_type == INPATIENT else ("date",))
    )
    for visit_type in VISIT_TYPES
}
_ITEM_FIELDS = frozenset(("code", "class", "amount_fen", "over_limit_fen", "note"))
_NESTED = (dict, list)
_new_tuple = tuple.__new__
"""Makes an Item from a tuple of its fields, without a NamedTuple's keyword handling."""


def _well_formed_visit(data: Any, *, shallow: bool = False) -> Visit | None:
    """The visit :func:`parse_visit` reads from ``data``, read in fewer steps (a long history
    has tens of thousands), or None for anything this does not plainly accept: parse_visit
    then reads it field by field and names the fault, if there is one. Accepts nothing that
    parse_visit refuses, and makes the same visit. ``shallow``: nor a note that is an array
    or an object."""
    if type(data) is not dict:
        return None
    try:
        visit_type = data["type"]
        if type(visit_type) is not str or not data.keys() <= _VISIT_FIELDS[visit_type]:
            return None
        if shallow and "note" in data and type(data["note"]) in _NESTED:
            return None
        if "region" in data or "reformed_hospital" in data:
            return None
        admitted: date | None = None
        if visit_type == INPATIENT:
            admitted = _day(data["admitted"])
            settles_on = _day(data["discharged"])
            if settles_on < admitted:
                return None
        else:
            settles_on = _day(data["date"])
        level = data.get("hospital_level")
        if level is None:
            if visit_type != PHARMACY:
                return None
        elif type(level) is not int or level not in HOSPITAL_LEVELS:
            return None
        visit_id = data["id"]
        if (
            type(visit_id) is not str
            or not visit_id.strip()
            or not (visit_id.isascii() or not _SURROGATE.search(visit_id))
        ):
            return None
        entries = data["items"]
        if type(entries) is not list or not entries:
            return None
        items = []
        total = 0
        for entry in entries:
            if type(entry) is not dict or not entry.keys() <= _ITEM_FIELDS:
                return None
            if shallow and "note" in entry and type(entry["note"]) in _NESTED:
                return None
            code = entry["code"]
            item_class = entry["class"]
            amount = entry["amount_fen"]
            over_limit = entry.get("over_limit_fen")
            if over_limit is None:
                over_limit = 0
            if (
                type(code) is not str
                or not code.strip()
                or not (code.isascii() or not _SURROGATE.search(code))
                or type(item_class) is not str
                or item_class not in ITEM_CLASSES
                or type(amount) is not int
                or not 0 <= amount <= MAX_ITEM_FEN
                or type(over_limit) is not int
                or not 0 <= over_limit <= amount
            ):
                return None
            total += amount
            items.append(_new_tuple(Item, (code, item_class, amount, over_limit)))
        if total > MAX_BILL_FEN:
            return None
        out_of_area = data.get("out_of_area")
        referred = data.get("referred")
        if (out_of_area is not None and type(out_of_area) is not bool) or (
            referred is not None and type(referred) is not bool
        ):
            return None
        codes: tuple[str, ...] = ()
        if "diagnoses" in data and data["diagnoses"] is not None:
            diagnoses = data["diagnoses"]
            if type(diagnoses) is not list:
                return None
            for diagnosis in diagnoses:
                if type(diagnosis) is not str:
                    return None
            codes = tuple(diagnosis.strip().upper() for diagnosis in diagnoses)
            for diagnosis in codes:
                if not ICD10_CODE.fullmatch(diagnosis):
                    return None
    except (KeyError, TypeError, ValueError):  # a field missing, a date that is not one
        return None
    return new_visit(
        visit_id,
        visit_type,
        settles_on,
        tuple(items),
        level,
        admitted,
        out_of_area is True,
        referred is True,
        codes,
    )


def _item(data: Any) -> Item:
    """A line item; an error names its field alone (the caller places it under the item)."""
    item = _object(data, "", ("code", "class", "amount_fen"), ("over_limit_fen",))
    over_limit = item.get("over_limit_fen")
    return Item(
        _string(item["code"], "", "code"),
        _string(item["class"], "", "class"),
        _fen(item["amount_fen"], "", "amount_fen"),
        0 if over_limit is None else _fen(over_limit, "", "over_limit_fen"),
    )


def read_case(text: str, registry: PackRegistry, *, today: date | None = None) -> Case:
    """``parse_case(load_json(text), registry)``, in a third of the time for a case without
    a fault: read by orjson, and read again as before if anything is not plainly right (a
    fault, or something orjson reads otherwise than the standard library), so that every
    error is the same."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN, a lone surrogate, or simply malformed
        data = None
    if type(data) is dict and _shallow(data, "visits") and _no_duplicate_keys(text, data):
        try:
            return _parse_case(data, registry, today, quick=True)
        except (InvalidInput, _NotPlain):
            pass
    return parse_case(load_json(text), registry, today=today)


def _no_duplicate_keys(text: str, data: Any) -> bool:
    """Whether no object of ``text`` (read as ``data``) gives a key twice: orjson keeps the
    last value. Each key of the text is followed by a colon, and so is each key of ``data``
    written out; a colon within a string is the same colon in both, unless the text writes it
    as an escape (then assume the worst)."""
    if "\\u003a" in text or "\\u003A" in text:
        return False
    try:
        written = orjson.dumps(data)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        return False
    return text.count(":") == written.count(b":")


def _shallow(data: dict[str, Any], skip: str) -> bool:
    """Whether ``data`` nests no deeper than a case does, outside ``data[skip]``: nesting the
    standard library refuses (deeper than the recursion limit) orjson may read."""
    stack = [(value, 1) for key, value in data.items() if key != skip]
    while stack:
        value, depth = stack.pop()
        if type(value) is dict:
            value = list(value.values())
        elif type(value) is not list:
            continue
        if depth > 8:
            return False
        stack.extend((item, depth + 1) for item in value)
    return True


class _NotPlain(Exception):
    """A visit the quick reader leaves to the field-by-field one."""


def parse_case(data: Any, registry: PackRegistry, *, today: date | None = None) -> Case:
    return _parse_case(data, registry, today, quick=False)


def _parse_case(data: Any, registry: PackRegistry, today: date | None, *, quick: bool) -> Case:
    """``quick``: every visit is read by the quick reader, and one it leaves is _NotPlain."""
    spec = _object(data, "", ("policy", "person", "visits"), ("history",))
    policy = _string(spec["policy"], "", "policy")
    pack = registry.get(policy)
    if pack is None:
        known = ", ".join(p.id for p in registry)
        raise InvalidInput("policy", f"unknown policy pack {policy!r} (known: {known})")
    person = parse_person(spec["person"], today=today, pack=pack)
    visits_data = spec["visits"]
    if not isinstance(visits_data, list) or not visits_data:
        raise InvalidInput("visits", "expected a non-empty array of visits")
    visits: list[Visit] = []
    ids: set[str] = set()  # a long history has tens of thousands of visits
    birth_date = person.resident_id.birth_date
    last: date | None = None  # the date of the visit before
    for index, entry in enumerate(visits_data):
        visit = _well_formed_visit(entry, shallow=quick)
        if visit is None:
            if quick:
                raise _NotPlain
            visit = parse_visit(entry, f"visits[{index}]")
        day = visit.settles_on
        if visit.id in ids:
            raise InvalidInput(f"visits[{index}].id", f"visit id {visit.id!r} is used twice")
        ids.add(visit.id)
        if last is not None and day < last:
            raise InvalidInput(
                _date_path(visit, index),
                f"visits out of order: {day.isoformat()} comes after "
                f"{last.isoformat()} of visit {visits[-1].id!r}",
            )
        if day < pack.effective_from:
            raise InvalidInput(
                _date_path(visit, index),
                f"{day.isoformat()} is before {pack.id} takes effect "
                f"({pack.effective_from.isoformat()})",
            )
        if day != last:  # else as the one before
            newer = registry.superseded_on(pack, day)
            last = day
        if newer is not None:
            raise InvalidInput(
                _date_path(visit, index),
                f"on {day.isoformat()} {newer.id} is in force, not {pack.id}",
            )
        if day < birth_date:
            raise InvalidInput(_date_path(visit, index), "is before the person's birth date")
        visits.append(visit)
    history = _history(spec.get("history"), visits[0].year)
    return Case(pack, person, history, tuple(visits))


def _date_path(visit: Visit, index: int) -> str:
    return f"visits[{index}].{'discharged' if visit.visit_type == INPATIENT else 'date'}"


def _history(data: Any, first_year: int) -> dict[int, Fen]:
    if data is None:
        return {}
    spec = _object(data, "history", (), ("outpatient_cost_fen",))
    costs = spec.get("outpatient_cost_fen") or {}
    if not isinstance(costs, dict):
        raise InvalidInput(
            "history.outpatient_cost_fen", f"expected an object of years, got {_json_kind(costs)}"
        )
    history: dict[int, Fen] = {}
    for year_text, amount in costs.items():
        where = f"history.outpatient_cost_fen.{year_text}"
        if not re.fullmatch(r"\d{4}", year_text):
            raise InvalidInput(where, 'expected a year such as "2016"')
        year = int(year_text)
        if year >= first_year:
            raise InvalidInput(where, f"history covers years before the first visit ({first_year})")
        history[year] = _fen(amount, "history.outpatient_cost_fen", year_text)
        if history[year] > MAX_BILL_FEN:
            raise InvalidInput(where, f"at most {MAX_BILL_FEN} fen (1 billion yuan), got {amount}")
    return history


def settle_case(case: Case, *, explain: bool = True) -> list[VisitSettlement]:
    ledger = PersonLedger(case.history_outpatient_costs)
    return [ledger.settle(case.pack, case.person, visit, explain=explain) for visit in case.visits]


def result_document(case: Case, settlements: list[VisitSettlement]) -> dict[str, Any]:
    """The result JSON of docs/case-format.md, with a per-layer ``explanation`` and a cost breakdown."""
    visits = []
    for settlement, sent in zip(settlements, case.visits, strict=True):
        costs = settlement.costs
        explanations = settlement.explanations
        if explanations is None:
            layers = [
                {"layer": layer, "fund": fund, "paid_fen": paid}
                for layer, fund, paid in zip(
                    settlement.layer_ids, settlement.funds, settlement.paid, strict=True
                )
            ]
        else:
            layers = [
                {"layer": layer, "fund": fund, "paid_fen": paid, "explanation": explanation}
                for layer, fund, paid, explanation in zip(
                    settlement.layer_ids,
                    settlement.funds,
                    settlement.paid,
                    explanations,
                    strict=True,
                )
            ]
        fund_paid = settlement.fund_paid_fen
        visit: dict[str, Any] = {
            "id": settlement.visit_id,
            "total_fen": costs.total_fen,
            "out_of_scope_fen": costs.out_of_scope_fen,
            "in_scope_fen": costs.in_scope_fen,
            "layers": layers,
            "self_pay_fen": settlement.self_pay_fen,
            "fund_paid_fen": fund_paid,
            "reimbursement_ratio": _percent(fund_paid, costs.total_fen),
            "out_of_scope_breakdown": {
                "class_c_fen": costs.class_c_fen,
                "over_limit_fen": costs.over_limit_fen,
                "pre_self_pay_fen": costs.pre_self_pay_fen,
            },
        }
        if settlement.settled_as and settlement.settled_as != sent.visit_type:
            visit["settled_as"] = settlement.settled_as
        if settlement.notes:
            visit["notes"] = list(settlement.notes)
        if case.pack.payouts:
            visit["payouts"] = [
                {
                    "benefit": p.benefit,
                    "disease_class": p.disease_class,
                    "paid_fen": p.paid_fen,
                    "fund": p.fund,
                    "diagnosis": p.diagnosis,
                }
                for p in settlement.payouts
            ]
        visits.append(visit)
    return {"policy": case.pack.id, "visits": visits}


def _percent(part: Fen, whole: Fen) -> str | None:
    """``part / whole`` as a percentage with two decimals, rounded half-up (no float)."""
    if whole == 0:
        return None
    hundredths = round_half_up(part * 10_000, whole)
    return f"{hundredths // 100}.{hundredths % 100:02d}%"
