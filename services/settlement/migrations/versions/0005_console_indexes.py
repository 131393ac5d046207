"""Indexes for the reads of the case workers' console (every hospital's, a person's):

- ``settlements (person_id, settled_at, settlement_id)`` replaces ``(person_id)``: a
  person's settlements in the order ``ListSettlements`` answers them, one index still
  (screening reads a person's settlements through it too);
- ``settlements (settled_at, settlement_id)``: every hospital's settlements of a date
  range in that order, a page at a time, without reading the whole range;
- ``clearing_records (clearing_date, hospital_id)`` replaces ``(hospital_id,
  clearing_date)``: a day's records of one hospital, or of every hospital together.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_settlements_person_made", "settlements", ["person_id", "settled_at", "settlement_id"]
    )
    op.drop_index("ix_settlements_person", table_name="settlements")
    op.create_index("ix_settlements_made", "settlements", ["settled_at", "settlement_id"])
    op.create_index(
        "ix_clearing_day_hospital", "clearing_records", ["clearing_date", "hospital_id"]
    )
    op.drop_index("ix_clearing_hospital_day", table_name="clearing_records")


def downgrade() -> None:
    op.create_index(
        "ix_clearing_hospital_day", "clearing_records", ["hospital_id", "clearing_date"]
    )
    op.drop_index("ix_clearing_day_hospital", table_name="clearing_records")
    op.drop_index("ix_settlements_made", table_name="settlements")
    op.create_index("ix_settlements_person", "settlements", ["person_id"])
    op.drop_index("ix_settlements_person_made", table_name="settlements")
