"""The gateway's HTTP contract as pydantic models, one per direction: ``*Create`` what a
hospital sends, ``*Read`` and ``*Page`` what it gets back, ``Problem`` every error.

They document the API (``/docs``, ``/openapi.json``). Requests are read by
:func:`doudi.core.cases.parse_visit`, the one reader of visit JSON, and answers
are built by :mod:`gateway.convert` without going through these models; the
tests validate real answers against them so the two cannot drift apart.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from doudi.core import codes
from doudi.core.money import MAX_ITEM_FEN

Yuan = Annotated[str, Field(pattern=r"^-?\d+\.\d{2}$", examples=["39600.00"])]
"""Yuan with exactly two decimals, as a string: never a float."""
_YUAN = "Yuan (元) as a string with two decimals, never a float."

_VISIT_TYPES = ", ".join(f"{code} ({name})" for code, name in codes.VISIT_TYPES.items())
VisitType = Literal[
    "inpatient", "outpatient_chronic", "outpatient_major", "outpatient_general", "pharmacy"
]


class _Create(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Read(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ItemCreate(_Create):
    """A line item of the bill (费用明细)."""

    code: str = Field(min_length=1, description="The hospital's or catalogue's item code.")
    class_: Literal["A", "B", "C"] = Field(
        alias="class",
        description="甲类 A (in scope), 乙类 B (after pre-payment), 丙类 C (self-pay).",
    )
    amount_fen: int = Field(
        ge=0,
        le=MAX_ITEM_FEN,
        description="The item's amount in fen (分), the whole line; at most 10,000,000,000 "
        "(100 million yuan) an item, and 100,000,000,000 a bill.",
    )
    over_limit_fen: int = Field(
        default=0,
        ge=0,
        le=MAX_ITEM_FEN,
        description="The part above the catalogue price limit (超限价), in fen.",
    )


class VisitCreate(_Create):
    """A visit as ``doudi calc`` reads it (docs/case-format.md). The hospital level comes
    from the hospital's registration; a ``hospital_level`` given here must equal it."""

    id: str = Field(min_length=1, max_length=64, description="The hospital's visit number.")
    type: VisitType = Field(description=f"The kind of visit: {_VISIT_TYPES}.")
    admitted: datetime.date | None = Field(
        default=None, description="The day of admission (入院日期); inpatient visits only."
    )
    discharged: datetime.date | None = Field(
        default=None,
        description="The day of discharge (出院日期), the day the stay is settled on; inpatient "
        "visits only.",
    )
    date: datetime.date | None = Field(
        default=None,
        description="The day of the visit (就诊日期); outpatient and pharmacy visits only.",
    )
    hospital_level: int | None = Field(
        default=None,
        ge=0,
        le=3,
        description="Leave it out: the hospital's registered level (1 township, 2 county, 3 "
        "city; 0 a pharmacy) is used; given, it must equal that.",
    )
    out_of_area: bool = Field(
        default=False,
        description="Treated outside the person's insured region (异地就医); set by the "
        "platform when the hospital's region is not the person's.",
    )
    referred: bool = Field(
        default=False, description="Out of the region with a referral (转诊转院备案)."
    )
    diagnoses: list[str] = Field(
        default=[], description="The diagnoses (诊断) as ICD-10 codes, the main one first."
    )
    items: list[ItemCreate] = Field(
        min_length=1, description="The bill's line items, at least one."
    )


class SettlementCreate(_Create):
    """What ``POST /v1/settlements`` and ``/v1/settlements/preview`` read."""

    person_id: str = Field(
        min_length=18,
        max_length=18,
        description="The patient's resident identity number (公民身份号码), 18 characters with "
        "its check digit; the person must be registered and enrolled for the visit's year.",
    )
    visit: VisitCreate = Field(description="The visit and its bill.")
    pay_from_personal_account: bool = Field(
        default=False,
        description="The employee agrees that their personal account (职工个人账户) pays the "
        "self-pay, as far as its balance goes (the card's part first); the rest is paid in "
        "cash. A resident, or an employee without an account, pays it all in cash.",
    )
    admission_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=36,
        description="Optional: the admission (POST /v1/admissions) the stay is settled "
        "against: the hospital's own, of the same person, an inpatient visit admitted on the "
        "admission's day. The settlement discharges it; its reversal reopens it.",
    )


