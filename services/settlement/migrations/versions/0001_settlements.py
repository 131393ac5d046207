"""Hospitals, settlements, clearing records and the persons' yearly ledgers.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hospitals",
        sa.Column("hospital_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("api_key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "settlements",
        sa.Column("settlement_id", sa.String(36), primary_key=True),
        sa.Column(
            "hospital_id", sa.String(32), sa.ForeignKey("hospitals.hospital_id"), nullable=False
        ),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("visit_id", sa.String(64), nullable=False),
        sa.Column("visit_type", sa.String(32), nullable=False),
        sa.Column("settles_on", sa.Date, nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("class_c_fen", sa.BigInteger, nullable=False),
        sa.Column("over_limit_fen", sa.BigInteger, nullable=False),
        sa.Column("pre_self_pay_fen", sa.BigInteger, nullable=False),
        sa.Column("in_scope_fen", sa.BigInteger, nullable=False),
        sa.Column("fund_paid_fen", sa.BigInteger, nullable=False),
        sa.Column("self_pay_fen", sa.BigInteger, nullable=False),
        sa.Column("layers", sa.JSON, nullable=False),
        sa.Column("payouts", sa.JSON, nullable=False),
        sa.Column("deltas", sa.JSON, nullable=False),
        sa.Column("visit", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_on", sa.Date, nullable=False),
        sa.Column("reversal_request_id", sa.String(128)),
        sa.Column("reversed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("hospital_id", "request_id", name="uq_settlements_request"),
    )
    op.create_index(
        "ix_settlements_hospital_day", "settlements", ["hospital_id", "settled_on", "settled_at"]
    )
    op.create_index("ix_settlements_person", "settlements", ["person_id"])
    op.create_index(
        "uq_settlements_standing_visit",
        "settlements",
        ["hospital_id", "visit_id"],
        unique=True,
        postgresql_where=sa.text("state = 'settled'"),
        sqlite_where=sa.text("state = 'settled'"),
    )
    op.create_table(
        "clearing_records",
        sa.Column("record_id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "settlement_id",
            sa.String(36),
            sa.ForeignKey("settlements.settlement_id"),
            nullable=False,
        ),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("fund", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("clearing_date", sa.Date, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_clearing_hospital_day", "clearing_records", ["hospital_id", "clearing_date"]
    )
    op.create_index("ix_clearing_settlement", "clearing_records", ["settlement_id"])
    op.create_table(
        "ledgers",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("years", sa.JSON, nullable=False),
        sa.Column("payouts", sa.JSON, nullable=False),
        sa.Column("first_year", sa.Integer),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledgers")
    op.drop_table("clearing_records")
    op.drop_table("settlements")
    op.drop_table("hospitals")
