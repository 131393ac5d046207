"""The assistance service as a second subscriber of the persons' statuses
(``status_deliveries``, ``roster_deliveries``), seeded with every person on record
(issue 18).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Statuses recorded before assistance kept its own copy: send them all (rosters
    # included, so no roster needs queuing for it).
    op.execute(
        "INSERT INTO status_deliveries (subscriber, person_id, version, queued_at) "
        "SELECT 'assistance', person_id, MAX(assertion_id), CURRENT_TIMESTAMP "
        "FROM status_assertions GROUP BY person_id"
    )


def downgrade() -> None:
    op.execute("DELETE FROM status_deliveries WHERE subscriber = 'assistance'")
    op.execute("DELETE FROM roster_deliveries WHERE subscriber = 'assistance'")
