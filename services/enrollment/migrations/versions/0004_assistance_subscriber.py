"""The assistance service as a third subscriber of ``coverage_deliveries``: it adds a
household's burdens together on its copy of the register (issue 18).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Persons registered before assistance kept its copy of the register: send them all.
    op.execute(
        "INSERT INTO coverage_deliveries (subscriber, person_id, version, queued_at) "
        "SELECT 'assistance', persons.person_id, 1 + COUNT(enrolments.year), "
        "CURRENT_TIMESTAMP "
        "FROM persons LEFT JOIN enrolments ON enrolments.person_id = persons.person_id "
        "GROUP BY persons.person_id"
    )


def downgrade() -> None:
    op.execute("DELETE FROM coverage_deliveries WHERE subscriber = 'assistance'")
