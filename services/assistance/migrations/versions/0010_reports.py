"""Reports (issue 18, item 7): the persons' enrolments enrollment sends (the subsidised
ones are reported), and the monthly aggregate of the ledger's visits the reports read.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key() -> list[sa.Column[object]]:
    return [
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("month", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("visit_type", sa.String(32), primary_key=True),
    ]


def upgrade() -> None:
    _backfill(*_create())


def _create() -> tuple[Any, Any]:
    op.create_table(
        "assistance_enrolments",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("premium_fen", sa.BigInteger, nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger, nullable=False),
        sa.Column("subsidy_category", sa.String(32), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_assistance_enrolments_year", "assistance_enrolments", ["year"])
    visits = op.create_table(
        "report_visits",
        *_key(),
        sa.Column("visits", sa.BigInteger, nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("fund_paid_fen", sa.BigInteger, nullable=False),
        sa.Column("personal_burden_fen", sa.BigInteger, nullable=False),
        sa.Column("eligible_burden_fen", sa.BigInteger, nullable=False),
    )
    funds = op.create_table(
        "report_fund_payments",
        *_key(),
        sa.Column("fund", sa.String(32), primary_key=True),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
        sa.Column("cleared_fen", sa.BigInteger, nullable=False),
    )
    return visits, funds


def _backfill(visits_table: Any, funds_table: Any) -> None:
    """The aggregate of what the ledger holds already: every settlement event (a reversal
    taking away) and every bill (under the statuses its person held on its day), as
    ``reports.add_visits`` adds them from now on."""
    bind = op.get_bind()
    visits: defaultdict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * 5)
    funds: defaultdict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])

    def add(
        row: Any, day: date, sign: int, statuses: Iterable[str], paid: list[Any], window: bool
    ) -> None:
        statuses = tuple(dict.fromkeys(statuses))
        categories = ("", "monitored", *statuses) if statuses else ("",)
        eligible = max(0, row.self_pay_fen - row.out_of_scope_fen)
        for category in categories:
            key = (row.region, day.year, day.month, category, row.visit_type)
            sums = visits[key]
            for index, value in enumerate(
                (1, row.total_fen, sum(p[-1] for p in paid), row.self_pay_fen, eligible)
            ):
                sums[index] += sign * value
            for *_layer, fund, fen in paid:
                fund_sums = funds[(*key, fund)]
                fund_sums[0] += sign * fen
                fund_sums[1] += sign * fen if window else 0

    events = bind.execute(
        sa.text(
            "SELECT kind, region, visit_type, settled_on, total_fen, out_of_scope_fen, "
            "self_pay_fen, payments, statuses FROM settlement_events"
        ).execution_options(stream_results=True)
    )
    for row in events:
        sign = -1 if row.kind == "reversed" else 1
        add(row, _day(row.settled_on), sign, row.statuses.split(), json.loads(row.payments), True)
    bills = bind.execute(
        sa.text(
            "SELECT b.region, b.visit_type, b.settled_on, b.total_fen, b.out_of_scope_fen, "
            "b.self_pay_fen, b.insurance_payments, s.periods FROM assistance_bills b "
            "LEFT JOIN assistance_statuses s ON s.person_id = b.person_id"
        )
    )
    for row in bills:
        day = _day(row.settled_on)
        periods = _json(row.periods) or []
        held = sorted(
            {
                status
                for status, valid_from, valid_to, _agency in periods
                if valid_from <= day.isoformat()
                and (valid_to is None or valid_to >= day.isoformat())
            }
        )
        add(row, day, 1, held, _json(row.insurance_payments), False)
    key = ("region", "year", "month", "category", "visit_type")
    if visits:
        op.bulk_insert(
            visits_table,
            [
                dict(zip(key, k, strict=True))
                | dict(
                    zip(
                        (
                            "visits",
                            "total_fen",
                            "fund_paid_fen",
                            "personal_burden_fen",
                            "eligible_burden_fen",
                        ),
                        v,
                        strict=True,
                    )
                )
                for k, v in sorted(visits.items())
            ],
        )
    if funds:
        op.bulk_insert(
            funds_table,
            [
                dict(zip((*key, "fund"), k, strict=True)) | {"paid_fen": v[0], "cleared_fen": v[1]}
                for k, v in sorted(funds.items())
            ],
        )


def _day(value: Any) -> date:
    """A DATE column's value (SQLite answers text to a plain query)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def downgrade() -> None:
    op.drop_table("report_fund_payments")
    op.drop_table("report_visits")
    op.drop_table("assistance_enrolments")