class LayerRead(_Read):
    """What one layer of cover paid, in the order the pack applies them."""

    layer: str = Field(description="The pack's layer id, e.g. basic.")
    fund: str = Field(description="The paying fund: a national fund-pay-type code or the pack's.")
    paid_fen: int = Field(description="What the layer paid, in fen; 0 when it did not apply.")


class PayoutRead(_Read):
    """An instant payout to the patient, outside the settlement equation (Linzhi)."""

    benefit: str = Field(description="The pack's payout id, e.g. instant_critical_illness.")
    disease_class: str = Field(
        description="The class of listed diseases the diagnosis belongs to (paid once per "
        "person and class), e.g. malignant_tumour."
    )
    fund: str = Field(description="The paying fund, e.g. instant_cover.")
    diagnosis: str = Field(description="The visit's ICD-10 code that qualified.")
    paid_fen: int = Field(description="The fixed sum paid to the patient, in fen.")


class SummaryRead(_Read):
    """The settlement in the national settlement message's (医保结算信息) field names, in
    yuan as two-decimal strings. ``medfee_sumamt = fund_pay_sumamt + acct_pay +
    psn_cash_pay``; each
    fund's payment goes to the field of its fund-pay type, every other fund to oth_pay."""

    medfee_sumamt: Yuan = Field(
        description=f"Total medical expenses (医疗费总额): the whole bill. {_YUAN}"
    )
    fulamt_ownpay_amt: Yuan = Field(
        description=f"Fully self-paid amount (全自费金额): class C items, outside every "
        f"catalogue. {_YUAN}"
    )
    overlmt_selfpay: Yuan = Field(
        description=f"Self-paid above the price limit (超限价自费费用): the items' "
        f"over_limit_fen. {_YUAN}"
    )
    preselfpay_amt: Yuan = Field(
        description=f"Pre-self-payment (先行自付金额): the share of class B items the patient "
        f"pays before the policy applies. {_YUAN}"
    )
    inscp_scp_amt: Yuan = Field(
        description=f"Amount within the policy scope (符合政策范围金额): what the layers settle "
        f"on. {_YUAN}"
    )
    hifp_pay: Yuan = Field(
        description=f"Basic medical insurance pooling fund payment (基本医疗保险统筹基金支出): "
        f"funds 390100 (residents) and 310100 (employees). {_YUAN}"
    )
    hifmi_pay: Yuan = Field(
        description=f"Residents' critical-illness insurance payment (居民大病保险资金支出): fund "
        f"390200. {_YUAN}"
    )
    hifob_pay: Yuan = Field(
        description=f"Employees' large medical expense subsidy (职工大额医疗费用补助基金支出): "
        f"fund 330100. {_YUAN}"
    )
    cvlserv_pay: Yuan = Field(
        description=f"Civil servants' medical subsidy (公务员医疗补助资金支出): fund 320100. {_YUAN}"
    )
    maf_pay: Yuan = Field(
        description=f"Medical assistance fund payment (医疗救助基金支出): fund 610100. {_YUAN}"
    )
    oth_pay: Yuan = Field(
        description=f"Other payments (其他支出): every other fund, such as a region's "
        f"supplementary insurance or assistance project. {_YUAN}"
    )
    fund_pay_sumamt: Yuan = Field(
        description=f"Total fund payment (基金支付总额): the sum of the funds' payments above. "
        f"{_YUAN}"
    )
    acct_pay: Yuan = Field(
        description=f"Personal account payment (个人账户支出): what the employee's personal "
        f"account paid of the self-pay (fund 310200). {_YUAN}"
    )
    psn_cash_pay: Yuan = Field(
        description=f"Personal cash payment (个人现金支出): what the patient pays at the window. "
        f"{_YUAN}"
    )


