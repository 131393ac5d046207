"""Which statuses a person holds, from the registry's assertions and revocations (doudi.core.statuses).

For each status and each day, the most recently recorded record covering the day
decides; held days of one status and agency that follow each other make one period.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doudi.core.errors import InvalidInput
from doudi.core.statuses import (
    ASSERT,
    REVOKE,
    EffectivePeriod,
    StatusRecord,
    effective_periods,
    owned_statuses,
    owns,
)

POVERTY = "poverty_office"
CIVIL = "civil_affairs"


def asserted(
    status: str, start: str, end: str | None = None, *, order: int, agency: str = POVERTY
) -> StatusRecord:
    return StatusRecord(ASSERT, status, agency, _day(start), _day(end), order)


def revoked(
    status: str, start: str, end: str | None = None, *, order: int, agency: str = POVERTY
) -> StatusRecord:
    return StatusRecord(REVOKE, status, agency, _day(start), _day(end), order)


def period(
    status: str, start: str, end: str | None = None, agency: str = POVERTY
) -> EffectivePeriod:
    return EffectivePeriod(status, _day(start), _day(end), agency)


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


# -- worked examples -------------------------------------------------------------


def test_an_open_assertion_holds_from_its_first_day_on() -> None:
    records = [asserted("registered_poor", "2017-03-01", order=1)]
    assert effective_periods(records) == (period("registered_poor", "2017-03-01"),)


def test_no_records_no_periods() -> None:
    assert effective_periods([]) == ()


def test_a_revocation_from_a_date_ends_the_period_the_day_before() -> None:
    records = [
        asserted("registered_poor", "2017-03-01", order=1),
        revoked("registered_poor", "2019-07-01", order=2),
    ]
    assert effective_periods(records) == (period("registered_poor", "2017-03-01", "2019-06-30"),)


def test_a_reassertion_after_a_revocation_starts_a_new_period() -> None:
    records = [
        asserted("dibao", "2017-01-01", order=1, agency=CIVIL),
        revoked("dibao", "2018-01-01", order=2, agency=CIVIL),
        asserted("dibao", "2019-01-01", order=3, agency=CIVIL),
    ]
    assert effective_periods(records) == (
        period("dibao", "2017-01-01", "2017-12-31", CIVIL),
        period("dibao", "2019-01-01", None, CIVIL),
    )


def test_revoking_a_window_in_the_middle_splits_the_period() -> None:
    records = [
        asserted("at_risk", "2020-01-01", "2020-12-31", order=1),
        revoked("at_risk", "2020-05-01", "2020-06-30", order=2),
    ]
    assert effective_periods(records) == (
        period("at_risk", "2020-01-01", "2020-04-30"),
        period("at_risk", "2020-07-01", "2020-12-31"),
    )


def test_a_later_narrower_assertion_inside_an_earlier_one_changes_nothing() -> None:
    records = [
        asserted("registered_poor", "2017-01-01", order=1),
        asserted("registered_poor", "2017-06-01", "2017-08-31", order=2),
    ]
    assert effective_periods(records) == (period("registered_poor", "2017-01-01"),)


def test_an_older_record_does_not_override_a_later_one() -> None:
    # The revocation was recorded first; the assertion recorded after it decides.
    records = [
        asserted("registered_poor", "2017-01-01", order=2),
        revoked("registered_poor", "2017-06-01", order=1),
    ]
    assert effective_periods(records) == (period("registered_poor", "2017-01-01"),)


def test_poverty_exit_ends_registered_poor_and_starts_poverty_exited_on_the_exit_date() -> None:
    records = [
        asserted("registered_poor", "2016-01-01", order=1),
        revoked("registered_poor", "2019-12-15", order=2),
        asserted("poverty_exited", "2019-12-15", order=3),
    ]
    assert effective_periods(records) == (
        period("poverty_exited", "2019-12-15"),
        period("registered_poor", "2016-01-01", "2019-12-14"),
    )


def test_adjacent_and_overlapping_assertions_merge_into_one_period() -> None:
    records = [
        asserted("dibao", "2020-01-01", "2020-06-30", order=1, agency=CIVIL),
        asserted("dibao", "2020-07-01", "2020-12-31", order=2, agency=CIVIL),
        asserted("dibao", "2020-12-01", "2021-03-31", order=3, agency=CIVIL),
    ]
    assert effective_periods(records) == (period("dibao", "2020-01-01", "2021-03-31", CIVIL),)


def test_a_gap_of_one_day_keeps_two_periods() -> None:
    records = [
        asserted("dibao", "2020-01-01", "2020-06-29", order=1, agency=CIVIL),
        asserted("dibao", "2020-07-01", "2020-12-31", order=2, agency=CIVIL),
    ]
    assert len(effective_periods(records)) == 2


def test_a_revocation_alone_grants_nothing() -> None:
    assert effective_periods([revoked("registered_poor", "2017-01-01", order=1)]) == ()


def test_a_period_to_the_last_representable_day_is_open() -> None:
    records = [
        asserted("orphan", "2020-01-01", date.max.isoformat(), order=1, agency=CIVIL),
        asserted("orphan", "2021-01-01", order=2, agency=CIVIL),
    ]
    assert effective_periods(records) == (period("orphan", "2020-01-01", None, CIVIL),)


def test_a_record_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidInput) as error:
        asserted("dibao", "2020-02-01", "2020-01-31", order=1)
    assert error.value.field == "valid_to"


def test_each_status_belongs_to_one_agency() -> None:
    assert owns(POVERTY, "registered_poor")
    assert not owns(CIVIL, "registered_poor")
    assert not owns(POVERTY, "no_such_status")
    assert owned_statuses(POVERTY) == {"registered_poor", "poverty_exited", "at_risk"}
    assert owned_statuses("hospital") == frozenset()


# -- property: the same as deciding day by day ------------------------------------

FIRST_DAY = date(2020, 1, 1)
DAYS = 30  # records start and end within FIRST_DAY .. FIRST_DAY + DAYS - 1
STATUS_CODES = ["dibao", "registered_poor"]
AGENCY_CODES = [CIVIL, POVERTY]  # two agencies per status, so that agency changes split periods


@st.composite
def record_lists(draw: st.DrawFn) -> list[StatusRecord]:
    count = draw(st.integers(min_value=0, max_value=8))
    orders = draw(st.permutations(range(count)))
    records = []
    for order in orders:
        start = draw(st.integers(min_value=0, max_value=DAYS - 1))
        end = draw(st.none() | st.integers(min_value=start, max_value=DAYS - 1))
        records.append(
            StatusRecord(
                kind=draw(st.sampled_from([ASSERT, REVOKE])),
                status=draw(st.sampled_from(STATUS_CODES)),
                agency=draw(st.sampled_from(AGENCY_CODES)),
                valid_from=FIRST_DAY + timedelta(days=start),
                valid_to=None if end is None else FIRST_DAY + timedelta(days=end),
                order=order,
            )
        )
    return records


def day_by_day(records: list[StatusRecord]) -> set[EffectivePeriod]:
    """Decide each day on its own, then join the held days; a run to the day after every
    record's end lasts for good."""
    horizon = DAYS  # the first day no closed record covers: what holds then holds forever
    periods: set[EffectivePeriod] = set()
    for status in STATUS_CODES:
        mine = [record for record in records if record.status == status]
        run: tuple[int, str] | None = None
        for offset in range(horizon + 1):
            day = FIRST_DAY + timedelta(days=offset)
            covering = [record for record in mine if record.covers(day)]
            decider = max(covering, key=lambda record: record.order, default=None)
            agency = decider.agency if decider is not None and decider.kind == ASSERT else None
            if run is not None and run[1] != agency:
                end = FIRST_DAY + timedelta(days=offset - 1)
                periods.add(EffectivePeriod(status, FIRST_DAY + timedelta(run[0]), end, run[1]))
                run = None
            if run is None and agency is not None:
                run = (offset, agency)
        if run is not None:
            periods.add(EffectivePeriod(status, FIRST_DAY + timedelta(run[0]), None, run[1]))
    return periods


@settings(max_examples=300, deadline=None)
@given(record_lists())
def test_periods_are_what_deciding_each_day_gives(records: list[StatusRecord]) -> None:
    periods = effective_periods(records)
    assert set(periods) == day_by_day(records)
    assert list(periods) == sorted(periods, key=lambda p: (p.status, p.valid_from))
