"""What the gateway answers, built from the settlement service's messages.

Plain dicts, built field by field on the hot path and sent as they are
(:class:`JSONAnswer`); the pydantic models in :mod:`gateway.schemas` document
the same shapes (a test validates real answers against them). Money stays
integer fen, except in ``summary``, which carries the national settlement
message's amounts in yuan as strings with two decimals, never floats.
"""

from __future__ import annotations

from typing import Any, Final

import pydantic_core
from fastapi.responses import JSONResponse
from google.type import date_pb2

from doudi.common.enums import (
    SETTLEMENT_AGENCIES,
    SETTLEMENT_EMPLOYMENTS,
    SETTLEMENT_SCHEMES,
    SETTLEMENT_STATUSES,
    SETTLEMENT_TIERS,
)
from doudi.common.visits import VISIT_TYPES
from doudi.core.money import fen_to_yuan
from doudi.settlement.v1 import settlement_pb2

STATES: Final = {
    settlement_pb2.SETTLEMENT_STATE_SETTLED: "settled",
    settlement_pb2.SETTLEMENT_STATE_REVERSED: "reversed",
    settlement_pb2.SETTLEMENT_STATE_UNSPECIFIED: "preview",
}

# The national settlement message (医保结算清单 / 结算信息) names each fund's payment by
# the fund-pay type: 390100 and 310100 the basic pooling funds, 390200 critical-illness
# insurance, 330100 the employees' large-cost subsidy, 320100 the civil servants'
# subsidy, 610100 medical assistance; every other fund goes to oth_pay.
FUND_SUMMARY_FIELDS: Final = {
    "390100": "hifp_pay",
    "310100": "hifp_pay",
    "390200": "hifmi_pay",
    "330100": "hifob_pay",
    "320100": "cvlserv_pay",
    "610100": "maf_pay",
}
OTHER_FUNDS_FIELD: Final = "oth_pay"
_FUND_FIELDS: Final = (*dict.fromkeys(FUND_SUMMARY_FIELDS.values()), OTHER_FUNDS_FIELD)


class JSONAnswer(JSONResponse):
    """A JSONResponse encoded by pydantic-core: for this module's dicts (strings, integers,
    booleans and None) the same bytes as Starlette's ``json.dumps`` (compact, UTF-8), in a
    quarter of the time; the standard library's encoder took about 2% of the gateway's
    CPU per settlement."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)


def iso_date(value: date_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def settlement_json(settlement: settlement_pb2.Settlement) -> dict[str, Any]:
    """A settlement as the gateway answers it (``SettlementRead``)."""
    layers = _layers_json(settlement)
    return {
        "id": settlement.settlement_id or None,
        "state": STATES[settlement.state],
        "hospital_id": settlement.hospital_id,
        "person_id": settlement.person_id,
        "visit_id": settlement.visit_id,
        "visit_type": VISIT_TYPES.code(settlement.visit_type, "visit_type"),
        "settles_on": iso_date(settlement.settles_on),
        "policy": settlement.policy,
        "total_fen": settlement.total_fen,
        "out_of_scope_fen": settlement.out_of_scope_fen,
        "in_scope_fen": settlement.in_scope_fen,
        "layers": layers,
        "fund_paid_fen": settlement.fund_paid_fen,
        "self_pay_fen": settlement.self_pay_fen,
        "personal_account_paid_fen": settlement.personal_account_paid_fen,
        "cash_pay_fen": _cash_pay_fen(settlement),
        "payouts": [
            {
                "benefit": payout.benefit,
                "disease_class": payout.disease_class,
                "fund": payout.fund,
                "diagnosis": payout.diagnosis,
                "paid_fen": payout.paid_fen,
            }
            for payout in settlement.payouts
        ],
        "settled_at": settlement.create_time.ToJsonString()
        if settlement.HasField("create_time")
        else None,
        "reversed_at": settlement.reverse_time.ToJsonString()
        if settlement.HasField("reverse_time")
        else None,
        "summary": _summary(settlement, layers),
        "admission_id": settlement.admission_id or None,
    }


def _cash_pay_fen(settlement: settlement_pb2.Settlement) -> int:
    """What the patient pays in cash: the self-pay less what the personal account paid
    (computed, so a settlement from a service before personal accounts reads the same)."""
    return settlement.self_pay_fen - settlement.personal_account_paid_fen


def _layers_json(settlement: settlement_pb2.Settlement) -> list[dict[str, Any]]:
    # Read once: each element of a repeated field read is a new message object.
    return [
        {"layer": layer.layer, "fund": layer.fund, "paid_fen": layer.paid_fen}
        for layer in settlement.layers
    ]


def summary(settlement: settlement_pb2.Settlement) -> dict[str, str]:
    """The settlement in the national message's field names, in yuan."""
    return _summary(settlement, _layers_json(settlement))


_ZERO_YUAN: Final = fen_to_yuan(0)


def _yuan(amount: int) -> str:
    # Most of the summary's amounts are zero on most settlements.
    return fen_to_yuan(amount) if amount else _ZERO_YUAN


