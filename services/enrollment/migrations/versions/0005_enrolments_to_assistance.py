"""Every person sent to assistance again, now with their enrolments (its reports count
the subsidised ones; issue 18, item 7). Assistance stores the enrolments of a version it
already has.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO coverage_deliveries (subscriber, person_id, version, queued_at) "
        "SELECT 'assistance', persons.person_id, 1 + COUNT(enrolments.year), "
        "CURRENT_TIMESTAMP "
        "FROM persons LEFT JOIN enrolments ON enrolments.person_id = persons.person_id "
        "GROUP BY persons.person_id "
        "ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    """Nothing to undo: a person sent once more changes nothing."""
