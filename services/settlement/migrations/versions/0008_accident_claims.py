"""Claims on a pack's accident cover (意外伤害附加保险): ``accident_claims``, one row per claim,
unique by the caller's request id and by person, kind and event day; a person's death paid
once (a partial unique index); indexed for a region's claims by state and for a day's
clearing.

Down revision 0006: 0007 is written beside this one; the two are chained when merged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEATH_PAID = "kind = 'death' AND state = 'paid'"


def upgrade() -> None:
    op.create_table(
        "accident_claims",
        sa.Column(
            "claim_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_date", sa.Date, nullable=False),
        sa.Column("received_on", sa.Date, nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_fen", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("fund", sa.String(32), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decided_on", sa.Date),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
        sa.Column("rejection_reason", sa.String(500)),
        sa.UniqueConstraint("request_id", name="uq_accident_claims_request"),
        sa.UniqueConstraint("person_id", "kind", "event_date", name="uq_accident_claims_event"),
    )
    op.create_index(
        "uq_accident_claims_death_paid",
        "accident_claims",
        ["person_id"],
        unique=True,
        postgresql_where=sa.text(_DEATH_PAID),
        sqlite_where=sa.text(_DEATH_PAID),
    )
    op.create_index(
        "ix_accident_claims_region_state", "accident_claims", ["region", "state", "claim_id"]
    )
    op.create_index("ix_accident_claims_decided_on", "accident_claims", ["decided_on", "region"])


def downgrade() -> None:
    op.drop_index("ix_accident_claims_decided_on", table_name="accident_claims")
    op.drop_index("ix_accident_claims_region_state", table_name="accident_claims")
    op.drop_index("uq_accident_claims_death_paid", table_name="accident_claims")
    op.drop_table("accident_claims")