class SettlementRead(_Read):
    """A settlement. Always ``total_fen = Σ layers.paid_fen + self_pay_fen``."""

    id: str | None = Field(
        description="The settlement's id, given by the platform (a UUID); null in a preview."
    )
    state: Literal["settled", "reversed", "preview"] = Field(
        description="settled (已结算), reversed (已冲正) or preview (预结算, not stored)."
    )
    hospital_id: str = Field(description="The hospital that settled it: the caller.")
    person_id: str = Field(description="The patient's identity number, as sent.")
    visit_id: str = Field(description="The hospital's visit number, as sent.")
    visit_type: VisitType = Field(description="The visit's type, as sent.")
    settles_on: str = Field(
        pattern=r"^\d{4}-\d{2}-\d{2}$", description="The discharge (or visit) day."
    )
    policy: str = Field(description="The policy pack that settled it, e.g. xixia-2017.")
    total_fen: int = Field(description="The whole bill, in fen (医疗费总额).")
    out_of_scope_fen: int = Field(
        description="Outside the policy scope, paid by the patient, in fen: class C, above the "
        "price limits, and class B's pre-self-payment."
    )
    in_scope_fen: int = Field(
        description="Within the policy scope, in fen: total_fen - out_of_scope_fen."
    )
    layers: list[LayerRead] = Field(
        description="Every layer of the pack, in the order they pay, with what each paid."
    )
    fund_paid_fen: int = Field(description="What the funds paid in all, in fen: Σ layers.paid_fen.")
    self_pay_fen: int = Field(
        description="What the patient pays, in fen: total_fen - fund_paid_fen."
    )
    personal_account_paid_fen: int = Field(
        description="What the employee's personal account paid of self_pay_fen, in fen "
        "(asked with pay_from_personal_account; otherwise 0)."
    )
    cash_pay_fen: int = Field(
        description="What the patient pays in cash, in fen: self_pay_fen - "
        "personal_account_paid_fen."
    )
    payouts: list[PayoutRead] = Field(
        description="Instant payouts to the patient, outside the settlement equation "
        "(Linzhi's critical-illness cover); usually empty."
    )
    settled_at: str | None = Field(description="RFC 3339, UTC; null in a preview.")
    reversed_at: str | None = Field(description="RFC 3339, UTC; null unless reversed.")
    summary: SummaryRead = Field(
        description="The same settlement in the national settlement message's fields, in yuan."
    )
    admission_id: str | None = Field(
        description="The admission it was settled against; null when none."
    )


class SettlementPage(_Read):
    """One page of a hospital's settlements."""

    settlements: list[SettlementRead] = Field(description="Oldest first.")
    next_page_token: str = Field(description="Empty on the last page.")


class FundClearingRead(_Read):
    """One fund's day with the hospital."""

    fund: str = Field(description="The fund: a national fund-pay-type code or the pack's.")
    settled_fen: int = Field(description="Paid on the settlements made that day, in fen.")
    reversed_fen: int = Field(description="Taken back by reversals made that day (positive).")
    net_fen: int = Field(description="settled_fen - reversed_fen: what the fund owes, in fen.")
    record_count: int = Field(
        description="How many settlements and reversals of that day the fund paid on."
    )


class ClearingRead(_Read):
    """Per fund, what it owes the calling hospital for one business day (清算)."""

    hospital_id: str = Field(description="The hospital: the caller.")
    date: str = Field(
        pattern=r"^\d{4}-\d{2}-\d{2}$", description="The business day (Asia/Shanghai)."
    )
    funds: list[FundClearingRead] = Field(
        description="Every fund that paid on that day's settlements, by fund."
    )
    net_fen: int = Field(description="What the funds owe the hospital in all, in fen.")


class HealthRead(_Read):
    """The platform's health."""

    status: Literal["ok", "unavailable"] = Field(
        description="ok when every service is SERVING, else unavailable."
    )
    services: dict[str, str] = Field(
        description="Each service's health: SERVING, NOT_SERVING, or why it did not answer."
    )


class ReadinessRead(_Read):
    """This gateway's readiness: whether it can settle."""

    status: Literal["ok"] = Field(description="ok: the settlement service is SERVING.")
    settlement: Literal["SERVING"] = Field(
        description="The settlement service's health: the one service a hospital's call needs."
    )


