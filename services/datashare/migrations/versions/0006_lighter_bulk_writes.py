"""Lighter bulk writes: received rows without a key, and an index of a comparison's
notable entries.

* ``received_rows.received_id`` goes: rows received are only ever read and deleted a
  whole submission at a time, in arrival order (SQLite's rowid), and PostgreSQL spent
  a tenth of a roster's time drawing the ids and writing their index.
* ``ix_comparison_entries_notable``: the entries that are not simply insured on one
  roster (the gap, insured elsewhere, names to review, duplicates), a tenth or so of a
  comparison, with what the comparison reads of them (class, duplicate, registered
  name). Its review of names and its counts read them instead of every entry.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NOTABLE = sa.text("class <> 'insured' OR duplicate")


def upgrade() -> None:
    with op.batch_alter_table("received_rows") as batch:
        batch.drop_column("received_id")
    op.create_index(
        "ix_comparison_entries_notable",
        "comparison_entries",
        ["comparison_id", "class", "person_id", "duplicate", "registered_name"],
        sqlite_where=NOTABLE,
        postgresql_where=NOTABLE,
    )


def downgrade() -> None:
    op.drop_index("ix_comparison_entries_notable", table_name="comparison_entries")
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE received_rows ADD COLUMN received_id BIGSERIAL PRIMARY KEY")
        return
    # SQLite: the table again with its integer key first, the rows in their order.
    op.rename_table("received_rows", "received_rows_0006")
    op.create_table(
        "received_rows",
        sa.Column("received_id", Id, primary_key=True, autoincrement=True),
        sa.Column("submission_id", Id, nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date, nullable=True),
        sa.Column("reference", sa.String(64), nullable=False),
    )
    op.execute(
        "INSERT INTO received_rows (received_id, submission_id, person_id, status, line, "
        "name, household_id, valid_from, valid_to, reference) SELECT rowid, submission_id, "
        "person_id, status, line, name, household_id, valid_from, valid_to, reference "
        "FROM received_rows_0006"
    )
    op.drop_table("received_rows_0006")
