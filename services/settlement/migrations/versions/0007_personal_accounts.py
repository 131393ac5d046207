"""Employees' personal accounts (职工个人账户), owned by settlement so that the account pays
at the window in the settlement's own transaction:

- ``personal_accounts (person_id, region, card_fen, account_fen, version, updated_at)``:
  one row per account, its two pots never below zero (CHECK);
- ``personal_account_credits (person_id, year, region, request_id, amount_fen,
  account_part_fen, card_part_fen, credited_at)``: each person's yearly credit and the part
  of it moved to the card month by month;
- ``personal_account_movements``: the append-only ledger of every movement, each with its
  change to each pot and the pots after it; ``movement_key`` makes each one once;
- ``settlements.personal_account_paid_fen``: what the account paid of a settlement's
  self-pay (0 for every settlement before).

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "personal_accounts",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("card_fen", sa.BigInteger, nullable=False),
        sa.Column("account_fen", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("card_fen >= 0", name="ck_personal_accounts_card"),
        sa.CheckConstraint("account_fen >= 0", name="ck_personal_accounts_account"),
    )
    op.create_table(
        "personal_account_credits",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("account_part_fen", sa.BigInteger, nullable=False),
        sa.Column("card_part_fen", sa.BigInteger, nullable=False),
        sa.Column("credited_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_personal_account_credits_region",
        "personal_account_credits",
        ["region", "year", "person_id"],
    )
    op.create_table(
        "personal_account_movements",
        sa.Column("movement_id", BigId, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("card_change_fen", sa.BigInteger, nullable=False),
        sa.Column("account_change_fen", sa.BigInteger, nullable=False),
        sa.Column("card_after_fen", sa.BigInteger, nullable=False),
        sa.Column("account_after_fen", sa.BigInteger, nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("month", sa.Integer),
        sa.Column("settlement_id", sa.String(36)),
        sa.Column("product_id", sa.String(64)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("movement_key", sa.String(200), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("movement_key", name="uq_personal_account_movements_key"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_personal_account_movements_person",
        "personal_account_movements",
        ["person_id", "movement_id"],
    )
    # Added and dropped in place: SQLite (3.35 on) alters the column without copying
    # the table others refer to.
    op.add_column(
        "settlements",
        sa.Column(
            "personal_account_paid_fen", sa.BigInteger, nullable=False, server_default=sa.text("0")
        ),
    )


def downgrade() -> None:
    op.drop_column("settlements", "personal_account_paid_fen")
    op.drop_index("ix_personal_account_movements_person", "personal_account_movements")
    op.drop_table("personal_account_movements")
    op.drop_index("ix_personal_account_credits_region", "personal_account_credits")
    op.drop_table("personal_account_credits")
    op.drop_table("personal_accounts")
