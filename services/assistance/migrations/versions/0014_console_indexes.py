"""Indexes for the case workers' console's person page: a person's screening offers
across runs in the order made (``screening_offers (person_id, offer_id)``) and a
person's secondary-assistance entries across runs in run order (``secondary_entries
(person_id, run_id)``). A household's warnings are found by their unique key (household,
kind, year), a person's applications by ``ix_applications_person``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_screening_offers_person", "screening_offers", ["person_id", "offer_id"])
    op.create_index("ix_secondary_entries_person", "secondary_entries", ["person_id", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_secondary_entries_person", table_name="secondary_entries")
    op.drop_index("ix_screening_offers_person", table_name="screening_offers")