class LivenessRead(_Read):
    """This gateway process is alive."""

    status: Literal["ok"] = Field(description="ok: the process answers (nothing else is asked).")


class ProblemFieldRead(_Read):
    """A field at fault."""

    field: str = Field(
        description="The field at fault: a path into the body, or a header, path or query "
        "parameter's name.",
        examples=["visit.items[0].amount_fen"],
    )
    pointer: str | None = Field(
        default=None,
        description="A JSON pointer into the request body; only for body fields.",
        examples=["#/visit/items/0/amount_fen"],
    )
    detail: str = Field(description="What is wrong with it.")


class ProblemRead(_Read):
    """An error (RFC 9457), sent as ``application/problem+json``."""

    type: str = Field(
        description="urn:doudi:problem: and a stable reason code, for programs to act on.",
        examples=["urn:doudi:problem:invalid-argument"],
    )
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, for a person.")
    errors: list[ProblemFieldRead] | None = Field(
        default=None, description="Each field at fault, when there are any."
    )
    settlement_id: str | None = Field(
        default=None,
        description="already-reversed: the settlement that was reversed; "
        "admission-already-settled: the settlement that discharged the admission.",
    )
    reversal_idempotency_key: str | None = Field(
        default=None, description="already-reversed: the Idempotency-Key of its reversal."
    )
    reversed_at: str | None = Field(
        default=None, description="already-reversed: when it was reversed (RFC 3339)."
    )


# --- the admission desk (入院登记) ---------------------------------------------------------

_DAY = r"^\d{4}-\d{2}-\d{2}$"


class AdmissionCreate(_Create):
    """What ``POST /v1/admissions`` reads."""

    person_id: str = Field(
        min_length=18,
        max_length=18,
        description="The patient's resident identity number (公民身份号码), 18 characters with "
        "its check digit; the person must be enrolled for the year of admission.",
    )
    admitted: datetime.date = Field(
        description="The day of admission (入院日期), YYYY-MM-DD; not after today."
    )
    referred: bool = Field(
        default=False,
        description="The hospital holds a primary-care referral slip (基层首诊转诊) for the stay.",
    )


class AdmissionRead(_Read):
    """An admission registered at the hospital's desk, with the eligibility of its day."""

    id: str = Field(description="The admission's id, given by the platform (a UUID).")
    hospital_id: str = Field(description="The hospital that admitted: the caller.")
    person_id: str = Field(description="The patient's identity number, as sent.")
    admitted: str = Field(pattern=_DAY, description="The day of admission.")
    referred: bool = Field(
        description="Counted as referred: the hospital's referral slip, or a registration valid "
        "on the day for the hospital's region."
    )
    out_of_area: bool = Field(description="The hospital is outside the person's region.")
    no_deposit: bool = Field(description="Admitted without a deposit (免押金).")
    no_deposit_rule: str | None = Field(
        description="The pack's rule that waives the deposit, e.g. poverty_window; null: none."
    )
    no_deposit_reason: str | None = Field(description="Why, in the pack's words; null: none.")
    policy: str = Field(description="The policy pack in force on the day of admission.")
    state: Literal["admitted", "discharged", "cancelled"] = Field(
        description="admitted (在院), discharged (settled: settlement_id) or cancelled."
    )
    settlement_id: str | None = Field(
        description="The standing settlement that discharged it; null otherwise."
    )
    created_at: str = Field(description="When it was registered, RFC 3339, UTC.")


class EnrolmentRead(_Read):
    """The person's enrolment of the year (参保)."""

    year: int = Field(description="The calendar year.")
    scheme: Literal["resident", "employee"] = Field(
        description="resident (城乡居民) or employee (职工) insurance."
    )
    employment: Literal["in_service", "retired"] | None = Field(
        description="Employees: in_service (在职) or retired (退休); null for residents."
    )
    tier: str | None = Field(
        description="The premium tier where the region has tiers (Tianjin), else null."
    )


