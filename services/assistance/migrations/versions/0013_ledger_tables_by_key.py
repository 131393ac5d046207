"""On SQLite, the ledger's tables and the persons' copy are stored by their key: the
intake reads and rewrites them by key a million times a year (docs/performance.md).

A SQLite table with a key other than one integer keeps its rows in a tree by row id and
the key in a second tree, so every lookup by key walks both, and every new row writes
both. ``WITHOUT ROWID`` keeps the rows in the key's own tree: ``burdens``,
``burden_payments`` and ``assistance_persons`` (whose household index then holds each
member's identity number, so the warning pass sums a household from the index alone).
``settlement_events`` keeps its row id and makes its integer event id that row id
(``INTEGER PRIMARY KEY``) instead of a second tree. PostgreSQL is not changed: its
tables are heaps with their indexes either way.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BY_KEY = ("burdens", "burden_payments", "assistance_persons")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in BY_KEY:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_with_rowid": False}
        ):
            pass
    with op.batch_alter_table("settlement_events", recreate="always") as batch:
        batch.alter_column("event_id", type_=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("settlement_events", recreate="always") as batch:
        batch.alter_column("event_id", type_=sa.BigInteger(), existing_nullable=False)
    for table in BY_KEY:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_with_rowid": True}
        ):
            pass
