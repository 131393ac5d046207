"""Policy packs: one YAML file per region and year, loaded strictly (docs/domain.md section 6).

A pack is data, never code. Each number in it names its source (the id of a
document the pack's ``sources`` lists, with its title, publisher and date,
followed by the sentence that gives the figure) or says ``assumed`` and why. Loading rejects unknown keys, funds, statuses and visit types, floats,
unsorted bands and missing sources, with an error naming the file and the rule
(``xixia-2017.yaml: layers[basic].rules[inpatient].ratio: ...``).

The file format is described in ``docs/policy-packs.md``; the optional
``enrolment_subsidy`` section (资助参保, docs/domain.md section 5) is read by
``subsidy_categories``, the ``monitoring`` section (the dual early warning and secondary
assistance, docs/domain.md section 7) by ``monitoring_rules``, the ``personal_account``
section (职工个人账户, docs/domain.md section 5) by ``personal_account_rules``, the
``accident_cover`` section (意外伤害附加保险, docs/domain.md section 6) by ``accident_cover``.
The ``certificates`` (门诊慢特病) and ``admission`` (who pays no deposit) sections are
compiled into the pack (``Pack.certificates``, ``Pack.no_deposit``): the engine reads them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import yaml

from doudi.core.accidents import AccidentCover
from doudi.core.accounts import HealthProduct, PersonalAccountRules
from doudi.core.codes import (
    CERTIFICATE_KINDS,
    EMPLOYMENTS,
    HOSPITAL_LEVELS,
    INPATIENT,
    NATIONAL_FUNDS,
    PHARMACY,
    SCHEMES,
    STATUSES,
    TIERS,
    VISIT_TYPES,
)
from doudi.core.dates import parse_date
from doudi.core.errors import PolicyPackError
from doudi.core.money import MAX_ITEM_FEN, percent_to_basis_points, yuan_to_fen
from doudi.core.monitoring import MonitoringRules
from doudi.core.policy import (
    Adjustment,
    Band,
    BandSchedule,
    Cap,
    CertificateRules,
    CertifiedDisease,
    Condition,
    Deductible,
    Described,
    DiseaseClass,
    InstantPayout,
    IntSelector,
    Layer,
    LowOutpatientYearDeductible,
    NoDepositRule,
    Pack,
    QuietYearReductions,
    Rule,
    VisitContext,
)

PACK_ID = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*-\d{4}")
_DOCUMENT_ID = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_CITATION_KEYS = ("title", "publisher", "date")
_SOURCE_KEYS = ("source", "assumed")
_ICD10_CATEGORY = re.compile(r"[A-Z]\d{2}")
_ICD10_CODE = re.compile(r"[A-Z]\d{2}\.[0-9A-Z]{1,4}")
_ICD10_RANGE = re.compile(r"([A-Z]\d{2})-([A-Z]\d{2})")
_DISEASE_ID = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_CATEGORY_ID = re.compile(r"[a-z][a-z0-9_]*")


class _StrictLoader(yaml.CSafeLoader):
    """Safe YAML without implicit dates or floats (they stay strings, parsed exactly by us)
    and without duplicate keys."""


# Keep YAML 1.1's implicit nulls and strings, drop its dates and floats (they stay strings,
# parsed exactly by us), and narrow its integers and booleans: 065 is not octal 53,
# 0x41 and 1:05 are not numbers, yes/no/on/off are not booleans.
_DROPPED = {
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:bool",
}
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Fail(Exception):
    """A problem at a path inside the pack; becomes a ``PolicyPackError`` naming the file."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _mapping(
    data: Any, path: str, required: Iterable[str], optional: Iterable[str] = ()
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _Fail(path, f"expected a mapping, got {_kind(data)}")
    required = tuple(required)
    allowed = set(required) | set(optional)
    for key in data:
        if key not in allowed:
            raise _Fail(
                path, f"unknown key {key!r} (allowed: {', '.join(sorted(map(str, allowed)))})"
            )
    for key in required:
        if key not in data:
            raise _Fail(path, f"missing key {key!r}")
    return data


def _free_mapping(data: Any, path: str) -> dict[Any, Any]:
    """A mapping whose keys the pack chooses (its sources, its funds)."""
    if not isinstance(data, dict):
        raise _Fail(path, f"expected a mapping, got {_kind(data)}")
    return data


def _list(data: Any, path: str, *, non_empty: bool = True) -> list[Any]:
    if not isinstance(data, list):
        raise _Fail(path, f"expected a list, got {_kind(data)}")
    if non_empty and not data:
        raise _Fail(path, "must not be empty")
    return data


def _text(data: Any, path: str) -> str:
    if not isinstance(data, str) or not data.strip():
        raise _Fail(path, f"expected a non-empty text, got {_kind(data)}")
    return data


def _bool(data: Any, path: str) -> bool:
    if not isinstance(data, bool):
        raise _Fail(path, f"expected true or false, got {_kind(data)}")
    return data


