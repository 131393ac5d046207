"""The settlement service's tables (SQLAlchemy Core); migrations/ creates them.

* ``hospitals``: registered hospitals and their level;
* ``hospital_keys``: the SHA-256 digests of each hospital's API keys (never a key), and
  when each retires: two are alive during a rotation (doudi.common.keys);
* ``settlements``: one row per settled visit, with what each layer paid, the
  engine's increments to the yearly accumulators (for an exact reversal) and
  the visit as received;
* ``clearing_records``: what each fund owes each hospital (清算), one row per
  paying fund of a settlement, negative for a reversal;
* ``ledgers``: each person's yearly accumulators (年度累计), one row per person,
  locked by every settlement of that person so that yearly caps hold under
  concurrency;
* ``event_outbox``: settlements and reversals not yet delivered to the assistance
  service, one row each, written in the settlement's (or reversal's) transaction; its
  id, never reused, is the event's id (services/settlement/delivery.py sends them);
* ``person_statuses`` and ``person_coverage``: each person's statuses as the
  datashare hub last sent them, and region and enrolments as the enrollment
  service last sent them (copies kept at the highest version sent, see
  doudi.common.outbox), read in the statement that locks the ledger;
* ``personal_accounts``, ``personal_account_credits`` and ``personal_account_movements``:
  employees' personal accounts (职工个人账户, accounts.py): each account's two pots
  (never below zero), each yearly credit with its card part, and the append-only ledger
  of movements, whose sums are the pots;
* ``accident_claims``: claims on a pack's accident cover (意外伤害附加保险), filed by the
  bureau's clerks and decided once; an approved claim is paid in its decision's
  transaction, and the insurer repays the day's paid claims (services/settlement/accidents.py);
* ``admissions``: the admissions registered at the hospitals' desks (入院登记), each with
  the eligibility answer of its day, discharged by the settlement made against it;
* ``person_reads``: who read a person's data at the admission desk (the audit), one row
  per answer, written in the read's own transaction.
"""

from __future__ import annotations

import sqlalchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = sqlalchemy.MetaData()

# A BIGINT that SQLite also auto-increments (it does so only for INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")

