"""The outbox of status changes for the settlement service, seeded with every person on record.

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
        "status_deliveries",
        sa.Column("subscriber", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", "person_id", name="pk_status_deliveries"),
    )
    # Statuses recorded before the settlement service kept its own copy: send them all.
    op.execute(
        "INSERT INTO status_deliveries (subscriber, person_id, version, queued_at) "
        "SELECT 'settlement', person_id, MAX(assertion_id), CURRENT_TIMESTAMP "
        "FROM status_assertions GROUP BY person_id"
    )


def downgrade() -> None:
    op.drop_table("status_deliveries")