def _whole(data: Any, path: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` (a year, a number of days)."""
    if isinstance(data, bool) or not isinstance(data, int) or not low <= data <= high:
        raise _Fail(path, f"expected a whole number from {low} to {high}, got {data!r}")
    return data


def _kind(data: Any) -> str:
    if data is None:
        return "nothing"
    if isinstance(data, dict):
        return "a mapping"
    if isinstance(data, list):
        return "a list"
    return repr(data)


def _date(data: Any, path: str) -> date:
    try:
        return parse_date(data)
    except ValueError as error:
        raise _Fail(path, str(error)) from None


def _member(data: Any, known: Mapping[Any, Any], path: str, what: str) -> Any:
    if isinstance(data, list | dict) or data not in known:
        raise _Fail(path, f"unknown {what} {data!r} (known: {', '.join(map(str, known))})")
    return data


def _members(data: Any, known: Mapping[Any, Any], path: str, what: str) -> frozenset[Any]:
    """A non-empty list of known codes (``path[i]`` names a bad one)."""
    return frozenset(
        _member(item, known, f"{path}[{index}]", what)
        for index, item in enumerate(_list(data, path))
    )


@dataclass(frozen=True, slots=True)
class SubsidyCategory:
    """A category of subsidised enrolment (资助参保, docs/domain.md section 5): who is in it, the
    resident tier they are enrolled at, their personal premium for the year and the part
    of it the medical-assistance fund pays (the rest the person pays)."""

    id: str
    name: str
    statuses: frozenset[str]
    """Any one of these statuses puts a person in the category ..."""
    also_one_of: frozenset[str]
    """... when they also hold one of these (empty: no further condition)."""
    tier: str | None
    premium_fen: int
    """The personal premium (个人缴费) for the year: what the person would pay, without the
    government's per-head subsidy to the scheme, which is not the assistance fund's."""
    subsidy_fen: int
    """The part of ``premium_fen`` the assistance fund pays: 1 fen to the whole premium."""

    def applies_to(self, statuses: Collection[str]) -> bool:
        return not self.statuses.isdisjoint(statuses) and (
            not self.also_one_of or not self.also_one_of.isdisjoint(statuses)
        )


_CONTEXT_KEYS: dict[str, Callable[[VisitContext], Any]] = {
    "level": attrgetter("level"),
    "scheme": attrgetter("scheme"),
    "employment": attrgetter("employment"),
}


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A compiled number choice and what it depends on (to reject, say, a choice by
    hospital level on pharmacy purchases, which have none)."""

    select: IntSelector
    depends_on: frozenset[str]
    constant: int | None = None


class _PackCompiler:
    def __init__(self, document: Any) -> None:
        self.document = document
        self.sources: dict[str, str] = {}
        self.funds: dict[str, str] = dict(NATIONAL_FUNDS)

    # -- provenance -------------------------------------------------------

    def provenance(self, data: Mapping[str, Any], path: str) -> None:
        """Every rule carrying a number says where it comes from, or that it is assumed."""
        if not any(key in data for key in _SOURCE_KEYS):
            raise _Fail(
                path,
                "needs 'source' (one of this pack's sources and its sentence) or 'assumed' (why)",
            )
        if "source" in data:
            source = _text(data["source"], f"{path}.source")
            reference = source.split(":", 1)[0].strip()
            if ":" not in source or reference not in self.sources:
                raise _Fail(
                    f"{path}.source",
                    f"should start with the id of one of this pack's sources "
                    f"({', '.join(self.sources)}) and a colon, then the document's sentence "
                    f"that gives the figure; got {source!r}",
                )
        if "assumed" in data:
            _text(data["assumed"], f"{path}.assumed")

    # -- numbers ----------------------------------------------------------

    def number(self, data: Any, path: str, unit: str) -> _Compiled:
        """A number in yuan or percent, or a choice of numbers by level, scheme, employment,
        age, n-th stay or status."""
        if isinstance(data, dict):
            if len(data) != 1:
                raise _Fail(
                    path, f"a choice has one key (by_level, by_scheme, ...), got {sorted(data)}"
                )
            ((kind, choices),) = data.items()
            chooser = self._CHOOSERS.get(kind)
            if chooser is None:
                raise _Fail(path, f"unknown choice {kind!r} (known: {', '.join(self._CHOOSERS)})")
            return chooser(self, choices, f"{path}.{kind}", unit)
        value = self.scalar(data, path, unit)
        return _Compiled(lambda ctx: value, frozenset(), value)

    def scalar(self, data: Any, path: str, unit: str) -> int:
        try:
            if unit == "yuan":
                value = yuan_to_fen(data)
            elif unit == "percent":
                value = percent_to_basis_points(data)
                if not 0 <= value <= 10_000:
                    raise ValueError(f"{data}% is outside 0-100%")
            else:  # "points": a signed adjustment in percentage points
                value = percent_to_basis_points(data)
        except ValueError as error:
            raise _Fail(path, str(error)) from None
        if unit == "yuan" and value < 0:
            raise _Fail(path, f"must not be negative, got {data}")
        return value

    def _by_keys(
        self,
        choices: Any,
        path: str,
        unit: str,
        known: Mapping[Any, Any],
        attribute: str,
        what: str,
    ) -> _Compiled:
        if not isinstance(choices, dict):
            raise _Fail(path, f"expected a mapping of {what} to values")
        for key in choices:
            _member(key, known, f"{path}.{key}", what)
        missing = [str(key) for key in known if key not in choices]
        if missing:
            raise _Fail(path, f"missing {what} {', '.join(missing)}")
        compiled = {
            key: self.number(value, f"{path}.{key}", unit) for key, value in choices.items()
        }
        depends = frozenset({attribute}).union(*(c.depends_on for c in compiled.values()))
        key_of = _CONTEXT_KEYS[attribute]
        constants = {key: c.constant for key, c in compiled.items()}
        if None not in constants.values():
            # Plain numbers per key: one lookup, no nested call (this runs on every settlement).
            values = cast(dict[Any, int], constants)
            return _Compiled(lambda ctx: values[key_of(ctx)], depends)
        table = {key: c.select for key, c in compiled.items()}
        return _Compiled(lambda ctx: table[key_of(ctx)](ctx), depends)

    def by_level(self, choices: Any, path: str, unit: str) -> _Compiled:
        return self._by_keys(choices, path, unit, HOSPITAL_LEVELS, "level", "hospital level")

    def by_scheme(self, choices: Any, path: str, unit: str) -> _Compiled:
        return self._by_keys(choices, path, unit, SCHEMES, "scheme", "scheme")

    def by_employment(self, choices: Any, path: str, unit: str) -> _Compiled:
        return self._by_keys(choices, path, unit, EMPLOYMENTS, "employment", "employment")

    def _steps(
        self, choices: Any, path: str, unit: str, bound: str, last: str | None
    ) -> tuple[list[tuple[int | None, _Compiled]], frozenset[str]]:
        """Ordered steps ``{bound: n, value: v}``, ending with one without ``bound`` (or ``last``)."""
        steps = _list(choices, path)
        compiled: list[tuple[int | None, _Compiled]] = []
        previous = 0
        for index, step in enumerate(steps):
            where = f"{path}[{index}]"
            final = index == len(steps) - 1
            key = last if (final and last) else bound
            if final and last is None:
                _mapping(step, where, ["value"])
                limit = None
            else:
                _mapping(step, where, [key, "value"])
                limit = step[key]
                if isinstance(limit, bool) or not isinstance(limit, int) or limit <= previous:
                    raise _Fail(
                        f"{where}.{key}", f"expected a whole number above {previous}, got {limit!r}"
                    )
                previous = limit
            compiled.append((limit, self.number(step["value"], f"{where}.value", unit)))
        depends = frozenset().union(*(c.depends_on for _, c in compiled))
        return compiled, depends

    def by_age(self, choices: Any, path: str, unit: str) -> _Compiled:
        steps, depends = self._steps(choices, path, unit, "under", None)

        def select(ctx: VisitContext) -> int:
            age = ctx.age
            for under, value in steps:
                if under is None or age < under:
                    return value.select(ctx)
            raise AssertionError("the last age step has no bound")

        return _Compiled(select, depends | {"age"})

    def by_stay(self, choices: Any, path: str, unit: str) -> _Compiled:
        steps, depends = self._steps(choices, path, unit, "nth", "from_nth")
        for index, (nth, _) in enumerate(steps):
            if nth != index + 1:
                raise _Fail(
                    f"{path}[{index}]",
                    f"stays are numbered 1, 2, ... in order; expected {index + 1}",
                )

        def select(ctx: VisitContext) -> int:
            return steps[min(ctx.nth_stay, len(steps)) - 1][1].select(ctx)

        return _Compiled(select, depends | {"stay"})

    def by_status(self, choices: Any, path: str, unit: str) -> _Compiled:
        steps = _list(choices, path)
        compiled: list[tuple[frozenset[str] | None, _Compiled]] = []
        for index, step in enumerate(steps):
            where = f"{path}[{index}]"
            if index == len(steps) - 1:
                _mapping(step, where, ["value"])
                codes = None
            else:
                _mapping(step, where, ["statuses", "value"])
                codes = _members(step["statuses"], STATUSES, f"{where}.statuses", "status")
            compiled.append((codes, self.number(step["value"], f"{where}.value", unit)))

        def select(ctx: VisitContext) -> int:
            for codes, value in compiled:
                if codes is None or codes & ctx.statuses:
                    return value.select(ctx)
            raise AssertionError("the last status step has no condition")

        return _Compiled(select, frozenset({"status"}).union(*(c.depends_on for _, c in compiled)))

    _CHOOSERS: ClassVar[dict[str, Callable[[_PackCompiler, Any, str, str], _Compiled]]] = {
        "by_level": by_level,
        "by_scheme": by_scheme,
        "by_employment": by_employment,
        "by_age": by_age,
        "by_stay": by_stay,
        "by_status": by_status,
    }

    # -- conditions -------------------------------------------------------

    def condition(self, data: Any, path: str) -> Described:
        spec = _mapping(
            data,
            path,
            [],
            [
                "schemes",
                "employment",
                "tiers",
                "levels",
                "statuses",
                "out_of_area",
                "referred",
                "visit_types",
                "reformed_hospital",
                "any_of",
            ],
        )
        if not spec:
            raise _Fail(path, "an empty condition; leave it out instead")
        tests: list[Condition] = []
        words: list[str] = []
        if "any_of" in spec:
            # One of several conditions (Tianjin: level 1, or a reformed level 2 hospital).
            options = [
                self.condition(entry, f"{path}.any_of[{index}]")
                for index, entry in enumerate(_list(spec["any_of"], f"{path}.any_of"))
            ]
            option_tests = tuple(option.test for option in options)
            tests.append(lambda ctx: any(test(ctx) for test in option_tests))
            words.append("(" + ") or (".join(option.text for option in options) + ")")

        def members(key: str, known: Mapping[Any, Any], what: str) -> frozenset[Any]:
            return _members(spec[key], known, f"{path}.{key}", what)

        if "schemes" in spec:
            schemes = members("schemes", SCHEMES, "scheme")
            tests.append(lambda ctx: ctx.scheme in schemes)
            words.append("scheme " + " or ".join(sorted(schemes)))
        if "employment" in spec:
            employment = members("employment", EMPLOYMENTS, "employment")
            tests.append(lambda ctx: ctx.employment in employment)
            words.append("employment " + " or ".join(sorted(employment)))
        if "tiers" in spec:
            tiers = members("tiers", TIERS, "tier")
            tests.append(lambda ctx: ctx.tier in tiers)
            words.append("tier " + " or ".join(sorted(tiers)))
        if "levels" in spec:
            levels = members("levels", HOSPITAL_LEVELS, "hospital level")
            tests.append(lambda ctx: ctx.level in levels)
            words.append("hospital level " + " or ".join(map(str, sorted(levels))))
        if "statuses" in spec:
            tests.append(self.statuses(spec["statuses"], f"{path}.statuses", words))
        if "out_of_area" in spec:
            out_of_area = _bool(spec["out_of_area"], f"{path}.out_of_area")
            tests.append(lambda ctx: ctx.out_of_area is out_of_area)
            words.append(("" if out_of_area else "not ") + "out of area")
        if "referred" in spec:
            referred = _bool(spec["referred"], f"{path}.referred")
            tests.append(lambda ctx: ctx.referred is referred)
            words.append(("" if referred else "not ") + "referred")
        if "visit_types" in spec:
            visit_types = members("visit_types", VISIT_TYPES, "visit type")
            tests.append(lambda ctx: ctx.visit_type in visit_types)
            words.append("visit type " + " or ".join(sorted(visit_types)))
        if "reformed_hospital" in spec:
            reformed = _bool(spec["reformed_hospital"], f"{path}.reformed_hospital")
            tests.append(lambda ctx: ctx.reformed is reformed)
            words.append(("" if reformed else "not ") + "a reformed public hospital")
        if len(tests) == 1:
            return Described(tests[0], words[0])
        frozen = tuple(tests)

        def all_hold(ctx: VisitContext) -> bool:
            for test in frozen:  # noqa: SIM110 - a loop is faster than all() on the settlement path
                if not test(ctx):
                    return False
            return True

        return Described(all_hold, "; ".join(words))

    def statuses(self, data: Any, path: str, words: list[str]) -> Condition:
        """Any of these statuses held on the visit's date; an entry may limit a status to
        its first years (Xixia: 脱贫 keeps the poverty-only layers for one year)."""
        plain: set[str] = set()
        limited: list[tuple[str, int]] = []
        texts: list[str] = []
        for index, entry in enumerate(_list(data, path)):
            where = f"{path}[{index}]"
            if isinstance(entry, dict):
                _mapping(entry, where, ["status", "within_years"], _SOURCE_KEYS)
                self.provenance(entry, where)
                code = _member(entry["status"], STATUSES, f"{where}.status", "status")
                years = entry["within_years"]
                if isinstance(years, bool) or not isinstance(years, int) or years < 1:
                    raise _Fail(
                        f"{where}.within_years", f"expected a whole number of years, got {years!r}"
                    )
                limited.append((code, years))
                texts.append(f"{code} (for {years} year(s) from its start)")
            else:
                plain.add(_member(entry, STATUSES, where, "status"))
                texts.append(str(entry))
        words.append("status " + " or ".join(texts))
        frozen_plain = frozenset(plain)
        frozen_limited = tuple(limited)

        def test(ctx: VisitContext) -> bool:
            held = ctx.statuses
            if not held:
                return False
            if not frozen_plain.isdisjoint(held):
                return True
            for code, years in frozen_limited:
                if code in held:
                    for period in ctx.status_periods(code):
                        if period.holds_within_years(ctx.day, years):
                            return True
            return False

        return test

    # -- layers -----------------------------------------------------------

    def fund(self, data: Any, path: str) -> dict[str, str]:
        """The layer's fund for each scheme: one code, or ``{by_scheme: {...}}``."""
        if isinstance(data, dict):
            choices = _mapping(data, path, ["by_scheme"])["by_scheme"]
            if not isinstance(choices, dict) or set(choices) != set(SCHEMES):
                raise _Fail(
                    f"{path}.by_scheme", f"give a fund for each scheme ({', '.join(SCHEMES)})"
                )
            return {s: self.fund_code(f, f"{path}.by_scheme.{s}") for s, f in choices.items()}
        code = self.fund_code(data, path)
        return dict.fromkeys(SCHEMES, code)

    def fund_code(self, data: Any, path: str) -> str:
        if not isinstance(data, str) or data not in self.funds:
            raise _Fail(
                path,
                f"unknown fund {data!r}: a national fund-pay-type code "
                f"({', '.join(NATIONAL_FUNDS)}) or one of this pack's funds",
            )
        return data

    def layer(self, data: Any, index: int) -> Layer:
        path = f"layers[{index}]"
        spec = _mapping(
            data,
            path,
            ["id", "name", "fund", "rules"],
            ["eligible", "in_force_from", "base", "caps", "note", *_SOURCE_KEYS],
        )
        layer_id = _text(spec["id"], f"{path}.id")
        path = f"layers[{layer_id}]"
        if any(key in spec for key in _SOURCE_KEYS):
            self.provenance(spec, path)
        if "base" in spec and spec["base"] not in ("in_scope_remainder", "remainder"):
            raise _Fail(f"{path}.base", "expected in_scope_remainder or remainder")
        in_force_from = (
            self.in_force_from(spec["in_force_from"], f"{path}.in_force_from")
            if "in_force_from" in spec
            else None
        )
        caps: dict[str, Cap] = {}
        for cap_index, cap_data in enumerate(
            _list(spec.get("caps", []), f"{path}.caps", non_empty=False)
        ):
            cap = self.cap(cap_data, f"{path}.caps[{cap_index}]", layer_id)
            if cap.id in caps:
                raise _Fail(f"{path}.caps[{cap.id}]", "duplicate cap id")
            caps[cap.id] = cap
        rules: list[Rule] = []
        for rule_index, rule_data in enumerate(_list(spec["rules"], f"{path}.rules")):
            rule = self.rule(rule_data, f"{path}.rules[{rule_index}]", layer_id, caps)
            if any(r.id == rule.id for r in rules):
                raise _Fail(f"{path}.rules[{rule.id}]", "duplicate rule id")
            rules.append(rule)
        used = {cap.id for rule in rules for cap in rule.caps}
        for cap_id in caps:
            if cap_id not in used:
                raise _Fail(f"{path}.caps[{cap_id}]", "no rule draws on this cap")
        return Layer(
            id=layer_id,
            name=_text(spec["name"], f"{path}.name"),
            fund=self.fund(spec["fund"], f"{path}.fund"),
            eligible=self.condition(spec["eligible"], f"{path}.eligible")
            if "eligible" in spec
            else None,
            in_force_from=in_force_from,
            whole_remainder=spec.get("base") == "remainder",
            rules=tuple(rules),
        )

    def in_force_from(self, data: Any, path: str) -> date:
        """The day a layer or payout starts, later than its pack: ``{date: ..., source: ...}``."""
        entry = _mapping(data, path, ["date"], _SOURCE_KEYS)
        self.provenance(entry, path)
        return _date(entry["date"], f"{path}.date")

    def cap(self, data: Any, path: str, layer_id: str) -> Cap:
        spec = _mapping(
            data, path, ["id", "per", "yuan"], ["plus_carried_over_quota", *_SOURCE_KEYS]
        )
        cap_id = _text(spec["id"], f"{path}.id")
        path = path.rsplit("[", 1)[0] + f"[{cap_id}]"
        self.provenance(spec, path)
        if spec["per"] not in ("year", "visit"):
            raise _Fail(f"{path}.per", "expected year or visit")
        carried = _bool(
            spec.get("plus_carried_over_quota", False), f"{path}.plus_carried_over_quota"
        )
        if carried and "outpatient_quota_carry_over" not in self.document:
            raise _Fail(
                f"{path}.plus_carried_over_quota", "the pack has no outpatient_quota_carry_over"
            )
        amount = self.number(spec["yuan"], f"{path}.yuan", "yuan")
        if "stay" in amount.depends_on:
            raise _Fail(f"{path}.yuan", "a cap cannot depend on the n-th stay")
        return Cap(
            cap_id, spec["per"] == "year", amount.select, carried, f"paid:{layer_id}:{cap_id}"
        )

    def rule(self, data: Any, path: str, layer_id: str, caps: Mapping[str, Cap]) -> Rule:
        spec = _mapping(
            data,
            path,
            ["id", "visit_types", "period"],
            ["when", "deductible", "ratio", "bands", "adjustments", "caps", "note", *_SOURCE_KEYS],
        )
        rule_id = _text(spec["id"], f"{path}.id")
        path = path.rsplit("[", 1)[0] + f"[{rule_id}]"
        if any(key in spec for key in _SOURCE_KEYS):
            self.provenance(spec, path)
        visit_types = _members(
            spec["visit_types"], VISIT_TYPES, f"{path}.visit_types", "visit type"
        )
        if spec["period"] not in ("visit", "year"):
            raise _Fail(
                f"{path}.period", "expected visit (each visit alone) or year (over the year's base)"
            )
        yearly = spec["period"] == "year"
        depends: set[str] = set()
        deductible = None
        fixed_deductible: int | None = 0
        if "deductible" in spec:
            deductible, fixed_deductible = self.deductible(
                spec["deductible"], f"{path}.deductible", depends
            )
        if ("ratio" in spec) == ("bands" in spec):
            raise _Fail(path, "give either 'ratio' or 'bands'")
        if "ratio" in spec:
            ratio_spec = _mapping(spec["ratio"], f"{path}.ratio", ["percent"], _SOURCE_KEYS)
            self.provenance(ratio_spec, f"{path}.ratio")
            ratio = self.number(ratio_spec["percent"], f"{path}.ratio.percent", "percent")
            depends |= ratio.depends_on
            bands: tuple[Band, ...] = (Band(0, ratio.select),)
            fixed_ratios: list[int | None] = [ratio.constant]
        else:
            bands, fixed_ratios = self.bands(spec["bands"], f"{path}.bands", depends)
        adjustments = []
        for i, entry in enumerate(
            _list(spec.get("adjustments", []), f"{path}.adjustments", non_empty=False)
        ):
            where = f"{path}.adjustments[{i}]"
            adjustment = _mapping(entry, where, ["when", "points"], _SOURCE_KEYS)
            self.provenance(adjustment, where)
            adjustments.append(
                Adjustment(
                    self.condition(adjustment["when"], f"{where}.when"),
                    self.scalar(adjustment["points"], f"{where}.points", "points"),
                )
            )
        rule_caps = []
        for i, cap_id in enumerate(_list(spec.get("caps", []), f"{path}.caps", non_empty=False)):
            if cap_id not in caps:
                raise _Fail(
                    f"{path}.caps[{i}]",
                    f"unknown cap {cap_id!r} (the layer's caps: {', '.join(caps)})",
                )
            rule_caps.append(caps[cap_id])
        if "level" in depends and PHARMACY in visit_types:
            raise _Fail(
                path, "pharmacy purchases have no hospital level; do not choose by level here"
            )
        if "stay" in depends and visit_types != {INPATIENT}:
            raise _Fail(path, "a choice by n-th stay needs a rule for inpatient visits only")
        return Rule(
            id=rule_id,
            visit_types=visit_types,
            when=self.condition(spec["when"], f"{path}.when") if "when" in spec else None,
            yearly=yearly,
            deductible=deductible,
            bands=bands,
            adjustments=tuple(adjustments),
            caps=tuple(rule_caps),
            accumulator=f"base:{layer_id}:{rule_id}",
            deductible_of=(lambda ctx: 0) if deductible is None else deductible.selector,
            flat_ratio=bands[0].ratio if "ratio" in spec else None,
            schedule=BandSchedule.build(
                fixed_deductible,
                tuple(b.lower for b in bands),
                tuple(r for r in fixed_ratios if r is not None),
            )
            if len(bands) > 1 and fixed_deductible is not None and None not in fixed_ratios
            else None,
        )

    def deductible(self, data: Any, path: str, depends: set[str]) -> tuple[Deductible, int | None]:
        """The deductible, and its amount when it is the same for every visit."""
        spec = _mapping(
            data,
            path,
            ["yuan"],
            ["after_low_outpatient_year", "quiet_year_reductions", *_SOURCE_KEYS],
        )
        self.provenance(spec, path)
        amount = self.number(spec["yuan"], f"{path}.yuan", "yuan")
        depends |= amount.depends_on
        low = None
        if "after_low_outpatient_year" in spec:
            where = f"{path}.after_low_outpatient_year"
            entry = _mapping(
                spec["after_low_outpatient_year"],
                where,
                ["outpatient_cost_at_most_yuan", "yuan"],
                _SOURCE_KEYS,
            )
            self.provenance(entry, where)
            threshold = self.number(
                entry["outpatient_cost_at_most_yuan"],
                f"{where}.outpatient_cost_at_most_yuan",
                "yuan",
            )
            lowered = self.number(entry["yuan"], f"{where}.yuan", "yuan")
            depends |= threshold.depends_on | lowered.depends_on
            low = LowOutpatientYearDeductible(threshold.select, lowered.select)
        quiet = None
        if "quiet_year_reductions" in spec:
            where = f"{path}.quiet_year_reductions"
            entry = _mapping(spec["quiet_year_reductions"], where, ["by_years"], _SOURCE_KEYS)
            self.provenance(entry, where)
            by_years = entry["by_years"]
            if not isinstance(by_years, dict) or sorted(by_years) != list(
                range(1, len(by_years) + 1)
            ):
                raise _Fail(
                    f"{where}.by_years",
                    "expected reductions for 1, 2, ... quiet years (the last for more)",
                )
            quiet = QuietYearReductions(
                tuple(
                    self.scalar(by_years[n], f"{where}.by_years.{n}", "yuan")
                    for n in sorted(by_years)
                )
            )
        fixed = amount.constant if low is None and quiet is None else None
        return Deductible(amount.select, low, quiet), fixed

    def bands(
        self, data: Any, path: str, depends: set[str]
    ) -> tuple[tuple[Band, ...], list[int | None]]:
        spec = _mapping(data, path, ["steps"], _SOURCE_KEYS)
        self.provenance(spec, path)
        bands: list[Band] = []
        fixed: list[int | None] = []
        previous = -1
        for index, step in enumerate(_list(spec["steps"], f"{path}.steps")):
            where = f"{path}.steps[{index}]"
            _mapping(step, where, ["from_yuan", "percent"])
            lower = self.scalar(step["from_yuan"], f"{where}.from_yuan", "yuan")
            if lower <= previous:
                raise _Fail(
                    f"{where}.from_yuan", "bands must rise: each starts above the one before"
                )
            previous = lower
            ratio = self.number(step["percent"], f"{where}.percent", "percent")
            depends |= ratio.depends_on
            bands.append(Band(lower, ratio.select))
            fixed.append(ratio.constant)
        return tuple(bands), fixed

    # -- instant payouts ----------------------------------------------------

    def payout(self, data: Any, index: int) -> InstantPayout:
        path = f"instant_payouts[{index}]"
        spec = _mapping(
            data,
            path,
            ["id", "name", "fund", "yuan", "disease_classes"],
            ["eligible", "in_force_from", "note", *_SOURCE_KEYS],
        )
        payout_id = _text(spec["id"], f"{path}.id")
        path = f"instant_payouts[{payout_id}]"
        self.provenance(spec, path)
        in_force_from = (
            self.in_force_from(spec["in_force_from"], f"{path}.in_force_from")
            if "in_force_from" in spec
            else None
        )
        amount = self.number(spec["yuan"], f"{path}.yuan", "yuan")
        if amount.depends_on - {"level", "scheme", "age", "status", "employment"}:
            raise _Fail(
                f"{path}.yuan", "an instant payout is chosen by level, scheme, age or status only"
            )
        listing = _mapping(
            spec["disease_classes"], f"{path}.disease_classes", ["classes"], _SOURCE_KEYS
        )
        self.provenance(listing, f"{path}.disease_classes")
        classes: list[DiseaseClass] = []
        for class_index, entry in enumerate(
            _list(listing["classes"], f"{path}.disease_classes.classes")
        ):
            where = f"{path}.disease_classes.classes[{class_index}]"
            item = _mapping(entry, where, ["id", "name", "diseases"], _SOURCE_KEYS)
            if any(key in item for key in _SOURCE_KEYS):
                self.provenance(item, where)
            patterns: list[str] = []
            for d_index, disease in enumerate(_list(item["diseases"], f"{where}.diseases")):
                d_where = f"{where}.diseases[{d_index}]"
                _mapping(disease, d_where, ["name", "icd10"])
                _text(disease["name"], f"{d_where}.name")
                for p_index, pattern in enumerate(_list(disease["icd10"], f"{d_where}.icd10")):
                    patterns.append(_icd10_pattern(pattern, f"{d_where}.icd10[{p_index}]"))
            class_id = _text(item["id"], f"{where}.id")
            if any(c.id == class_id for c in classes):
                raise _Fail(where, f"duplicate disease class {class_id!r}")
            classes.append(
                DiseaseClass(
                    class_id, _text(item["name"], f"{where}.name"), _icd10_matcher(tuple(patterns))
                )
            )
        return InstantPayout(
            id=payout_id,
            name=_text(spec["name"], f"{path}.name"),
            fund=self.fund_code(spec["fund"], f"{path}.fund"),
            eligible=self.condition(spec["eligible"], f"{path}.eligible")
            if "eligible" in spec
            else None,
            in_force_from=in_force_from,
            amount=amount.select,
            classes=tuple(classes),
        )

    # -- outpatient certificates (门诊慢特病) ----------------------------------

    def certificates(self, data: Any) -> CertificateRules:
        """The diseases a certificate may name, each of a kind with its ICD-10 codes; how many
        one application may name; how many years a certificate lasts."""
        path = "certificates"
        spec = _mapping(
            data,
            path,
            ["max_diseases_per_application", "validity_years", "diseases"],
            ["note"],
        )
        counts: dict[str, int] = {}
        for key in ("max_diseases_per_application", "validity_years"):
            entry = _mapping(spec[key], f"{path}.{key}", ["value"], _SOURCE_KEYS)
            self.provenance(entry, f"{path}.{key}")
            counts[key] = _whole(entry["value"], f"{path}.{key}.value", 1, 10)
        diseases: dict[str, CertifiedDisease] = {}
        listing = _free_mapping(spec["diseases"], f"{path}.diseases")
        for kind, entry in listing.items():
            where = f"{path}.diseases.{kind}"
            _member(kind, CERTIFICATE_KINDS, where, "certificate kind")
            group = _mapping(entry, where, ["list"], _SOURCE_KEYS)
            self.provenance(group, where)
            for index, item in enumerate(_list(group["list"], f"{where}.list")):
                at = f"{where}.list[{index}]"
                disease = _mapping(item, at, ["id", "name", "icd10"], _SOURCE_KEYS)
                if any(key in disease for key in _SOURCE_KEYS):
                    self.provenance(disease, at)
                disease_id = _text(disease["id"], f"{at}.id")
                if not _DISEASE_ID.fullmatch(disease_id):
                    raise _Fail(f"{at}.id", f"lower-case words joined by '_', got {disease_id!r}")
                if disease_id in diseases:
                    raise _Fail(at, f"duplicate disease id {disease_id!r}")
                patterns = tuple(
                    _icd10_pattern(pattern, f"{at}.icd10[{p_index}]")
                    for p_index, pattern in enumerate(_list(disease["icd10"], f"{at}.icd10"))
                )
                diseases[disease_id] = CertifiedDisease(
                    disease_id,
                    _text(disease["name"], f"{at}.name"),
                    str(kind),
                    patterns,
                    _icd10_matcher(patterns),
                )
        if not diseases:
            raise _Fail(f"{path}.diseases", "list the diseases of at least one kind")
        return CertificateRules(
            diseases=diseases,
            max_diseases_per_application=counts["max_diseases_per_application"],
            validity_years=counts["validity_years"],
        )

    # -- admission (入院登记) ---------------------------------------------------

    def admission(self, data: Any) -> tuple[NoDepositRule, ...]:
        """Who is admitted without a deposit: rules tried in order, each a condition on the
        admission (statuses, referral, out of area...) with the reason a clerk reads."""
        spec = _mapping(data, "admission", ["no_deposit"], ["note"])
        rules: list[NoDepositRule] = []
        for index, entry in enumerate(_list(spec["no_deposit"], "admission.no_deposit")):
            path = f"admission.no_deposit[{index}]"
            rule = _mapping(entry, path, ["id", "reason", "when"], _SOURCE_KEYS)
            rule_id = _text(rule["id"], f"{path}.id")
            path = f"admission.no_deposit[{rule_id}]"
            if any(existing.id == rule_id for existing in rules):
                raise _Fail(path, "duplicate rule id")
            self.provenance(rule, path)
            rules.append(
                NoDepositRule(
                    rule_id,
                    _text(rule["reason"], f"{path}.reason"),
                    self.condition(rule["when"], f"{path}.when"),
                )
            )
        return tuple(rules)

    # -- subsidised enrolment (资助参保) --------------------------------------

    def enrolment_subsidy(self, data: Any) -> tuple[SubsidyCategory, ...]:
        """The categories, in the pack's order (the earlier wins a tie)."""
        categories: list[SubsidyCategory] = []
        for index, entry in enumerate(_list(data, "enrolment_subsidy")):
            category = self.subsidy_category(entry, index)
            if any(existing.id == category.id for existing in categories):
                raise _Fail(f"enrolment_subsidy[{category.id}]", "duplicate category id")
            categories.append(category)
        return tuple(categories)

    def subsidy_category(self, data: Any, index: int) -> SubsidyCategory:
        path = f"enrolment_subsidy[{index}]"
        spec = _mapping(
            data,
            path,
            ["id", "name", "statuses", "premium", "subsidy"],
            ["also_one_of", "note", *_SOURCE_KEYS],
        )
        category_id = _text(spec["id"], f"{path}.id")
        if not _CATEGORY_ID.fullmatch(category_id):
            raise _Fail(
                f"{path}.id",
                f"a category id is lower-case letters, digits and _, got {category_id!r}",
            )
        path = f"enrolment_subsidy[{category_id}]"
        if any(key in spec for key in _SOURCE_KEYS):
            self.provenance(spec, path)
        statuses = _members(spec["statuses"], STATUSES, f"{path}.statuses", "status")
        also = (
            _members(spec["also_one_of"], STATUSES, f"{path}.also_one_of", "status")
            if "also_one_of" in spec
            else frozenset()
        )
        premium = _mapping(spec["premium"], f"{path}.premium", ["yuan"], ["tier", *_SOURCE_KEYS])
        self.provenance(premium, f"{path}.premium")
        premium_fen = self.positive_yuan(premium["yuan"], f"{path}.premium.yuan")
        tier = (
            _member(premium["tier"], TIERS, f"{path}.premium.tier", "tier")
            if "tier" in premium
            else None
        )
        where = f"{path}.subsidy"
        subsidy = _mapping(spec["subsidy"], where, [], ["yuan", "whole_premium", *_SOURCE_KEYS])
        if ("yuan" in subsidy) == ("whole_premium" in subsidy):
            raise _Fail(
                where, "give either 'yuan' (a part of the premium) or 'whole_premium: true'"
            )
        self.provenance(subsidy, where)
        if "whole_premium" in subsidy:
            if not _bool(subsidy["whole_premium"], f"{where}.whole_premium"):
                raise _Fail(
                    f"{where}.whole_premium", "true, or leave it out and give 'yuan' for a part"
                )
            subsidy_fen = premium_fen
        else:
            subsidy_fen = self.positive_yuan(subsidy["yuan"], f"{where}.yuan")
            if subsidy_fen > premium_fen:
                raise _Fail(
                    f"{where}.yuan",
                    f"{subsidy['yuan']} yuan is more than the premium ({premium['yuan']} yuan)",
                )
        return SubsidyCategory(
            id=category_id,
            name=_text(spec["name"], f"{path}.name"),
            statuses=statuses,
            also_one_of=also,
            tier=tier,
            premium_fen=premium_fen,
            subsidy_fen=subsidy_fen,
        )

    # -- watching the burden (docs/domain.md section 7) ----------------------

    def monitoring(self, data: Any) -> MonitoringRules:
        spec = _mapping(
            data,
            "monitoring",
            [
                "reference_income",
                "return_to_poverty",
                "impoverishment",
                "overdue_days",
                "secondary_assistance",
            ],
            ["note"],
        )
        path = "monitoring.reference_income"
        income = _mapping(spec["reference_income"], path, ["yuan", "year"], _SOURCE_KEYS)
        self.provenance(income, path)
        path = "monitoring.return_to_poverty"
        returning = _mapping(
            spec["return_to_poverty"], path, ["percent_of_reference", "statuses"], _SOURCE_KEYS
        )
        self.provenance(returning, path)
        path = "monitoring.impoverishment"
        falling = _mapping(spec["impoverishment"], path, ["percent_of_reference"], _SOURCE_KEYS)
        self.provenance(falling, path)
        path = "monitoring.overdue_days"
        overdue = _mapping(spec["overdue_days"], path, ["days"], _SOURCE_KEYS)
        self.provenance(overdue, path)
        path = "monitoring.secondary_assistance"
        secondary = _mapping(
            spec["secondary_assistance"],
            path,
            ["statuses", "threshold_yuan", "percent", "yearly_cap_yuan"],
            _SOURCE_KEYS,
        )
        self.provenance(secondary, path)
        return MonitoringRules(
            reference_income_fen=self.positive_yuan(
                income["yuan"], "monitoring.reference_income.yuan"
            ),
            reference_year=_whole(income["year"], "monitoring.reference_income.year", 1978, 2100),
            return_to_poverty_share=self.positive_percent(
                returning["percent_of_reference"],
                "monitoring.return_to_poverty.percent_of_reference",
            ),
            return_to_poverty_statuses=_members(
                returning["statuses"], STATUSES, "monitoring.return_to_poverty.statuses", "status"
            ),
            impoverishment_share=self.positive_percent(
                falling["percent_of_reference"], "monitoring.impoverishment.percent_of_reference"
            ),
            overdue_days=_whole(overdue["days"], "monitoring.overdue_days.days", 1, 366),
            secondary_statuses=_members(
                secondary["statuses"],
                STATUSES,
                "monitoring.secondary_assistance.statuses",
                "status",
            ),
            secondary_threshold_fen=self.scalar(
                secondary["threshold_yuan"], f"{path}.threshold_yuan", "yuan"
            ),
            secondary_share=self.positive_percent(secondary["percent"], f"{path}.percent"),
            secondary_yearly_cap_fen=self.positive_yuan(
                secondary["yearly_cap_yuan"], f"{path}.yearly_cap_yuan"
            ),
        )

    # -- employees' personal accounts (职工个人账户) ----------------------------

    def personal_account(self, data: Any) -> PersonalAccountRules:
        """The section's own ``source`` or ``assumed`` says why the region has accounts and
        why a part is left out (no card share, no withdrawal, no catalogue)."""
        path = "personal_account"
        spec = _mapping(
            data, path, [], ["card_share", "withdrawal", "products", "note", *_SOURCE_KEYS]
        )
        self.provenance(spec, path)
        card_share = None
        if "card_share" in spec:
            where = f"{path}.card_share"
            entry = _mapping(spec["card_share"], where, ["percent"], _SOURCE_KEYS)
            self.provenance(entry, where)
            card_share = self.positive_percent(entry["percent"], f"{where}.percent")
        withdrawal = None
        if "withdrawal" in spec:
            where = f"{path}.withdrawal"
            entry = _mapping(spec["withdrawal"], where, ["above_yuan"], _SOURCE_KEYS)
            self.provenance(entry, where)
            withdrawal = self.positive_yuan(entry["above_yuan"], f"{where}.above_yuan")
        products: list[HealthProduct] = []
        if "products" in spec:
            where = f"{path}.products"
            entry = _mapping(spec["products"], where, ["catalogue"], _SOURCE_KEYS)
            self.provenance(entry, where)
            for index, item in enumerate(_list(entry["catalogue"], f"{where}.catalogue")):
                product = self.health_product(item, f"{where}.catalogue[{index}]")
                if any(existing.id == product.id for existing in products):
                    raise _Fail(f"{where}.catalogue[{product.id}]", "duplicate product id")
                products.append(product)
        return PersonalAccountRules(card_share, withdrawal, tuple(products))

    def health_product(self, data: Any, path: str) -> HealthProduct:
        spec = _mapping(data, path, ["id", "name", "insurer", "premium_yuan"])
        product_id = _text(spec["id"], f"{path}.id")
        if not _CATEGORY_ID.fullmatch(product_id) or len(product_id) > 64:
            raise _Fail(
                f"{path}.id",
                f"a product id is lower-case letters, digits and _ (at most 64), "
                f"got {product_id!r}",
            )
        return HealthProduct(
            id=product_id,
            name=_text(spec["name"], f"{path}.name"),
            insurer=_text(spec["insurer"], f"{path}.insurer"),
            premium_fen=self.positive_yuan(spec["premium_yuan"], f"{path}.premium_yuan"),
        )

    def positive_percent(self, data: Any, path: str) -> int:
        value = self.scalar(data, path, "percent")
        if value == 0:
            raise _Fail(path, "must be above 0")
        return value

    def positive_yuan(self, data: Any, path: str) -> int:
        value = self.scalar(data, path, "yuan")
        if value == 0:
            raise _Fail(path, "must be above 0")
        return value

    # -- accident cover (意外伤害附加保险, docs/domain.md section 6) -----------

    def accident_cover(self, data: Any) -> AccidentCover:
        spec = _mapping(
            data,
            "accident_cover",
            ["insurer", "covered", "death", "medical_cap", "claim_within"],
            ["note"],
        )
        path = "accident_cover.insurer"
        insurer = _mapping(spec["insurer"], path, ["fund"], _SOURCE_KEYS)
        self.provenance(insurer, path)
        own_funds = _free_mapping(self.document.get("funds", {}), "funds")
        fund = insurer["fund"]
        if not isinstance(fund, str) or fund not in own_funds:
            raise _Fail(
                f"{path}.fund",
                f"expected one of this pack's own funds ({', '.join(map(str, own_funds))}): "
                f"the insurer that pays the claims, got {fund!r}",
            )
        path = "accident_cover.covered"
        covered = _mapping(spec["covered"], path, ["schemes"], _SOURCE_KEYS)
        self.provenance(covered, path)
        entries = {
            name: _mapping(spec[name], f"accident_cover.{name}", [unit], _SOURCE_KEYS)
            for name, unit in (
                ("death", "yuan"),
                ("medical_cap", "yuan"),
                ("claim_within", "years"),
            )
        }
        for name, entry in entries.items():
            self.provenance(entry, f"accident_cover.{name}")
        return AccidentCover(
            fund=fund,
            schemes=_members(covered["schemes"], SCHEMES, f"{path}.schemes", "scheme"),
            death_fen=self.claim_yuan(entries["death"]["yuan"], "accident_cover.death.yuan"),
            medical_cap_fen=self.claim_yuan(
                entries["medical_cap"]["yuan"], "accident_cover.medical_cap.yuan"
            ),
            claim_within_years=_whole(
                entries["claim_within"]["years"], "accident_cover.claim_within.years", 1, 30
            ),
        )

    def claim_yuan(self, data: Any, path: str) -> int:
        """A sum a claim pays: above 0 and at most one item's limit (``MAX_ITEM_FEN``)."""
        value = self.positive_yuan(data, path)
        if value > MAX_ITEM_FEN:
            raise _Fail(path, f"at most {MAX_ITEM_FEN // 100:,} yuan, got {data}")
        return value

    # -- the pack -----------------------------------------------------------

    def read_sources(self, data: Any) -> None:
        """The pack's ``sources``: the documents a ``source:`` may cite, each by an id with
        its title, publisher and date (a citation a reader can look up, never a file)."""
        sources = _free_mapping(data, "sources")
        if not sources:
            raise _Fail("sources", "name at least one source document")
        for key, entry in sources.items():
            path = f"sources.{key}"
            if not isinstance(key, str) or not _DOCUMENT_ID.fullmatch(key):
                raise _Fail(
                    path,
                    f"a document id is lower-case words and digits joined by '-' "
                    f"(xixia-2017), got {key!r}",
                )
            citation = _mapping(entry, path, _CITATION_KEYS)
            self.sources[key] = ", ".join(
                _text(citation[part], f"{path}.{part}") for part in _CITATION_KEYS
            )

    def pack(self, file: str) -> Pack:
        spec = _mapping(
            self.document,
            "",
            ["id", "region", "title", "effective_from", "sources", "catalogue", "layers"],
            [
                "funds",
                "outpatient_quota_carry_over",
                "instant_payouts",
                "enrolment_subsidy",
                "monitoring",
                "certificates",
                "admission",
                "personal_account",
                "accident_cover",
                "note",
            ],
        )
        pack_id = _text(spec["id"], "id")
        if not PACK_ID.fullmatch(pack_id):
            raise _Fail("id", f"a pack id is <region-name>-<year> in lower case, got {pack_id!r}")
        self.read_sources(spec["sources"])
        region = _mapping(spec["region"], "region", ["code", "name"])
        region_code = region["code"]
        if not isinstance(region_code, str) or not re.fullmatch(r"\d{6}", region_code):
            raise _Fail(
                "region.code",
                f"a 6-digit administrative division code as a string, got {region_code!r}",
            )
        catalogue = _mapping(
            spec["catalogue"], "catalogue", ["class_b_pre_self_pay_percent"], _SOURCE_KEYS
        )
        self.provenance(catalogue, "catalogue")
        pre_self_pay = self.scalar(
            catalogue["class_b_pre_self_pay_percent"],
            "catalogue.class_b_pre_self_pay_percent",
            "percent",
        )
        for fund_id, name in _free_mapping(spec.get("funds", {}), "funds").items():
            if str(fund_id) in NATIONAL_FUNDS:
                raise _Fail(f"funds.{fund_id}", "is a national code already; do not declare it")
            self.funds[str(fund_id)] = _text(name, f"funds.{fund_id}")
        quota = None
        if "outpatient_quota_carry_over" in spec:
            entry = _mapping(
                spec["outpatient_quota_carry_over"],
                "outpatient_quota_carry_over",
                ["quota_yuan"],
                _SOURCE_KEYS,
            )
            self.provenance(entry, "outpatient_quota_carry_over")
            compiled = self.number(
                entry["quota_yuan"], "outpatient_quota_carry_over.quota_yuan", "yuan"
            )
            if compiled.depends_on - {"scheme", "employment"}:
                raise _Fail(
                    "outpatient_quota_carry_over.quota_yuan",
                    "choose the quota by scheme or employment only",
                )
            quota = compiled.select
        layers: list[Layer] = []
        for index, data in enumerate(_list(spec["layers"], "layers")):
            layer = self.layer(data, index)
            if any(existing.id == layer.id for existing in layers):
                raise _Fail(f"layers[{layer.id}]", "duplicate layer id")
            layers.append(layer)
        payouts = tuple(
            self.payout(data, index)
            for index, data in enumerate(
                _list(spec.get("instant_payouts", []), "instant_payouts", non_empty=False)
            )
        )
        if "enrolment_subsidy" in spec:
            self.enrolment_subsidy(spec["enrolment_subsidy"])  # checked now, read on demand
        if "monitoring" in spec:
            self.monitoring(spec["monitoring"])  # likewise
        if "personal_account" in spec:
            self.personal_account(spec["personal_account"])  # likewise
        if "accident_cover" in spec:
            self.accident_cover(spec["accident_cover"])  # likewise
        return Pack(
            id=pack_id,
            region_code=region_code,
            region_name=_text(region["name"], "region.name"),
            title=_text(spec["title"], "title"),
            effective_from=_date(spec["effective_from"], "effective_from"),
            file=file,
            class_b_pre_self_pay=pre_self_pay,
            layers=tuple(layers),
            outpatient_quota=quota,
            payouts=payouts,
            funds={code: self.funds[code] for code in self.funds},
            document=self.document,
            certificates=self.certificates(spec["certificates"])
            if "certificates" in spec
            else None,
            no_deposit=self.admission(spec["admission"]) if "admission" in spec else (),
        )


def _icd10_pattern(data: Any, path: str) -> str:
    if not isinstance(data, str):
        raise _Fail(path, f"expected an ICD-10 code or range, got {_kind(data)}")
    match = _ICD10_RANGE.fullmatch(data)
    if match:
        if match.group(1) > match.group(2):
            raise _Fail(path, f"range {data} runs backwards")
        return data
    if _ICD10_CATEGORY.fullmatch(data) or _ICD10_CODE.fullmatch(data):
        return data
    raise _Fail(
        path, f"expected an ICD-10 category (I21), code (N18.5) or range (C00-C97), got {data!r}"
    )


def normalise_icd10(code: str) -> str:
    """Upper case, with the dot after the category (``c341`` -> ``C34.1``)."""
    code = code.strip().upper()
    if len(code) > 3 and code[3] != ".":
        code = f"{code[:3]}.{code[3:]}"
    return code


def _icd10_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    ranges: list[tuple[str, str]] = []
    prefixes: list[str] = []
    for pattern in patterns:
        match = _ICD10_RANGE.fullmatch(pattern)
        if match:
            ranges.append((match.group(1), match.group(2)))
        else:
            prefixes.append(pattern)

    def matches(diagnosis: str) -> bool:
        code = normalise_icd10(diagnosis)
        category = code[:3]
        if any(low <= category <= high for low, high in ranges):
            return True
        return any(code == p or code.startswith(p if "." in p else p + ".") for p in prefixes)

    return matches


def compile_pack(document: Any, file: str) -> Pack:
    """Check and compile a pack already read from YAML; errors name ``file`` and the rule."""
    try:
        return _PackCompiler(document).pack(file)
    except _Fail as failure:
        raise PolicyPackError(file, failure.path, failure.message) from None


def subsidy_categories(pack: Pack) -> tuple[SubsidyCategory, ...]:
    """The pack's subsidised-enrolment categories (资助参保), in its order; none when the
    pack has no ``enrolment_subsidy`` section (nobody's premium is paid there)."""
    if "enrolment_subsidy" not in pack.document:
        return ()
    return _section(pack, "enrolment_subsidy", _PackCompiler.enrolment_subsidy)


def monitoring_rules(pack: Pack) -> MonitoringRules | None:
    """The pack's rules for watching the burden (docs/domain.md section 7); None when the
    pack has no ``monitoring`` section."""
    if "monitoring" not in pack.document:
        return None
    return _section(pack, "monitoring", _PackCompiler.monitoring)


def personal_account_rules(pack: Pack) -> PersonalAccountRules | None:
    """The pack's rules for employees' personal accounts (职工个人账户, docs/domain.md section
    5); None when the pack has no ``personal_account`` section (no accounts there)."""
    if "personal_account" not in pack.document:
        return None
    return _section(pack, "personal_account", _PackCompiler.personal_account)


def accident_cover(pack: Pack) -> AccidentCover | None:
    """The pack's accident cover (意外伤害附加保险, docs/domain.md section 6); None when the
    pack has no ``accident_cover`` section (no accident claim is taken under it)."""
    if "accident_cover" not in pack.document:
        return None
    return _section(pack, "accident_cover", _PackCompiler.accident_cover)


_T = TypeVar("_T")


def _section(pack: Pack, name: str, compile_section: Callable[[_PackCompiler, Any], _T]) -> _T:
    """A section of the pack compiled on demand. ``Pack`` (``doudi.core.policy``) keeps the
    pack's document, which loading has checked; a section the engine does not use is
    compiled from it here, a few entries, outside any settlement."""
    compiler = _PackCompiler(pack.document)
    try:
        compiler.read_sources(pack.document["sources"])
        return compile_section(compiler, pack.document[name])
    except _Fail as failure:
        raise PolicyPackError(pack.file, failure.path, failure.message) from None


def load_pack(path: Path) -> Pack:
    """Load and check one pack file; a ``PolicyPackError`` names the file and the rule."""
    name = path.name
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except OSError as error:
        raise PolicyPackError(name, "", f"cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PolicyPackError(name, "", f"not valid YAML: {error}".replace("\n", " ")) from None
    pack = compile_pack(document, name)
    if path.stem != pack.id:
        raise PolicyPackError(
            name, "id", f"the file of pack {pack.id!r} must be named {pack.id}.yaml"
        )
    return pack


class PackRegistry:
    """The packs a deployment knows; which one is in force for a region on a day."""

    def __init__(self, packs: Iterable[Pack]) -> None:
        self._by_id: dict[str, Pack] = {}
        for pack in packs:
            if pack.id in self._by_id:
                raise PolicyPackError(pack.file, "id", f"pack {pack.id!r} is defined twice")
            for other in self._by_id.values():
                if (
                    other.region_code == pack.region_code
                    and other.effective_from == pack.effective_from
                ):
                    raise PolicyPackError(
                        pack.file,
                        "effective_from",
                        f"{other.id} already starts on {pack.effective_from.isoformat()} "
                        f"for region {pack.region_code}",
                    )
            self._by_id[pack.id] = pack

    @classmethod
    def load(cls, extra_dirs: Iterable[Path] = ()) -> PackRegistry:
        """The packs shipped with Doudi, plus those in ``extra_dirs`` (a region's own)."""
        builtin = resources.files("doudi.packs")
        files = [Path(str(entry)) for entry in builtin.iterdir() if entry.name.endswith(".yaml")]
        for directory in extra_dirs:
            files.extend(Path(directory).glob("*.yaml"))
        return cls(load_pack(path) for path in sorted(files))

    def __iter__(self) -> Iterator[Pack]:
        return iter(sorted(self._by_id.values(), key=lambda p: (p.region_code, p.effective_from)))

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def regions(self) -> frozenset[str]:
        """The pooling regions that have a pack: those a person or a roster may be of."""
        return frozenset(pack.region_code for pack in self._by_id.values())

    def get(self, pack_id: str) -> Pack | None:
        return self._by_id.get(pack_id)

    def in_force(self, region_code: str, day: date) -> Pack | None:
        """The region's newest pack that has started on ``day``."""
        started = [
            p
            for p in self._by_id.values()
            if p.region_code == region_code and p.effective_from <= day
        ]
        return max(started, key=lambda p: p.effective_from, default=None)

    def superseded_on(self, pack: Pack, day: date) -> Pack | None:
        """The newer pack of the same region already in force on ``day``, if any."""
        current = self.in_force(pack.region_code, day)
        return current if current is not None and current.id != pack.id else None
