"""Policy packs in words, for a policy analyst (``doudi packs``, ``doudi packs show ID``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from doudi.core.codes import (
    CERTIFICATE_KINDS,
    CERTIFIED_VISIT_TYPES,
    NATIONAL_FUNDS,
    TIERS,
    VISIT_TYPES,
)
from doudi.core.money import format_percent, percent_to_basis_points, yuan_to_fen
from doudi.core.monitoring import IMPOVERISHMENT, RETURN_TO_POVERTY
from doudi.core.packs import (
    accident_cover,
    monitoring_rules,
    personal_account_rules,
    subsidy_categories,
)
from doudi.core.policy import Described, Pack


def pack_table(packs: Iterable[Pack]) -> str:
    rows = [("ID", "REGION", "IN FORCE FROM", "LAYERS", "TITLE")]
    for pack in packs:
        layers = f"{len(pack.layers)}" + (f" + {len(pack.payouts)} payout" if pack.payouts else "")
        rows.append(
            (
                pack.id,
                f"{pack.region_code} {pack.region_name}",
                pack.effective_from.isoformat(),
                layers,
                pack.title,
            )
        )
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=False)
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(2 if ord(char) > 0x2E80 else 1 for char in text)


def _amount(value: Any, unit: str) -> str:
    if unit == "yuan":
        return _fen_text(yuan_to_fen(value))
    points = percent_to_basis_points(value)
    if unit == "points":
        return ("+" if points >= 0 else "") + format_percent(points).replace("%", " points")
    return format_percent(points)


def _fen_text(fen: int) -> str:
    whole, cents = divmod(fen, 100)
    return f"{whole:,} yuan" if cents == 0 else f"{whole:,}.{cents:02d} yuan"


def value_text(value: Any, unit: str) -> str:
    """A number or a choice of numbers, as a sentence fragment."""
    if not isinstance(value, dict):
        return _amount(value, unit)
    ((kind, choices),) = value.items()
    if kind == "by_level":
        return ", ".join(f"level {k}: {value_text(v, unit)}" for k, v in choices.items())
    if kind in ("by_scheme", "by_employment"):
        return ", ".join(f"{k}: {_nested(v, unit)}" for k, v in choices.items())
    if kind == "by_age":
        return ", ".join(
            (f"under {step['under']}: " if "under" in step else "older: ")
            + _nested(step["value"], unit)
            for step in choices
        )
    if kind == "by_stay":
        return ", ".join(
            (f"stay {step['nth']}: " if "nth" in step else f"stays {step['from_nth']} and later: ")
            + _nested(step["value"], unit)
            for step in choices
        )
    if kind == "by_status":
        return "; ".join(
            (f"status {' or '.join(step['statuses'])}: " if "statuses" in step else "otherwise: ")
            + _nested(step["value"], unit)
            for step in choices
        )
    return repr(value)


def _nested(value: Any, unit: str) -> str:
    text = value_text(value, unit)
    return f"({text})" if isinstance(value, dict) else text


def _provenance(spec: Mapping[str, Any], indent: str) -> list[str]:
    lines = []
    if "source" in spec:
        lines.append(f"{indent}source: {spec['source']}")
    if "assumed" in spec:
        lines.append(f"{indent}assumed: {spec['assumed']}")
    return lines


def describe_pack(pack: Pack) -> str:
    doc = pack.document
    out = [
        f"{pack.id}: {pack.title}",
        f"Region {pack.region_code} {pack.region_name}; in force from {pack.effective_from.isoformat()} "
        "until a newer pack for the region starts.",
        "",
        "Sources:",
    ]
    out += [
        f"  {key}: {source['title']}; {source['publisher']}; {source['date']}"
        for key, source in doc["sources"].items()
    ]
    catalogue = doc["catalogue"]
    out += [
        "",
        "Catalogue:",
        f"  class B (乙类) personal pre-payment: {_amount(catalogue['class_b_pre_self_pay_percent'], 'percent')} "
        "of the item's amount within the price limit; class C (丙类) and over-limit parts are self-pay",
    ]
    out += _provenance(catalogue, "    ")
    if "outpatient_quota_carry_over" in doc:
        quota = doc["outpatient_quota_carry_over"]
        out += [
            "",
            "Outpatient quota carried over to the inpatient maximum (门诊额度跨年度转移):",
            f"  yearly quota: {value_text(quota['quota_yuan'], 'yuan')}; the unused part "
            "(quota minus outpatient cost) of each earlier year is added, never falling",
        ]
        out += _provenance(quota, "    ")
    for number, layer in enumerate(doc["layers"], start=1):
        out += ["", *_describe_layer(pack, number, layer)]
    for payout in doc.get("instant_payouts", []):
        out += ["", *_describe_payout(pack, payout)]
    out += ["", *_describe_certificates(pack)]
    out += ["", *_describe_admission(pack)]
    out += ["", *_describe_enrolment_subsidy(pack)]
    out += ["", *_describe_monitoring(pack)]
    out += ["", *_describe_personal_account(pack)]
    out += ["", *_describe_accident_cover(pack)]
    return "\n".join(out) + "\n"


CERTIFIED_VISIT_TYPES_BY_KIND = {kind: visit for visit, kind in CERTIFIED_VISIT_TYPES.items()}


def _describe_certificates(pack: Pack) -> list[str]:
    title = "Outpatient certificates (门诊慢特病)"
    rules = pack.certificates
    if rules is None:
        return [
            f"{title}: none in this pack; chronic and major-disease outpatient visits are "
            "paid as their type says"
        ]
    section = pack.document["certificates"]
    kinds = " and ".join(
        f"{CERTIFIED_VISIT_TYPES_BY_KIND[kind]} ({kind})" for kind in sorted(rules.kinds)
    )
    out = [
        f"{title}: {kinds} visits are paid as such only for a diagnosis a certificate valid "
        "on the visit's date covers; otherwise as a general outpatient visit",
        f"  at most {rules.max_diseases_per_application} disease(s) an application",
        *_provenance(section["max_diseases_per_application"], "    "),
        f"  a certificate lasts {rules.validity_years} year(s)",
        *_provenance(section["validity_years"], "    "),
    ]
    for kind, group in section["diseases"].items():
        out += [f"  {kind} ({CERTIFICATE_KINDS[kind]}) diseases:", *_provenance(group, "    ")]
        for entry in group["list"]:
            out.append(f"    {entry['id']} {entry['name']}: {', '.join(entry['icd10'])}")
            out += _provenance(entry, "      ")
    return out


def _describe_admission(pack: Pack) -> list[str]:
    title = "Admission (入院登记)"
    if not pack.no_deposit:
        return [f"{title}: every patient pays the hospital's deposit"]
    out = [f"{title}: no deposit (the first rule that holds is the reason given)"]
    for entry, rule in zip(pack.document["admission"]["no_deposit"], pack.no_deposit, strict=True):
        out += [
            f"  {rule.id}: {rule.reason}",
            f"    when: {rule.when.text}",
            *_provenance(entry, "    "),
        ]
    return out


def _fund_text(pack: Pack, fund: Any) -> str:
    if isinstance(fund, dict):
        return ", ".join(
            f"{scheme}: {_fund_text(pack, code)}" for scheme, code in fund["by_scheme"].items()
        )
    return f"{fund} ({NATIONAL_FUNDS.get(fund) or pack.funds.get(fund, '')})"


def _words(condition: Described | None) -> str:
    """A condition as the loader worded it when it compiled the pack."""
    return "everyone" if condition is None else condition.text


def _describe_layer(pack: Pack, number: int, layer: Mapping[str, Any]) -> list[str]:
    compiled = pack.layers[number - 1]
    out = [
        f"Layer {number}: {layer['id']} - {layer['name']}",
        f"  fund: {_fund_text(pack, layer['fund'])}",
    ]
    out.append(f"  eligible: {_words(compiled.eligible)}")
    for entry in layer.get("eligible", {}).get("statuses", []):
        if isinstance(entry, dict):
            out += _provenance(entry, "    ")
    if "in_force_from" in layer:
        out.append(f"  in force for visits from {layer['in_force_from']['date']}")
        out += _provenance(layer["in_force_from"], "    ")
    base = layer.get("base", "in_scope_remainder")
    out.append(
        "  base: "
        + (
            "the whole remainder left by the layers before"
            if base == "remainder"
            else "the in-scope cost left by the layers before"
        )
    )
    out += _provenance(layer, "    ")
    for rule, compiled_rule in zip(layer["rules"], compiled.rules, strict=True):
        kinds = ", ".join(f"{t} ({VISIT_TYPES[t]})" for t in rule["visit_types"])
        period = (
            "over the year's accumulated base"
            if rule["period"] == "year"
            else "each visit on its own"
        )
        out.append(f"  rule {rule['id']}: {kinds}; {period}")
        if compiled_rule.when is not None:
            out.append(f"    only for: {_words(compiled_rule.when)}")
        out += _provenance(rule, "      ")
        if "deductible" in rule:
            deductible = rule["deductible"]
            per = "per year" if rule["period"] == "year" else "per visit"
            out.append(f"    deductible (起付线) {per}: {value_text(deductible['yuan'], 'yuan')}")
            out += _provenance(deductible, "      ")
            if "after_low_outpatient_year" in deductible:
                low = deductible["after_low_outpatient_year"]
                out.append(
                    "      if last year's outpatient costs were at most "
                    f"{value_text(low['outpatient_cost_at_most_yuan'], 'yuan')}: {value_text(low['yuan'], 'yuan')}"
                )
                out += _provenance(low, "        ")
            if "quiet_year_reductions" in deductible:
                quiet = deductible["quiet_year_reductions"]
                steps = ", ".join(
                    f"{n} year(s): -{_amount(v, 'yuan')}" for n, v in quiet["by_years"].items()
                )
                out.append(
                    f"      lowered after years whose outpatient costs stayed at or under it: {steps}"
                    " (the last also for more years)"
                )
                out += _provenance(quiet, "        ")
        if "ratio" in rule:
            out.append(f"    ratio: {value_text(rule['ratio']['percent'], 'percent')}")
            out += _provenance(rule["ratio"], "      ")
        if "bands" in rule:
            steps = rule["bands"]["steps"]
            out.append("    bands:")
            for index, step in enumerate(steps):
                upper = (
                    f"up to {_amount(steps[index + 1]['from_yuan'], 'yuan')}"
                    if index + 1 < len(steps)
                    else "and above"
                )
                out.append(
                    f"      from {_amount(step['from_yuan'], 'yuan')} {upper}: {value_text(step['percent'], 'percent')}"
                )
            out += _provenance(rule["bands"], "      ")
        adjustments = zip(rule.get("adjustments", []), compiled_rule.adjustments, strict=True)
        for adjustment, compiled_adjustment in adjustments:
            out.append(
                f"    ratio {_amount(adjustment['points'], 'points')} "
                f"when {_words(compiled_adjustment.when)}"
            )
            out += _provenance(adjustment, "      ")
        if rule.get("caps"):
            out.append(f"    caps: {', '.join(rule['caps'])}")
    for cap in layer.get("caps", []):
        carried = (
            " plus the carried-over outpatient quota" if cap.get("plus_carried_over_quota") else ""
        )
        out.append(
            f"  cap {cap['id']} (封顶线): {value_text(cap['yuan'], 'yuan')} per {cap['per']}{carried}"
        )
        out += _provenance(cap, "    ")
    if not layer.get("caps"):
        out.append("  no cap")
    return out


def _describe_payout(pack: Pack, payout: Mapping[str, Any]) -> list[str]:
    compiled = next(p for p in pack.payouts if p.id == payout["id"])
    out = [
        f"Instant payout {payout['id']} - {payout['name']} (paid at first diagnosis, outside the settlement)",
        f"  fund: {_fund_text(pack, payout['fund'])}",
        f"  eligible: {_words(compiled.eligible)}",
        f"  amount, by the diagnosing hospital's level: {value_text(payout['yuan'], 'yuan')}; "
        "once per person per disease class, ever",
    ]
    out += _provenance(payout, "    ")
    if "in_force_from" in payout:
        out.append(
            f"  in force for diagnoses from {payout['in_force_from']['date']}; "
            "one discharged earlier is paid nothing and uses up no class"
        )
        out += _provenance(payout["in_force_from"], "    ")
    listing = payout["disease_classes"]
    out.append(
        f"  disease classes ({len(listing['classes'])} classes, "
        f"{sum(len(c['diseases']) for c in listing['classes'])} diseases):"
    )
    out += _provenance(listing, "    ")
    for disease_class in listing["classes"]:
        diseases = "; ".join(
            f"{d['name']} {', '.join(d['icd10'])}" for d in disease_class["diseases"]
        )
        out.append(f"    {disease_class['id']} {disease_class['name']}: {diseases}")
        out += _provenance(disease_class, "      ")
    return out


def _describe_enrolment_subsidy(pack: Pack) -> list[str]:
    title = "Subsidised enrolment (资助参保)"
    entries = pack.document.get("enrolment_subsidy", [])
    if not entries:
        return [f"{title}: none in this pack; nobody's premium is paid by the assistance fund"]
    out = [
        f"{title}: the personal premium (个人缴费) of the year and the part the "
        "medical-assistance fund pays; of the categories a person is in, the largest "
        "subsidy applies (the earlier on a tie)",
    ]
    for entry, category in zip(entries, subsidy_categories(pack), strict=True):
        also = category.also_one_of
        who = " or ".join(sorted(category.statuses)) + (
            f", together with {' or '.join(sorted(also))}" if also else ""
        )
        tier = f", tier {category.tier} ({TIERS[category.tier]})" if category.tier else ""
        paid = _fen_text(category.subsidy_fen)
        if category.subsidy_fen == category.premium_fen:
            paid = f"the whole premium ({paid})"
        out += [
            f"  category {category.id} - {category.name}",
            f"    who: status {who}",
            *_provenance(entry, "      "),
            f"    premium: {_fen_text(category.premium_fen)} personal{tier}",
            *_provenance(entry["premium"], "      "),
            f"    assistance fund pays: {paid}; the person pays "
            f"{_fen_text(category.premium_fen - category.subsidy_fen)}",
            *_provenance(entry["subsidy"], "      "),
        ]
    return out


def _describe_monitoring(pack: Pack) -> list[str]:
    title = "Watching the burden (docs/domain.md section 7)"
    rules = monitoring_rules(pack)
    if rules is None:
        return [
            f"{title}: none in this pack; no warning is raised and no secondary assistance paid"
        ]
    section = pack.document["monitoring"]
    income = _fen_text(rules.reference_income_fen)
    returning = rules.warning_line(RETURN_TO_POVERTY)
    falling = rules.warning_line(IMPOVERISHMENT)
    return [
        f"{title}:",
        f"  reference income: {income} a person ({rules.reference_year})",
        *_provenance(section["reference_income"], "    "),
        f"  因病返贫 warning: a household's yearly burden above "
        f"{format_percent(rules.return_to_poverty_share)} of it ({_fen_text(returning)}), "
        f"when a member holds {' or '.join(sorted(rules.return_to_poverty_statuses))}",
        *_provenance(section["return_to_poverty"], "    "),
        f"  因病致贫 warning: any other household's yearly burden above "
        f"{format_percent(rules.impoverishment_share)} of it ({_fen_text(falling)})",
        *_provenance(section["impoverishment"], "    "),
        f"  a warning undecided after {rules.overdue_days} days is overdue",
        *_provenance(section["overdue_days"], "    "),
        f"  secondary assistance (二次救助): {format_percent(rules.secondary_share)} of the "
        f"yearly eligible burden above {_fen_text(rules.secondary_threshold_fen)}, at most "
        f"{_fen_text(rules.secondary_yearly_cap_fen)} a year, for "
        f"{', '.join(sorted(rules.secondary_statuses))}",
        *_provenance(section["secondary_assistance"], "    "),
    ]


def _describe_personal_account(pack: Pack) -> list[str]:
    title = "Employees' personal accounts (职工个人账户)"
    rules = personal_account_rules(pack)
    if rules is None:
        return [f"{title}: none in this pack; nobody has a personal account here"]
    section = pack.document["personal_account"]
    out = [f"{title}:", *_provenance(section, "    ")]
    if rules.card_share is None:
        out.append("  the whole yearly credit goes to the account at once")
    else:
        out += [
            f"  {format_percent(rules.card_share)} of the yearly credit moves to the social "
            "security card (社保卡) month by month, a twelfth a month (December the rest)",
            *_provenance(section["card_share"], "    "),
        ]
    if rules.withdrawal_above_fen is None:
        out.append("  no withdrawal of the balance")
    else:
        out += [
            "  the whole balance may be withdrawn once a year when the year's inpatient "
            f"costs are above {_fen_text(rules.withdrawal_above_fen)}",
            *_provenance(section["withdrawal"], "    "),
        ]
    if not rules.products:
        return [*out, "  no catalogue of health products"]
    out += [
        f"  approved health products (商业健康险), {len(rules.products)}:",
        *_provenance(section["products"], "    "),
    ]
    out += [
        f"    {product.id} - {product.name} ({product.insurer}): {_fen_text(product.premium_fen)}"
        for product in rules.products
    ]
    return out


def _describe_accident_cover(pack: Pack) -> list[str]:
    title = "Accident cover (意外伤害附加保险, docs/domain.md section 6)"
    cover = accident_cover(pack)
    if cover is None:
        return [f"{title}: none in this pack; no accident claim is taken"]
    section = pack.document["accident_cover"]
    return [
        f"{title}:",
        f"  paid by {_fund_text(pack, cover.fund)}",
        *_provenance(section["insurer"], "    "),
        f"  who: every person of the region insured ({' or '.join(sorted(cover.schemes))}) "
        "in the event's year",
        *_provenance(section["covered"], "    "),
        f"  accidental death (意外身故): {_fen_text(cover.death_fen)}, once per person",
        *_provenance(section["death"], "    "),
        f"  accidental medical costs (意外医疗): the costs claimed, at most "
        f"{_fen_text(cover.medical_cap_fen)} a claim",
        *_provenance(section["medical_cap"], "    "),
        f"  a claim is accepted up to {cover.claim_within_years} years after the event",
        *_provenance(section["claim_within"], "    "),
    ]
