"""Subsidised enrolment (the assistance fund's part of a premium, and its category), and
the datashare hub as a second subscriber of ``coverage_deliveries``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("enrolments") as batch:
        batch.add_column(
            sa.Column("subsidy_fen", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("subsidy_category", sa.String(32), nullable=True))
    # Persons registered before the hub kept its copy of the register: send them all.
    op.execute(
        "INSERT INTO coverage_deliveries (subscriber, person_id, version, queued_at) "
        "SELECT 'datashare', persons.person_id, 1 + COUNT(enrolments.year), CURRENT_TIMESTAMP "
        "FROM persons LEFT JOIN enrolments ON enrolments.person_id = persons.person_id "
        "GROUP BY persons.person_id"
    )


def downgrade() -> None:
    op.execute("DELETE FROM coverage_deliveries WHERE subscriber = 'datashare'")
    with op.batch_alter_table("enrolments") as batch:
        batch.drop_column("subsidy_category")
        batch.drop_column("subsidy_fen")
