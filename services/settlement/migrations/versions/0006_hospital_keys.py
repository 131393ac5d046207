"""Hospitals' API keys in a table of their own, so that two can be alive during a rotation:

- ``hospital_keys (key_sha256, hospital_id, created_at, retires_at)``: each key's SHA-256
  digest (never the key), its hospital, and when it retires (NULL: not retiring);
- each hospital's one digest moves there from ``hospitals.api_key_sha256``, which goes.

SQLite drops a column by copying its table: with settlements (and now keys) referring to
``hospitals``, the copy is made with foreign keys off, outside the transaction, as
SQLite's documentation for such changes says.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@contextmanager
def foreign_keys_off() -> Iterator[None]:
    """On SQLite, foreign keys off while a table referred to is copied (PRAGMA
    foreign_keys is ignored inside a transaction); elsewhere nothing."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    pragma: Callable[[str], None] = op.execute
    with op.get_context().autocommit_block():
        pragma("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        with op.get_context().autocommit_block():
            pragma("PRAGMA foreign_keys=ON")


def upgrade() -> None:
    op.create_table(
        "hospital_keys",
        sa.Column("key_sha256", sa.String(64), primary_key=True),
        sa.Column(
            "hospital_id", sa.String(32), sa.ForeignKey("hospitals.hospital_id"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_hospital_keys_hospital", "hospital_keys", ["hospital_id", "created_at"])
    op.execute(
        "INSERT INTO hospital_keys (key_sha256, hospital_id, created_at, retires_at) "
        "SELECT api_key_sha256, hospital_id, created_at, NULL FROM hospitals"
    )
    with foreign_keys_off(), op.batch_alter_table("hospitals") as batch:
        batch.drop_column("api_key_sha256")


def downgrade() -> None:
    # Back to one key per hospital: its newest.
    with foreign_keys_off(), op.batch_alter_table("hospitals") as batch:
        batch.add_column(sa.Column("api_key_sha256", sa.String(64), nullable=True))
    op.execute(
        "UPDATE hospitals SET api_key_sha256 = (SELECT k.key_sha256 FROM hospital_keys k "
        "WHERE k.hospital_id = hospitals.hospital_id ORDER BY k.created_at DESC LIMIT 1)"
    )
    with foreign_keys_off(), op.batch_alter_table("hospitals") as batch:
        batch.alter_column("api_key_sha256", nullable=False)
        batch.create_unique_constraint("uq_hospitals_api_key_sha256", ["api_key_sha256"])
    op.drop_index("ix_hospital_keys_hospital", table_name="hospital_keys")
    op.drop_table("hospital_keys")
