"""Rosters and comparisons at a million rows: rows received apart from the current
rosters, the bulk tables without foreign keys and stored by their key on SQLite, and no
roster digest.

* ``received_rows``: the rows of a roster still being received, appended as they come;
  the roster's finish moves them into ``roster_rows`` in key order.
* ``roster_deliveries``: a roster's changed persons are queued for settlement as one
  row naming the roster, not a row per person (a quarter of a roster's time on
  PostgreSQL); ``ix_status_assertions_submission_id`` takes the person too, so that
  the sender walks a roster's persons in order.
* ``roster_rows``, ``comparison_entries`` and the register's copy
  (``register_persons``, ``register_enrolments``) become WITHOUT ROWID tables on
  SQLite: the row is stored in its primary key's B-tree, one structure to write and
  to read in key order instead of a table and an index beside it.
* The foreign keys of ``roster_rows.submission_id``,
  ``status_assertions.submission_id`` and ``comparison_entries.comparison_id`` go:
  the one statement that writes those rows takes the id from the row it has just
  written in the same transaction, and PostgreSQL's check of each of a million rows
  cost a quarter of a roster's time.
* ``ix_comparison_entries_class`` goes: a page of one class reads the comparison's
  entries in identity-number order and skips the others, and the index cost a tenth
  of a comparison's time.
* ``comparison_entries.agencies`` goes: the agencies follow from the statuses (each
  status has one certifying agency), and their DISTINCT aggregate cost a third of a
  comparison on SQLite. (A downgrade leaves the column empty: compare again.)
* ``roster_submissions.digest`` goes: a roster sent again is recognised by comparing
  its rows with the current roster's in SQL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WITHOUT_ROSTER = sa.text("submission_id IS NULL")


def _row_values() -> list[sa.Column[object]]:
    return [
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date, nullable=True),
        sa.Column("reference", sa.String(64), nullable=False),
    ]


def _tables(*, before: bool) -> dict[str, sa.Table]:
    """The tables rebuilt on SQLite as they are after this revision (``before``: as they
    were before it, but for ``comparison_entries.agencies``)."""
    metadata = sa.MetaData()

    def key(target: str) -> list[sa.ForeignKey]:
        return [sa.ForeignKey(target)] if before else []

    sa.Table("roster_submissions", metadata, sa.Column("submission_id", Id, primary_key=True))
    sa.Table("comparisons", metadata, sa.Column("comparison_id", Id, primary_key=True))
    rows = sa.Table(
        "roster_rows",
        metadata,
        sa.Column(
            "submission_id",
            Id,
            *key("roster_submissions.submission_id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("status", sa.String(32), primary_key=True),
        *_row_values(),
    )
    assertions = sa.Table(
        "status_assertions",
        metadata,
        sa.Column("assertion_id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(6), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("agency", sa.String(32), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date, nullable=True),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submission_id", Id, *key("roster_submissions.submission_id"), nullable=True),
        sa.Index("ix_status_assertions_person_id", "person_id", "assertion_id"),
        sa.Index(
            "uq_status_assertions_agency_reference",
            "agency",
            "reference",
            unique=True,
            sqlite_where=WITHOUT_ROSTER,
            postgresql_where=WITHOUT_ROSTER,
        ),
        sa.Index(
            "ix_status_assertions_submission_id",
            "submission_id",
            *([] if before else ["person_id"]),
        ),
    )
    entries = sa.Table(
        "comparison_entries",
        metadata,
        sa.Column(
            "comparison_id",
            Id,
            *key("comparisons.comparison_id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("class", sa.String(20), nullable=False),
        sa.Column("gap_reason", sa.String(16), nullable=True),
        sa.Column("statuses", sa.String(800), nullable=False),
        sa.Column("roster_name", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("registered_name", sa.String(64), nullable=True),
        sa.Column("registered_region", sa.String(32), nullable=True),
        sa.Column("duplicate", sa.Boolean, nullable=False),
    )
    persons = sa.Table(
        "register_persons",
        metadata,
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    enrolments = sa.Table(
        "register_enrolments",
        metadata,
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
    )
    return {table.name: table for table in (rows, assertions, entries, persons, enrolments)}


_KEYED = ("roster_rows", "comparison_entries", "register_persons", "register_enrolments")
_FOREIGN_KEYS = (  # name (PostgreSQL's default where revisions 0003 and 0004 gave none)
    ("roster_rows_submission_id_fkey", "roster_rows", "submission_id", "roster_submissions"),
    (
        "fk_status_assertions_submission_id",
        "status_assertions",
        "submission_id",
        "roster_submissions",
    ),
    (
        "comparison_entries_comparison_id_fkey",
        "comparison_entries",
        "comparison_id",
        "comparisons",
    ),
)


def upgrade() -> None:
    op.create_table(
        "received_rows",
        sa.Column("received_id", Id, primary_key=True, autoincrement=True),
        sa.Column("submission_id", Id, nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        *_row_values(),
    )
    op.create_table(
        "roster_deliveries",
        sa.Column("subscriber", sa.String(32), nullable=False),
        sa.Column("set_id", sa.BigInteger, nullable=False),
        sa.Column("after", sa.String(18), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", "set_id", name="pk_roster_deliveries"),
    )
    op.drop_index("ix_comparison_entries_class", table_name="comparison_entries")
    with op.batch_alter_table("roster_submissions") as batch:
        batch.drop_column("digest")
    if op.get_context().dialect.name == "sqlite":
        _rebuild(_tables(before=False))  # copies every column but the agencies
        return
    op.drop_column("comparison_entries", "agencies")
    for name, table, _, _ in _FOREIGN_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")
    op.drop_index("ix_status_assertions_submission_id", table_name="status_assertions")
    op.create_index(
        "ix_status_assertions_submission_id", "status_assertions", ["submission_id", "person_id"]
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _rebuild(_tables(before=True), rowid=True)
    else:
        for name, table, column, target in _FOREIGN_KEYS:
            op.create_foreign_key(name, table, target, [column], [column])
        op.drop_index("ix_status_assertions_submission_id", table_name="status_assertions")
        op.create_index(
            "ix_status_assertions_submission_id", "status_assertions", ["submission_id"]
        )
    with op.batch_alter_table("roster_submissions") as batch:
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
    with op.batch_alter_table("comparison_entries") as batch:
        batch.add_column(sa.Column("agencies", sa.String(400), nullable=False, server_default=","))
    op.create_index(
        "ix_comparison_entries_class",
        "comparison_entries",
        ["comparison_id", "class", "person_id"],
    )
    op.drop_table("received_rows")
    op.drop_table("roster_deliveries")


def _rebuild(tables: dict[str, sa.Table], *, rowid: bool = False) -> None:
    """SQLite: each table copied into its new form (alembic's batch mode)."""
    for name, table in tables.items():
        with op.batch_alter_table(
            name,
            copy_from=table,
            recreate="always",
            table_kwargs={} if rowid or name not in _KEYED else {"sqlite_with_rowid": False},
        ):
            pass
