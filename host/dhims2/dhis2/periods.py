"""DHIS2 period types, as far as the data-entry expiry rule needs them: the last day of the
period a date falls in.

The names are DHIS2's (`PeriodTypeEnum` in dhis2-core's dhis-api, `org.hisp.dhis.period`); each
calendar period starts on its type's base month or weekday (`MonthlyPeriodType`,
`SixMonthlyAprilPeriodType`, `FinancialNovemberPeriodType`, `WeeklyWednesdayPeriodType`, ...),
in the ISO calendar. BiWeekly and TwoYearly are not modelled: for them `period_end` answers None
and the server alone decides (docs/dhis2-tracker-api.md, "Data-entry expiry").
"""

from __future__ import annotations

from datetime import date, timedelta

# Months per period and the month the first period of a year starts in.
_MONTH_PERIODS = {
    "Monthly": (1, 1),
    "BiMonthly": (2, 1),
    "Quarterly": (3, 1),
    "QuarterlyNov": (3, 11),
    "SixMonthly": (6, 1),
    "SixMonthlyApril": (6, 4),
    "SixMonthlyNov": (6, 11),
    "Yearly": (12, 1),
    "FinancialApril": (12, 4),
    "FinancialJuly": (12, 7),
    "FinancialOct": (12, 10),
    "FinancialNov": (12, 11),
}
# The weekday (Monday = 0) a week starts on.
_WEEK_STARTS = {
    "Weekly": 0,
    "WeeklyWednesday": 2,
    "WeeklyThursday": 3,
    "WeeklySaturday": 5,
    "WeeklySunday": 6,
}


def period_end(period_type: str, day: date) -> date | None:
    """The last day of the `period_type` period holding `day`; None for a type not modelled."""
    if period_type == "Daily":
        return day
    if period_type in _WEEK_STARTS:
        days_into_week = (day.weekday() - _WEEK_STARTS[period_type]) % 7
        return day + timedelta(days=6 - days_into_week)
    if period_type in _MONTH_PERIODS:
        length, base_month = _MONTH_PERIODS[period_type]
        months_into_period = (day.month - base_month) % length
        end_month_index = day.year * 12 + day.month - 1 - months_into_period + length
        first_after = date(end_month_index // 12, end_month_index % 12 + 1, 1)
        return first_after - timedelta(days=1)
    return None


def is_modelled(period_type: str) -> bool:
    return period_type == "Daily" or period_type in _WEEK_STARTS or period_type in _MONTH_PERIODS
