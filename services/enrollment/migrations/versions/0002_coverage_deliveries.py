"""The outbox of coverage changes for the settlement service, seeded with every person.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coverage_deliveries",
        sa.Column("subscriber", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", "person_id", name="pk_coverage_deliveries"),
    )
    # Persons registered before the settlement service kept its own copy: send them all.
    op.execute(
        "INSERT INTO coverage_deliveries (subscriber, person_id, version, queued_at) "
        "SELECT 'settlement', persons.person_id, 1 + COUNT(enrolments.year), CURRENT_TIMESTAMP "
        "FROM persons LEFT JOIN enrolments ON enrolments.person_id = persons.person_id "
        "GROUP BY persons.person_id"
    )


def downgrade() -> None:
    op.drop_table("coverage_deliveries")
