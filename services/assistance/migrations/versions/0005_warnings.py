"""The dual early warning: the warnings raised, and those the hub has not received yet.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "warnings",
        sa.Column("warning_id", _Id, primary_key=True, autoincrement=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("burden_fen", sa.BigInteger, nullable=False),
        sa.Column("threshold_fen", sa.BigInteger, nullable=False),
        sa.Column("members", sa.JSON, nullable=False),
        sa.Column("raised_by", sa.String(64), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("hub_version", sa.BigInteger, nullable=False),
        sa.Column("acknowledged_by", sa.String(32), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("certified_status", sa.String(32), nullable=True),
        sa.Column("valid_from", sa.Date, nullable=True),
        sa.Column("valid_to", sa.Date, nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.UniqueConstraint("household_id", "kind", "year", name="uq_warnings_household_kind_year"),
    )
    op.create_index("ix_warnings_region_year", "warnings", ["region", "year", "warning_id"])
    op.create_table(
        "warning_deliveries",
        sa.Column("subscriber", sa.String(32), nullable=False),
        sa.Column("warning_id", sa.String(20), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", "warning_id", name="pk_warning_deliveries"),
    )


def downgrade() -> None:
    op.drop_table("warning_deliveries")
    op.drop_index("ix_warnings_region_year", "warnings")
    op.drop_table("warnings")