class StatusRead(_Read):
    """A status in force on the day, with the agency that certified it."""

    status: str = Field(description="The status, e.g. registered_poor (建档立卡), dibao (低保).")
    valid_from: str = Field(pattern=_DAY, description="The first day it holds.")
    valid_to: str | None = Field(description="The last day it holds; null: open-ended.")
    agency: str | None = Field(
        description="The certifying agency, e.g. civil_affairs (民政局), poverty_office (扶贫办)."
    )


class CertificateRead(_Read):
    """An outpatient certificate (门诊慢特病) valid on the day."""

    disease: str = Field(description="The pack's disease id.")
    disease_name: str = Field(description="The disease's name in the pack.")
    kind: str = Field(description="chronic (慢性病) or special (特殊病 / 重特大疾病).")
    valid_from: str = Field(pattern=_DAY, description="The first day it is valid.")
    valid_to: str = Field(pattern=_DAY, description="The last day it is valid.")


class RegistrationRead(_Read):
    """A registration for care outside the region (异地安置 / 转诊备案) valid on the day."""

    kind: str = Field(description="The kind of registration.")
    region: str = Field(description="The region it lets the person be treated in.")
    valid_from: str = Field(pattern=_DAY, description="The first day it is valid.")
    valid_to: str | None = Field(description="The last day it is valid; null: open-ended.")


class CapRead(_Read):
    """A yearly cap (年度封顶线) and what is left of it, in fen."""

    cap: str = Field(description="The pack's cap id, e.g. yearly.")
    limit_fen: int = Field(
        description="The cap for this person at this hospital, in fen, the carried-over "
        "outpatient quota included (Tianjin)."
    )
    carried_over_quota_fen: int = Field(
        description="The part of limit_fen carried over from earlier years' unused outpatient "
        "quota, in fen; 0 elsewhere."
    )
    used_fen: int = Field(description="What the layer paid against it this year, in fen.")
    left_fen: int = Field(description="limit_fen - used_fen, never below 0, in fen.")


class LayerCapsRead(_Read):
    """A layer of the pack and its yearly caps."""

    layer: str = Field(description="The pack's layer id, e.g. basic.")
    name: str = Field(description="The layer's name.")
    eligible: bool = Field(description="Whether the layer pays for this person on the day.")
    caps: list[CapRead] = Field(description="Its yearly caps; empty when it has none.")


class EligibilityRead(_Read):
    """What the admission desk is told of a patient on a day (入院资格)."""

    person_id: str = Field(description="The patient's identity number.")
    date: str = Field(pattern=_DAY, description="The day asked about.")
    hospital_id: str = Field(description="The hospital whose desk asked: the caller.")
    region: str = Field(description="The person's pooling region.")
    policy: str = Field(description="The policy pack in force there on the day.")
    enrolled: bool = Field(description="Whether the person is enrolled for the day's year.")
    enrolment: EnrolmentRead | None = Field(description="The year's enrolment; null if none.")
    statuses: list[StatusRead] = Field(
        description="The statuses in force on the day, with their certifying agencies."
    )
    out_of_area: bool = Field(description="The hospital is outside the person's region.")
    referred: bool = Field(
        description="Counted as referred: the `referred` asked, or a registration valid on the "
        "day for the hospital's region."
    )
    no_deposit: bool = Field(description="Admitted without a deposit (免押金).")
    no_deposit_rule: str | None = Field(
        description="The pack's rule that waives the deposit (poverty_window, "
        "treat_first_pay_later); null: a deposit."
    )
    no_deposit_reason: str | None = Field(description="Why, in the pack's words; null: none.")
    certificates: list[CertificateRead] = Field(
        description="The outpatient certificates valid on the day."
    )
    registrations: list[RegistrationRead] = Field(
        description="The registrations for care outside the region valid on the day."
    )
    layers: list[LayerCapsRead] = Field(
        description="Every layer of the pack, in order, with what is left of its yearly caps; "
        "empty when the person is not enrolled."
    )
    notes: list[str] = Field(description="What the answer rests on, in words.")
    personal_account_fen: int | None = Field(
        description="An employee's personal account (职工个人账户) balance in fen, the card's "
        "and the account's parts together: what pay_from_personal_account can pay at "
        "discharge; null when the person has no account."
    )
