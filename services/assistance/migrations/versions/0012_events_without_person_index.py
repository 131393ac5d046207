"""The settlement events lose their person index: nothing reads a person's events here
(the ledger keeps each person's sums; a person's settlements are settlement's), and
keeping a million random keys of a year in order cost the intake about a tenth of its
time (docs/performance.md).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_settlement_events_person", table_name="settlement_events")


def downgrade() -> None:
    op.create_index("ix_settlement_events_person", "settlement_events", ["person_id", "settled_on"])
