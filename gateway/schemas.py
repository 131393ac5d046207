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

from doudi.core.money import MAX_ITEM_FEN

Yuan = Annotated[str, Field(pattern=r"^-?\d+\.\d{2}$", examples=["39600.00"])]
"""Yuan with exactly two decimals, as a string: never a float."""

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
    amount_fen: int = Field(ge=0, le=MAX_ITEM_FEN)
    over_limit_fen: int = Field(
        default=0,
        ge=0,
        le=MAX_ITEM_FEN,
        description="The part above the catalogue price limit (超限价).",
    )


class VisitCreate(_Create):
    """A visit as CASES.md writes it. The hospital level comes from the hospital's
    registration; a ``hospital_level`` given here must equal it."""

    id: str = Field(min_length=1, max_length=64, description="The hospital's visit number.")
    type: VisitType
    admitted: datetime.date | None = Field(default=None, description="Inpatient visits.")
    discharged: datetime.date | None = Field(default=None, description="Inpatient visits.")
    date: datetime.date | None = Field(default=None, description="Outpatient visits, pharmacy.")
    hospital_level: int | None = Field(default=None, ge=0, le=3)
    out_of_area: bool = False
    referred: bool = False
    diagnoses: list[str] = Field(default=[], description="ICD-10 codes, main diagnosis first.")
    items: list[ItemCreate] = Field(min_length=1)


class SettlementCreate(_Create):
    """What ``POST /v1/settlements`` and ``/v1/settlements/preview`` read."""

    person_id: str = Field(
        min_length=18, max_length=18, description="The patient's resident identity number."
    )
    visit: VisitCreate


class LayerRead(_Read):
    layer: str = Field(description="The pack's layer id, e.g. basic.")
    fund: str = Field(description="The paying fund: a national fund-pay-type code or the pack's.")
    paid_fen: int


class PayoutRead(_Read):
    """An instant payout to the patient, outside the settlement equation (Linzhi)."""

    benefit: str
    disease_class: str
    fund: str
    diagnosis: str
    paid_fen: int


class SummaryRead(_Read):
    """The settlement in the national settlement message's field names, in yuan."""

    medfee_sumamt: Yuan
    fulamt_ownpay_amt: Yuan
    overlmt_selfpay: Yuan
    preselfpay_amt: Yuan
    inscp_scp_amt: Yuan
    hifp_pay: Yuan
    hifmi_pay: Yuan
    hifob_pay: Yuan
    cvlserv_pay: Yuan
    maf_pay: Yuan
    oth_pay: Yuan
    fund_pay_sumamt: Yuan
    psn_cash_pay: Yuan


class SettlementRead(_Read):
    """A settlement. Always ``total_fen = Σ layers.paid_fen + self_pay_fen``."""

    id: str | None = Field(description="Null in a preview.")
    state: Literal["settled", "reversed", "preview"]
    hospital_id: str
    person_id: str
    visit_id: str
    visit_type: VisitType
    settles_on: str = Field(
        pattern=r"^\d{4}-\d{2}-\d{2}$", description="The discharge (or visit) day."
    )
    policy: str = Field(description="The policy pack that settled it, e.g. xixia-2017.")
    total_fen: int
    out_of_scope_fen: int
    in_scope_fen: int
    layers: list[LayerRead]
    fund_paid_fen: int
    self_pay_fen: int
    payouts: list[PayoutRead]
    settled_at: str | None = Field(description="RFC 3339, UTC; null in a preview.")
    reversed_at: str | None
    summary: SummaryRead


class SettlementPage(_Read):
    settlements: list[SettlementRead]
    next_page_token: str = Field(description="Empty on the last page.")


class FundClearingRead(_Read):
    fund: str
    settled_fen: int
    reversed_fen: int = Field(description="Taken back by reversals made that day (positive).")
    net_fen: int = Field(description="settled_fen - reversed_fen: what the fund owes.")
    record_count: int


class ClearingRead(_Read):
    """Per fund, what it owes the calling hospital for one business day (清算)."""

    hospital_id: str
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    funds: list[FundClearingRead]
    net_fen: int


class HealthRead(_Read):
    status: Literal["ok", "unavailable"]
    services: dict[str, str] = Field(
        description="Each service's health: SERVING, NOT_SERVING, or why it did not answer."
    )


class ProblemFieldRead(_Read):
    field: str = Field(examples=["visit.items[0].amount_fen"])
    pointer: str | None = Field(
        default=None,
        description="A JSON pointer into the request body; only for body fields.",
        examples=["#/visit/items/0/amount_fen"],
    )
    detail: str


class ProblemRead(_Read):
    """An error (RFC 9457), sent as ``application/problem+json``."""

    type: str = Field(examples=["urn:doudi:problem:invalid-argument"])
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldRead] | None = None
    settlement_id: str | None = None
    reversal_idempotency_key: str | None = None
    reversed_at: str | None = None
