"""The last day of a DHIS2 period, for the data-entry expiry rule (dhis2-core 2.41, dhis-api
org.hisp.dhis.period: each type's base month or weekday)."""

from __future__ import annotations

from datetime import date

import pytest

from dhims2.dhis2.periods import is_modelled, period_end
from dhims2.forms.program import EntryExpiry


@pytest.mark.parametrize(
    ("period_type", "day", "end"),
    [
        ("Daily", date(2025, 3, 14), date(2025, 3, 14)),
        # 2025-03-14 is a Friday: weeks from Monday, Wednesday, Thursday, Saturday, Sunday.
        ("Weekly", date(2025, 3, 14), date(2025, 3, 16)),
        ("WeeklyWednesday", date(2025, 3, 14), date(2025, 3, 18)),
        ("WeeklyThursday", date(2025, 3, 14), date(2025, 3, 19)),
        ("WeeklySaturday", date(2025, 3, 14), date(2025, 3, 14)),
        ("WeeklySunday", date(2025, 3, 14), date(2025, 3, 15)),
        ("Weekly", date(2025, 3, 17), date(2025, 3, 23)),  # a Monday starts its week
        ("Monthly", date(2024, 2, 3), date(2024, 2, 29)),
        ("Monthly", date(2025, 12, 31), date(2025, 12, 31)),
        ("BiMonthly", date(2025, 3, 14), date(2025, 4, 30)),
        ("Quarterly", date(2025, 3, 14), date(2025, 3, 31)),
        ("Quarterly", date(2025, 11, 1), date(2025, 12, 31)),
        ("QuarterlyNov", date(2025, 12, 5), date(2026, 1, 31)),
        ("QuarterlyNov", date(2025, 3, 14), date(2025, 4, 30)),
        ("SixMonthly", date(2025, 7, 1), date(2025, 12, 31)),
        ("SixMonthlyApril", date(2025, 3, 14), date(2025, 3, 31)),
        ("SixMonthlyApril", date(2025, 4, 1), date(2025, 9, 30)),
        ("SixMonthlyNov", date(2025, 3, 14), date(2025, 4, 30)),
        ("SixMonthlyNov", date(2025, 11, 30), date(2026, 4, 30)),
        ("Yearly", date(2025, 3, 14), date(2025, 12, 31)),
        ("FinancialApril", date(2025, 3, 14), date(2025, 3, 31)),
        ("FinancialApril", date(2025, 4, 1), date(2026, 3, 31)),
        ("FinancialJuly", date(2025, 3, 14), date(2025, 6, 30)),
        ("FinancialOct", date(2025, 10, 1), date(2026, 9, 30)),
        ("FinancialNov", date(2025, 10, 31), date(2025, 10, 31)),
    ],
)
def test_the_period_a_day_falls_in_ends_where_dhis2_ends_it(period_type, day, end):
    assert is_modelled(period_type)
    assert period_end(period_type, day) == end


@pytest.mark.parametrize("period_type", ["BiWeekly", "TwoYearly", "Fortnightly"])
def test_a_period_type_not_modelled_leaves_the_decision_to_the_server(period_type):
    assert not is_modelled(period_type)
    assert period_end(period_type, date(2025, 3, 14)) is None
    assert EntryExpiry(period_type, 10).closes_on(date(2025, 3, 14)) is None


def test_entry_closes_the_day_after_the_expiry_days_have_passed():
    # DateValidator.validateExpiryPeriodType: the period's end date at 00:00 plus expiryDays + 1.
    expiry = EntryExpiry("Monthly", 10)
    assert expiry.closes_on(date(2025, 3, 14)) == date(2025, 4, 11)
    assert expiry.closes_on(date(2025, 3, 31)) == date(2025, 4, 11)
    assert expiry.closes_on(date(2025, 4, 1)) == date(2025, 5, 11)
