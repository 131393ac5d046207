"""The agencies' API keys, kept by the hub as digests and rotated through its API:

- ``agency_clients (client_id, agency, regions, label, created_at)``: one per system of an
  agency that calls the hub (a county's civil-affairs office, say), with the regions its
  keys serve ("" for every region);
- ``agency_keys (key_sha256, client_id, created_at, retires_at)``: each key's SHA-256
  digest (never the key) and when it retires (NULL: not retiring); two are alive during a
  rotation.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agency_clients",
        sa.Column("client_id", sa.String(48), primary_key=True),
        sa.Column("agency", sa.String(32), nullable=False),
        sa.Column("regions", sa.Text, nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "agency_keys",
        sa.Column("key_sha256", sa.String(64), primary_key=True),
        sa.Column(
            "client_id",
            sa.String(48),
            sa.ForeignKey("agency_clients.client_id"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_agency_keys_client", "agency_keys", ["client_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_agency_keys_client", table_name="agency_keys")
    op.drop_table("agency_keys")
    op.drop_table("agency_clients")