def _summary(settlement: settlement_pb2.Settlement, layers: list[dict[str, Any]]) -> dict[str, str]:
    by_field = dict.fromkeys(_FUND_FIELDS, 0)
    for layer in layers:
        by_field[FUND_SUMMARY_FIELDS.get(layer["fund"], OTHER_FUNDS_FIELD)] += layer["paid_fen"]
    return {
        "medfee_sumamt": _yuan(settlement.total_fen),
        "fulamt_ownpay_amt": _yuan(settlement.class_c_fen),
        "overlmt_selfpay": _yuan(settlement.over_limit_fen),
        "preselfpay_amt": _yuan(settlement.pre_self_pay_fen),
        "inscp_scp_amt": _yuan(settlement.in_scope_fen),
        **{name: _yuan(amount) for name, amount in by_field.items()},
        "fund_pay_sumamt": _yuan(sum(by_field.values())),
        "acct_pay": _yuan(settlement.personal_account_paid_fen),
        "psn_cash_pay": _yuan(_cash_pay_fen(settlement)),
    }


def clearing_json(answer: settlement_pb2.GetDailyClearingResponse) -> dict[str, Any]:
    """A hospital's day of clearing (``ClearingRead``)."""
    return {
        "hospital_id": answer.hospital_id,
        "date": iso_date(answer.date),
        "funds": [
            {
                "fund": fund.fund,
                "settled_fen": fund.settled_fen,
                "reversed_fen": fund.reversed_fen,
                "net_fen": fund.net_fen,
                "record_count": fund.record_count,
            }
            for fund in answer.funds
        ],
        "net_fen": answer.net_fen,
    }


def settlement_page_json(answer: settlement_pb2.ListSettlementsResponse) -> dict[str, Any]:
    """One page of a hospital's settlements (``SettlementPage``)."""
    return {
        "settlements": [settlement_json(settlement) for settlement in answer.settlements],
        "next_page_token": answer.next_page_token,
    }


# --- the admission desk (入院登记) ---------------------------------------------------------

ADMISSION_STATES: Final = {
    settlement_pb2.ADMISSION_STATE_ADMITTED: "admitted",
    settlement_pb2.ADMISSION_STATE_DISCHARGED: "discharged",
    settlement_pb2.ADMISSION_STATE_CANCELLED: "cancelled",
}


def _optional_date(message: Any, name: str) -> str | None:
    return iso_date(getattr(message, name)) if message.HasField(name) else None


def eligibility_json(answer: settlement_pb2.Eligibility) -> dict[str, Any]:
    """The admission desk's answer (``EligibilityRead``)."""
    enrolment = answer.enrolment
    return {
        "person_id": answer.person_id,
        "date": iso_date(answer.date),
        "hospital_id": answer.hospital_id,
        "region": answer.region,
        "policy": answer.policy,
        "enrolled": answer.enrolled,
        "enrolment": {
            "year": enrolment.year,
            "scheme": SETTLEMENT_SCHEMES.code(enrolment.scheme, "enrolment.scheme"),
            "employment": SETTLEMENT_EMPLOYMENTS.optional_code(
                enrolment.employment, "enrolment.employment"
            ),
            "tier": SETTLEMENT_TIERS.optional_code(enrolment.tier, "enrolment.tier"),
        }
        if answer.HasField("enrolment")
        else None,
        "statuses": [
            {
                "status": SETTLEMENT_STATUSES.code(period.status, "statuses.status"),
                "valid_from": iso_date(period.valid_from),
                "valid_to": _optional_date(period, "valid_to"),
                "agency": SETTLEMENT_AGENCIES.optional_code(period.agency, "statuses.agency"),
            }
            for period in answer.statuses
        ],
        "out_of_area": answer.out_of_area,
        "referred": answer.referred,
        "no_deposit": answer.no_deposit,
        "no_deposit_rule": answer.no_deposit_rule or None,
        "no_deposit_reason": answer.no_deposit_reason or None,
        "certificates": [
            {
                "disease": held.disease,
                "disease_name": held.disease_name,
                "kind": held.kind,
                "valid_from": iso_date(held.valid_from),
                "valid_to": iso_date(held.valid_to),
            }
            for held in answer.certificates
        ],
        "registrations": [
            {
                "kind": held.kind,
                "region": held.region,
                "valid_from": iso_date(held.valid_from),
                "valid_to": _optional_date(held, "valid_to"),
            }
            for held in answer.registrations
        ],
        "layers": [
            {
                "layer": layer.layer,
                "name": layer.name,
                "eligible": layer.eligible,
                "caps": [
                    {
                        "cap": cap.cap,
                        "limit_fen": cap.limit_fen,
                        "carried_over_quota_fen": cap.carried_over_quota_fen,
                        "used_fen": cap.used_fen,
                        "left_fen": cap.left_fen,
                    }
                    for cap in layer.caps
                ],
            }
            for layer in answer.layers
        ],
        "notes": list(answer.notes),
        "personal_account_fen": answer.personal_account_fen
        if answer.HasField("personal_account_fen")
        else None,
    }


def admission_json(admission: settlement_pb2.Admission) -> dict[str, Any]:
    """An admission (``AdmissionRead``)."""
    return {
        "id": admission.admission_id,
        "hospital_id": admission.hospital_id,
        "person_id": admission.person_id,
        "admitted": iso_date(admission.admitted),
        "referred": admission.referred,
        "out_of_area": admission.out_of_area,
        "no_deposit": admission.no_deposit,
        "no_deposit_rule": admission.no_deposit_rule or None,
        "no_deposit_reason": admission.no_deposit_reason or None,
        "policy": admission.policy,
        "state": ADMISSION_STATES[admission.state],
        "settlement_id": admission.settlement_id or None,
        "created_at": admission.create_time.ToJsonString(),
    }
