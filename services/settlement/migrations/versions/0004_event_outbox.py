"""Settlement events for the assistance service: the outbox, and what each event carries
that a settlement did not store before (its region and the statuses applied).

Every settlement stored before is queued (and a reversal after it for each reversed one),
so that an assistance service started afresh fills its burden ledger from them. Their
region and statuses are the ones the copies held here say now (the person's region, the
statuses held on the visit's date): what the engine used, unless they changed since.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        batch.add_column(sa.Column("region", sa.String(32), nullable=True))
        batch.add_column(sa.Column("statuses", sa.JSON, nullable=True))
    _fill_region_and_statuses()
    with op.batch_alter_table("settlements") as batch:
        batch.alter_column("region", existing_type=sa.String(32), nullable=False)
        batch.alter_column("statuses", existing_type=sa.JSON, nullable=False)
    op.create_table(
        "event_outbox",
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("settlement_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        sa.ForeignKeyConstraint(["settlement_id"], ["settlements.settlement_id"]),
        sqlite_autoincrement=True,
    )
    # Settled events first, in the order they were settled, then the reversals.
    op.execute(
        "INSERT INTO event_outbox (settlement_id, kind, queued_at) "
        "SELECT settlement_id, 'settled', CURRENT_TIMESTAMP FROM settlements "
        "ORDER BY settled_at, settlement_id"
    )
    op.execute(
        "INSERT INTO event_outbox (settlement_id, kind, queued_at) "
        "SELECT settlement_id, 'reversed', CURRENT_TIMESTAMP FROM settlements "
        "WHERE state = 'reversed' ORDER BY reversed_at, settlement_id"
    )


def _fill_region_and_statuses() -> None:
    """Each stored settlement's region (the person's, else the hospital's) and the status
    codes the person holds on the visit's date, a batch at a time."""
    connection = op.get_bind()
    meta = sa.MetaData()
    settlements = sa.Table("settlements", meta, autoload_with=connection)
    hospitals = sa.Table("hospitals", meta, autoload_with=connection)
    coverage = sa.Table("person_coverage", meta, autoload_with=connection)
    statuses = sa.Table("person_statuses", meta, autoload_with=connection)
    query = (
        sa.select(
            settlements.c.settlement_id,
            settlements.c.settles_on,
            hospitals.c.region.label("hospital_region"),
            coverage.c.coverage,
            statuses.c.periods,
        )
        .join(hospitals, hospitals.c.hospital_id == settlements.c.hospital_id)
        .outerjoin(coverage, coverage.c.person_id == settlements.c.person_id)
        .outerjoin(statuses, statuses.c.person_id == settlements.c.person_id)
        .order_by(settlements.c.settlement_id)
        .limit(BATCH)
    )
    update = (
        settlements.update()
        .where(settlements.c.settlement_id == sa.bindparam("id"))
        .values(region=sa.bindparam("region"), statuses=sa.bindparam("codes"))
    )
    after = ""
    while True:
        rows = connection.execute(query.where(settlements.c.settlement_id > after)).all()
        if not rows:
            return
        connection.execute(
            update,
            [
                {
                    "id": row.settlement_id,
                    "region": (row.coverage or {}).get("region") or row.hospital_region,
                    "codes": _held(row.periods or [], row.settles_on),
                }
                for row in rows
            ],
        )
        after = rows[-1].settlement_id


def _held(periods: list[list[str | None]], day: date) -> list[str]:
    """The statuses of the stored periods ([status, from, to or null, ...]) held on ``day``."""
    return sorted(
        {
            str(status)
            for status, start, end, *_agency in periods
            if date.fromisoformat(str(start)) <= day
            and (end is None or day <= date.fromisoformat(end))
        }
    )


def downgrade() -> None:
    op.drop_table("event_outbox")
    with op.batch_alter_table("settlements") as batch:
        batch.drop_column("statuses")
        batch.drop_column("region")