hospitals = Table(
    "hospitals",
    metadata,
    Column("hospital_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("region", String(32), nullable=False),
    Column("level", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # A level-2 hospital of the public-hospital reform (migration 0009).
    Column("reformed", Boolean, nullable=False, server_default=sqlalchemy.false()),
)

hospital_keys = Table(
    "hospital_keys",
    metadata,
    Column("key_sha256", String(64), primary_key=True),
    Column("hospital_id", String(32), ForeignKey("hospitals.hospital_id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retires_at", DateTime(timezone=True), nullable=True),  # NULL: not retiring
    Index("ix_hospital_keys_hospital", "hospital_id", "created_at"),
)

settlements = Table(
    "settlements",
    metadata,
    Column("settlement_id", String(36), primary_key=True),
    Column("hospital_id", String(32), ForeignKey("hospitals.hospital_id"), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("person_id", String(18), nullable=False),
    Column("visit_id", String(64), nullable=False),
    Column("visit_type", String(32), nullable=False),
    Column("settles_on", Date, nullable=False),
    Column("year", Integer, nullable=False),
    Column("policy", String(64), nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("class_c_fen", BigInteger, nullable=False),
    Column("over_limit_fen", BigInteger, nullable=False),
    Column("pre_self_pay_fen", BigInteger, nullable=False),
    Column("in_scope_fen", BigInteger, nullable=False),
    Column("fund_paid_fen", BigInteger, nullable=False),
    Column("self_pay_fen", BigInteger, nullable=False),
    Column("layers", JSON, nullable=False),
    Column("payouts", JSON, nullable=False),
    Column("deltas", JSON, nullable=False),
    Column("visit", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("settled_at", DateTime(timezone=True), nullable=False),
    Column("settled_on", Date, nullable=False),
    Column("reversal_request_id", String(128)),
    Column("reversed_at", DateTime(timezone=True)),
    # The pooling region whose pack settled the visit, and the statuses (codes) the
    # person held on the visit's date, which the engine applied.
    Column("region", String(32), nullable=False),
    Column("statuses", JSON, nullable=False),
    # What the employee's personal account paid of the self-pay (migration 0007).
    Column("personal_account_paid_fen", BigInteger, nullable=False, server_default=text("0")),
    # The admission it was settled against (migration 0009); NULL: none.
    Column("admission_id", String(36)),
    UniqueConstraint("hospital_id", "request_id", name="uq_settlements_request"),
    Index("ix_settlements_hospital_day", "hospital_id", "settled_on", "settled_at"),
    # A person's settlements in the order they were made (ListSettlements by person,
    # screening by persons); every hospital's in that order (migration 0005).
    Index("ix_settlements_person_made", "person_id", "settled_at", "settlement_id"),
    Index("ix_settlements_made", "settled_at", "settlement_id"),
    # A hospital's visit is settled once; after a reversal it may be settled again.
    Index(
        "uq_settlements_standing_visit",
        "hospital_id",
        "visit_id",
        unique=True,
        postgresql_where=text("state = 'settled'"),
        sqlite_where=text("state = 'settled'"),
    ),
)

clearing_records = Table(
    "clearing_records",
    metadata,
    Column("record_id", BigId, primary_key=True, autoincrement=True),
    Column("settlement_id", String(36), ForeignKey("settlements.settlement_id"), nullable=False),
    Column("hospital_id", String(32), nullable=False),
    Column("fund", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("clearing_date", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # A day's records of one hospital, or of every hospital (migration 0005).
    Index("ix_clearing_day_hospital", "clearing_date", "hospital_id"),
    Index("ix_clearing_settlement", "settlement_id"),
)

ledgers = Table(
    "ledgers",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("years", JSON, nullable=False),
    Column("payouts", JSON, nullable=False),
    Column("first_year", Integer),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

person_statuses = Table(
    "person_statuses",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("version", BigInteger, nullable=False),
    # [[status, valid_from, valid_to or null], ...] in ISO dates, as the hub computed them.
    Column("periods", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

person_coverage = Table(
    "person_coverage",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("version", BigInteger, nullable=False),
    # {"region": "411323", "years": {"2026": [scheme, employment or null, tier or null]}}
    Column("coverage", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

event_outbox = Table(
    "event_outbox",
    metadata,
    # AUTOINCREMENT on SQLite too: an id is never given again once its row is deleted,
    # so an event delivered before never hides a later one from the receiver.
    Column("event_id", BigId, primary_key=True, autoincrement=True),
    Column("settlement_id", String(36), ForeignKey("settlements.settlement_id"), nullable=False),
    Column("kind", String(16), nullable=False),  # settled or reversed
    Column("queued_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

personal_accounts = Table(
    "personal_accounts",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("region", String(32), nullable=False),
    # The part moved to the social security card (Tianjin's 70%, month by month) ...
    Column("card_fen", BigInteger, nullable=False),
    # ... and the rest of the account.
    Column("account_fen", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("card_fen >= 0", name="ck_personal_accounts_card"),
    CheckConstraint("account_fen >= 0", name="ck_personal_accounts_account"),
)

personal_account_credits = Table(
    "personal_account_credits",
    metadata,
    Column("person_id", String(18), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("region", String(32), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("account_part_fen", BigInteger, nullable=False),
    # Moved to the card by the monthly transfers, a twelfth a month.
    Column("card_part_fen", BigInteger, nullable=False),
    Column("credited_at", DateTime(timezone=True), nullable=False),
    # The monthly run pages through a region's credits of a year in person order.
    Index("ix_personal_account_credits_region", "region", "year", "person_id"),
)

personal_account_movements = Table(
    "personal_account_movements",
    metadata,
    Column("movement_id", BigId, primary_key=True, autoincrement=True),
    Column("person_id", String(18), nullable=False),
    # credit, card_transfer, window_payment, window_refund, withdrawal, purchase
    Column("kind", String(16), nullable=False),
    Column("card_change_fen", BigInteger, nullable=False),
    Column("account_change_fen", BigInteger, nullable=False),
    Column("card_after_fen", BigInteger, nullable=False),
    Column("account_after_fen", BigInteger, nullable=False),
    Column("year", Integer, nullable=False),
    Column("month", Integer),  # a card transfer's month
    Column("settlement_id", String(36)),
    Column("product_id", String(64)),
    Column("request_id", String(128)),
    # What makes the movement once: its kind and its caller's request id, settlement, or
    # person and year (and month); see accounts.py.
    Column("movement_key", String(200), nullable=False),
    Column("made_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("movement_key", name="uq_personal_account_movements_key"),
    Index("ix_personal_account_movements_person", "person_id", "movement_id"),
    sqlite_autoincrement=True,
)

accident_claims = Table(
    "accident_claims",
    metadata,
    Column("claim_id", BigId, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("person_id", String(18), nullable=False),
    Column("region", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # death or medical
    Column("event_date", Date, nullable=False),
    # The bureau's day (Asia/Shanghai) the claim was filed: the two-year window is judged
    # on it, never on a day the caller gives.
    Column("received_on", Date, nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=False),
    Column("claimed_fen", BigInteger, nullable=False),  # medical: the receipts; death: 0
    Column("state", String(16), nullable=False),  # filed, paid or rejected
    # The pack in force on the event's day and its insurer: at filing, then the pack that
    # decided the claim.
    Column("policy", String(64), nullable=False),
    Column("fund", String(32), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_on", Date),  # the bureau's day of the decision: a paid claim's clearing day
    Column("paid_fen", BigInteger, nullable=False),
    Column("rejection_reason", String(500)),
    UniqueConstraint("request_id", name="uq_accident_claims_request"),
    # One claim per person, kind and event: a second is DUPLICATE_CLAIM, even concurrently.
    UniqueConstraint("person_id", "kind", "event_date", name="uq_accident_claims_event"),
    # A person's death is paid once, whatever day each claim names.
    Index(
        "uq_accident_claims_death_paid",
        "person_id",
        unique=True,
        postgresql_where=text("kind = 'death' AND state = 'paid'"),
        sqlite_where=text("kind = 'death' AND state = 'paid'"),
    ),
    Index("ix_accident_claims_region_state", "region", "state", "claim_id"),
    Index("ix_accident_claims_decided_on", "decided_on", "region"),
)

admissions = Table(
    "admissions",
    metadata,
    Column("admission_id", String(36), primary_key=True),
    Column("hospital_id", String(32), ForeignKey("hospitals.hospital_id"), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("person_id", String(18), nullable=False),
    Column("admitted_on", Date, nullable=False),
    Column("referred", Boolean, nullable=False),
    Column("out_of_area", Boolean, nullable=False),
    Column("policy", String(64), nullable=False),
    # The no-deposit answer at admission: the pack's rule id and its reason (NULL: a
    # deposit).
    Column("no_deposit_rule", String(64)),
    Column("no_deposit_reason", String(256)),
    Column("state", String(16), nullable=False),  # admitted, discharged or cancelled
    Column("settlement_id", String(36)),  # the standing settlement that discharged it
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("hospital_id", "request_id", name="uq_admissions_request"),
    Index("ix_admissions_settlement", "settlement_id"),
)

person_reads = Table(
    "person_reads",
    metadata,
    Column("read_id", BigId, primary_key=True, autoincrement=True),
    Column("person_id", String(18), nullable=False),
    Column("reader", String(32), nullable=False),  # the hospital's id, or "platform"
    Column("method", String(32), nullable=False),
    Column("read_at", DateTime(timezone=True), nullable=False),
    Index("ix_person_reads_person", "person_id", "read_id"),
)
