"""Lighter bulk writes: received rows without a key, a roster's records found by their
range of ids, and an index of a comparison's notable entries.

* ``received_rows.received_id`` goes: rows received are only ever read and deleted a
  whole submission at a time, in arrival order (SQLite's rowid), and PostgreSQL spent
  a tenth of a roster's time drawing the ids and writing their index.
* ``roster_submissions.records_from`` and ``records_to``: the range of assertion ids a
  roster's records have (filled in here from the index about to go). The sender walks
  that range for the persons a roster changed, so ``ix_status_assertions_submission_id``
  goes: it cost a third of writing a roster's records on PostgreSQL.
  ``roster_deliveries.after`` becomes a position in that walk (an assertion id; wider).
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
    with op.batch_alter_table("roster_submissions") as batch:
        batch.add_column(sa.Column("records_from", Id, nullable=True))
        batch.add_column(sa.Column("records_to", Id, nullable=True))
    op.execute(
        "UPDATE roster_submissions SET records_from = (SELECT min(assertion_id) FROM "
        "status_assertions WHERE status_assertions.submission_id = "
        "roster_submissions.submission_id), records_to = (SELECT max(assertion_id) FROM "
        "status_assertions WHERE status_assertions.submission_id = "
        "roster_submissions.submission_id) WHERE state IN ('current', 'superseded')"
    )
    op.drop_index("ix_status_assertions_submission_id", table_name="status_assertions")
    # A queued roster's walk starts again (its persons were walked by identity number).
    op.execute("UPDATE roster_deliveries SET \"after\" = ''")
    with op.batch_alter_table("roster_deliveries") as batch:
        batch.alter_column("after", type_=sa.String(32), existing_nullable=False)
    op.create_index(
        "ix_comparison_entries_notable",
        "comparison_entries",
        ["comparison_id", "class", "person_id", "duplicate", "registered_name"],
        sqlite_where=NOTABLE,
        postgresql_where=NOTABLE,
    )


def downgrade() -> None:
    op.drop_index("ix_comparison_entries_notable", table_name="comparison_entries")
    op.execute("UPDATE roster_deliveries SET \"after\" = ''")
    with op.batch_alter_table("roster_deliveries") as batch:
        batch.alter_column("after", type_=sa.String(18), existing_nullable=False)
    op.create_index(
        "ix_status_assertions_submission_id", "status_assertions", ["submission_id", "person_id"]
    )
    with op.batch_alter_table("roster_submissions") as batch:
        batch.drop_column("records_to")
        batch.drop_column("records_from")
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
